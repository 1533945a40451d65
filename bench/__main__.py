"""The performance suite: every performance target beside its raw Thespian reference, measured
in the same run, on multiprocTCPBase.

    python -m bench                 # full sizes (about 15 minutes)
    python -m bench --quick         # smaller sizes, under 2 minutes
    python -m bench --only throughput,latency --runs 5
    python -m bench --quick --json results.json --markdown

Each row runs ``--runs`` times (default: 3 in full mode, 1 in quick mode; the heaviest rows
once), each run measuring the reference and then the engine; the medians are reported. Every
actor system a row starts is stopped on the way out, whatever happens (Ctrl-C included), and
the suite ends by checking that no process of it is left.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import thespian

from bench import capacity, lifecycle, raw, recovery, support, timers, traffic

ROWS = ("capacity", "per_process", "throughput", "latency", "lifecycle", "timers", "recovery")

#: Sizes per mode. ``smoke`` is the smallest case of every row (the test suite runs it).
SIZES: dict[str, dict[str, Any]] = {
    "smoke": {
        "capacity": 50,
        "per_process": 2,
        "throughput": {"conversations": 20, "api": 40, "batched": 400, "senders": 1, "batch": 100},
        "tell": 100,
        "fanout": 50,
        "latency": {
            "rate": 100,
            "light_rate": 50,
            "window_ms": 10,
            "seconds": 0.3,
            "conversations": 10,
            "senders": 1,
        },
        "asks": 50,
        "lifecycle": {"api": 4, "batched": 20, "senders": 1, "batch": 10},
        "churn": 20,
        "timers": {"timers": 100, "first_due_s": 2.0},
        "raw_timers": 100,
        "recovery": 50,
    },
    "quick": {
        "capacity": 2_000,
        "per_process": 10,
        "throughput": {
            "conversations": 200,
            "api": 400,
            "batched": 10_000,
            "senders": 2,
            "batch": 200,
        },
        "tell": 2_000,
        "fanout": 300,
        "latency": {
            "rate": 1000,
            "light_rate": 100,
            "window_ms": 10,
            "seconds": 1.0,
            "conversations": 200,
            "senders": 4,
        },
        "asks": 300,
        "lifecycle": {"api": 40, "batched": 400, "senders": 2, "batch": 100},
        "churn": 100,
        "timers": {"timers": 2_000, "first_due_s": 5.0},
        "raw_timers": 1_000,
        "recovery": 1_000,
    },
    "full": {
        "capacity": 100_000,
        "per_process": 500,
        "throughput": {
            "conversations": 1_000,
            "api": 3_000,
            "batched": 100_000,
            "senders": 4,
            "batch": 250,
        },
        "tell": 5_000,
        "fanout": 1_000,
        "latency": {
            "rate": 1000,
            "light_rate": 100,
            "window_ms": 10,
            "seconds": 5.0,
            "conversations": 1_000,
            "senders": 4,
        },
        "asks": 2_000,
        "lifecycle": {"api": 300, "batched": 3_000, "senders": 4, "batch": 100},
        "churn": 300,
        "timers": {"timers": 100_000, "first_due_s": 110.0},
        "raw_timers": 10_000,
        "recovery": 10_000,
    },
}

#: Rows measured once even when --runs asks for more (each takes minutes at full size).
ONCE = {"capacity", "per_process", "timers"}


@dataclass
class Row:
    key: str
    what: str
    target: str
    ours: str = ""
    reference: str = ""
    ratio: str = ""
    met: bool | None = None
    note: str = ""
    runs: int = 0
    seconds: float = 0.0
    load: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)


def _med(runs: list[dict[str, Any]], key: str) -> float:
    values = [
        r[key] for r in runs if isinstance(r.get(key), int | float) and not math.isnan(r[key])
    ]
    return float(statistics.median(values)) if values else math.nan


def _repeat(runs: int, *measures: Callable[[], dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Each run measures every one of ``measures`` in turn (reference first)."""
    results: list[list[dict[str, Any]]] = [[] for _ in measures]
    for _ in range(runs):
        for slot, measure in zip(results, measures, strict=True):
            slot.append(measure())
    return results


# ---------------------------------------------------------------------- rows


def row_capacity(size: dict[str, Any], runs: int) -> Row:
    n = size["capacity"]
    (ours,) = _repeat(runs, lambda: capacity.hold(n))
    live, pss = _med(ours, "live"), _med(ours, "pss_per_conversation")
    host = statistics.median(r["per_role_pss_per_conversation"]["host"] for r in ours)
    return Row(
        "capacity",
        "live conversations on one node, per_host large (one channel session, bot subscribed)",
        "100,000",
        ours=f"{live:,.0f} live; {pss / 1e3:.1f} KB each (host process {host / 1e3:.1f} KB);"
        f" opened at {_med(ours, 'open_per_s'):,.0f}/s",
        reference="product sizing: 50 per 2-vCPU node",
        ratio=f"{live / 50:,.0f}x",
        met=live >= 100_000 if n >= 100_000 else None,
        data={"ours": ours},
    )


def row_per_process(size: dict[str, Any], runs: int) -> Row:
    n = size["per_process"]
    ref, ours = _repeat(runs, lambda: raw.create_actors(n), lambda: capacity.per_process(n))
    ours_ms, ref_ms = _med(ours, "create_ms_median"), _med(ref, "create_ms_median")
    ours_mem, ref_mem = _med(ours, "pss_per_conversation"), _med(ref, "pss_per_actor")
    return Row(
        "per_process",
        "live conversations with placement.per_host: 1 (a process each)",
        "report count, memory, creation time",
        ours=f"{n:,} live; {ours_mem / 1e6:.1f} MB each; created in {ours_ms:.1f} ms"
        f" (p99 {_med(ours, 'create_ms_p99'):.1f} ms)",
        reference=f"raw actor: {ref_mem / 1e6:.1f} MB each; created in {ref_ms:.1f} ms"
        f" (p99 {_med(ref, 'create_ms_p99'):.1f} ms)",
        ratio=f"memory {ours_mem / ref_mem:.2f}x, time {ours_ms / ref_ms:.2f}x",
        data={"ours": ours, "reference": ref},
    )


def row_throughput(size: dict[str, Any], runs: int) -> Row:
    t = size["throughput"]
    tell, fan, api, batched = _repeat(
        runs,
        lambda: raw.tell_rate(size["tell"]),
        lambda: raw.fanout_rate(size["fanout"]),
        lambda: traffic.throughput(
            mode="api", conversations=t["conversations"], messages=t["api"], senders=t["senders"]
        ),
        lambda: traffic.throughput(
            mode="batched",
            conversations=t["conversations"],
            messages=t["batched"],
            senders=t["senders"],
            batch=t["batch"],
        ),
    )
    api_rate, batch_rate = _med(api, "per_s"), _med(batched, "per_s")
    tell_rate, fan_rate = _med(tell, "per_s"), _med(fan, "deliveries_per_s")
    return Row(
        "throughput",
        f"customer messages/s end to end (gateway -> conversation -> bot, agent, session),"
        f" {t['senders']} gateway processes",
        "10,000/s",
        ours=f"public API {api_rate:,.0f}/s; batched ({t['batch']}/message) {batch_rate:,.0f}/s",
        reference=f"tell from outside {tell_rate:,.0f}/s; fan-out 1->3 {fan_rate:,.0f} deliveries/s",
        ratio=f"API {api_rate / tell_rate:.2f}x, batched {batch_rate / tell_rate:.1f}x of tell",
        met=max(api_rate, batch_rate) >= 10_000,
        data={"tell": tell, "fanout": fan, "api": api, "batched": batched},
    )


def row_latency(size: dict[str, Any], runs: int) -> Row:
    lat = size["latency"]
    common = {"seconds": lat["seconds"], "conversations": lat["conversations"]}
    ref, api, light, batched = _repeat(
        runs,
        lambda: raw.ask_latency(size["asks"]),
        lambda: traffic.latency(rate=lat["rate"], senders=lat["senders"], **common),
        lambda: traffic.latency(rate=lat["light_rate"], senders=2, **common),
        lambda: traffic.latency(
            rate=lat["rate"], senders=2, mode="batched", window_ms=lat["window_ms"], **common
        ),
    )
    p99, achieved = _med(api, "p99_ms"), _med(api, "achieved_per_s")
    ref_p99 = _med(ref, "p99_ms")
    return Row(
        "latency",
        f"gateway call -> every subscriber delivered, offered {lat['rate']:,}/s",
        "p99 < 20 ms at 1,000/s",
        ours=f"public API ({lat['senders']} gateways): p99 {p99:,.0f} ms, p50 {_med(api, 'p50_ms'):,.0f} ms,"
        f" {achieved:,.0f}/s achieved; at {lat['light_rate']}/s: p99 {_med(light, 'p99_ms'):.1f} ms;"
        f" batching gateway ({lat['window_ms']:g} ms window) at {_med(batched, 'achieved_per_s'):,.0f}/s:"
        f" p99 {_med(batched, 'p99_ms'):.0f} ms",
        reference=f"ask round trip p99 {ref_p99:.2f} ms, p50 {_med(ref, 'p50_ms'):.2f} ms",
        ratio=f"{p99 / ref_p99:,.0f}x (at {lat['light_rate']}/s: {_med(light, 'p99_ms') / ref_p99:.1f}x)",
        met=p99 < 20 and achieved >= 0.95 * lat["rate"] if lat["rate"] >= 1000 else None,
        data={"api": api, "light": light, "batched": batched, "reference": ref},
    )


def row_lifecycle(size: dict[str, Any], runs: int) -> Row:
    life = size["lifecycle"]
    ref, api, batched = _repeat(
        runs,
        lambda: raw.churn(size["churn"]),
        lambda: lifecycle.lifecycles(mode="api", count=life["api"], senders=life["senders"]),
        lambda: lifecycle.lifecycles(
            mode="batched", count=life["batched"], senders=life["senders"], batch=life["batch"]
        ),
    )
    api_rate, batch_rate, ref_rate = _med(api, "per_s"), _med(batched, "per_s"), _med(ref, "per_s")
    return Row(
        "lifecycle",
        "conversation lifecycles/s (create, 3 messages, close, archived)",
        "1,000/s",
        ours=f"public API {api_rate:,.0f}/s; batched ({life['batch']} at a time) {batch_rate:,.0f}/s",
        reference=f"create actor + message + exit, 20 at a time: {ref_rate:,.0f}/s",
        ratio=f"API {api_rate / ref_rate:.2f}x, batched {batch_rate / ref_rate:.1f}x",
        met=max(api_rate, batch_rate) >= 1_000,
        data={"reference": ref, "api": api, "batched": batched},
    )


def row_timers(size: dict[str, Any], runs: int) -> Row:
    tm = size["timers"]
    ref, ours = _repeat(
        runs,
        lambda: raw.timer_lag(size["raw_timers"]),
        lambda: timers.timer_lag(tm["timers"], first_due_s=tm["first_due_s"]),
    )
    p99, ref_p99 = _med(ours, "p99_ms"), _med(ref, "p99_ms")
    return Row(
        "timers",
        f"timer lag with {tm['timers']:,} timers pending on one host ({2 * tm['timers']:,} alarms)",
        "p99 < 20 ms with 100,000",
        ours=f"p99 {p99:.0f} ms, p50 {_med(ours, 'p50_ms'):.0f} ms, max {_med(ours, 'max_ms'):.0f} ms",
        reference=f"{size['raw_timers']:,} wakeupAfter in one actor: p99 {ref_p99:,.0f} ms"
        f" (arming took {_med(ref, 'arm_s'):.1f} s)",
        ratio=f"{p99 / ref_p99:.2g}x" if ref_p99 > 0 else "",
        met=p99 < 20 if tm["timers"] >= 100_000 else None,
        data={"ours": ours, "reference": ref},
    )


def row_recovery(size: dict[str, Any], runs: int) -> Row:
    n = size["recovery"]
    (ours,) = _repeat(runs, lambda: recovery.recovery(n))
    rebuilt, answered = _med(ours, "rebuilt_s"), _med(ours, "answered_s")
    return Row(
        "recovery",
        f"host with {n:,} live conversations killed (SIGKILL): all rebuilt / all answered",
        "all rebuilt within 2 s (10,000)",
        ours=f"rebuilt in {rebuilt:.2f} s, all answered in {answered:.2f} s",
        reference="",
        met=answered <= 2.0 if n >= 10_000 else None,
        data={"ours": ours},
    )


MEASURE: dict[str, Callable[[dict[str, Any], int], Row]] = {
    "capacity": row_capacity,
    "per_process": row_per_process,
    "throughput": row_throughput,
    "latency": row_latency,
    "lifecycle": row_lifecycle,
    "timers": row_timers,
    "recovery": row_recovery,
}


# ---------------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in open("/proc/cpuinfo").read().splitlines():  # noqa: SIM115
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        memory = int(open("/proc/meminfo").read().split()[1]) * 1024  # noqa: SIM115
    except OSError:
        memory = 0
    return {
        "cpus": os.cpu_count(),
        "cpu": model,
        "memory_gb": round(memory / 2**30),
        "python": platform.python_version(),
        "thespian": getattr(thespian, "__version__", "4.0.1"),
        "date": datetime.date.today().isoformat(),
    }


def _verdict(met: bool | None) -> str:
    return "n/a" if met is None else ("met" if met else "MISSED")


def print_table(
    rows: list[Row], mode: str, host: dict[str, Any], *, header: bool = True, out: Any = None
) -> None:
    out = out or sys.stdout
    if header:
        print(file=out)
        print(
            f"cx-engine performance ({mode} mode,"
            f" {host['date']}; {host['cpus']} cores, {host['memory_gb']} GB,"
            f" Python {host['python']}, Thespian {host['thespian']}, multiprocTCPBase)",
            file=out,
        )
    for row in rows:
        print(f"\n[{row.key}] {row.what}", file=out)
        print(f"  target     {row.target}  -> {_verdict(row.met)}", file=out)
        print(f"  ours       {row.ours}", file=out)
        if row.reference:
            print(f"  reference  {row.reference}", file=out)
        if row.ratio:
            print(f"  ratio      {row.ratio}", file=out)
        print(f"  ({row.runs} run(s), {row.seconds:.0f} s, load average {row.load:.1f})", file=out)


def markdown(rows: list[Row], mode: str, host: dict[str, Any], command: str) -> str:
    lines = [
        f"Measured {host['date']} on {host['cpus']} cores ({host['cpu']}), {host['memory_gb']} GB,"
        f" Python {host['python']}, Thespian {host['thespian']}; `{command}` ({mode} mode).",
        "",
        "| what | target | ours | reference (same run) | ratio | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.what} | {row.target} | {row.ours} | {row.reference or '-'} | {row.ratio or '-'}"
            f" | {_verdict(row.met)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    mode_group = parser.add_mutually_exclusive_group()
    mode_group.add_argument("--quick", action="store_true", help="smaller sizes (under 2 minutes)")
    mode_group.add_argument("--smoke", action="store_true", help="the smallest case of every row")
    parser.add_argument("--only", default="", help=f"comma-separated rows of: {', '.join(ROWS)}")
    parser.add_argument("--runs", type=int, default=0, help="runs per row (medians are reported)")
    parser.add_argument("--json", default="", help="write every figure to this file")
    parser.add_argument("--markdown", action="store_true", help="print the table as markdown")
    parser.add_argument(
        "--profile",
        default="",
        help="sample the engine's processes with py-spy; summaries go to this directory",
    )
    args = parser.parse_args(argv)
    if args.profile:
        support.PROFILE_DIR = Path(args.profile)

    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    wanted = [r.strip() for r in args.only.split(",") if r.strip()] or list(ROWS)
    unknown = set(wanted) - set(ROWS)
    if unknown:
        parser.error(f"unknown rows: {', '.join(sorted(unknown))}")
    runs = args.runs or (3 if mode == "full" else 1)
    size = SIZES[mode]
    host = machine()
    command = "python -m bench" + {"full": "", "quick": " --quick", "smoke": " --smoke"}[mode]
    stale = support.reap_stale()
    if stale:
        print(
            f"killed {len(stale)} processes left by an earlier run that was killed", file=sys.stderr
        )
    rows: list[Row] = []
    started = time.perf_counter()
    try:
        with support.interrupts_raise():
            for key in wanted:
                row_runs = 1 if key in ONCE and mode == "full" and not args.runs else runs
                print(f"-- {key} ({row_runs} run(s)) ...", file=sys.stderr, flush=True)
                t0 = time.perf_counter()
                try:
                    row = MEASURE[key](size, row_runs)
                except Exception as error:  # one row failing does not lose the others
                    traceback.print_exc()
                    row = Row(key, key, "", ours=f"FAILED: {error!r:.300}", met=False)
                row.runs, row.seconds = row_runs, time.perf_counter() - t0
                row.load = os.getloadavg()[0]
                rows.append(row)
                print_table([row], mode, host, header=False, out=sys.stderr)
                if args.json:  # kept up to date: an interrupted suite keeps its figures
                    _write_json(args.json, mode, host, rows)
    except KeyboardInterrupt:
        print("interrupted: every system started has been stopped", file=sys.stderr)
        return 130
    finally:
        left = support.leftovers()
        if left:
            print(f"processes left behind (killed): {sorted(left)}", file=sys.stderr)
    print_table(rows, mode, host)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    if args.markdown:
        print()
        print(markdown(rows, mode, host, command))
    if args.json:
        _write_json(args.json, mode, host, rows)
    failed = [r.key for r in rows if r.ours.startswith("FAILED")]
    return 0 if not left and not failed else 1


def _write_json(path: str, mode: str, host: dict[str, Any], rows: list[Row]) -> None:
    data = {"mode": mode, "machine": host, "rows": [asdict(r) for r in rows]}
    Path(path).write_text(json.dumps(data, indent=1, default=str))


if __name__ == "__main__":
    raise SystemExit(main())
