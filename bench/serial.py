"""The serial fraction: how much of the engine's CPU the busiest single process spends, at
saturation.

Set-up as :mod:`bench.traffic`'s batched row: ``conversations`` conversations, each with one
WEB channel session, an agent subscribed (one per 100 conversations) and the bot; they are
spread over ``hosts`` conversation hosts. Sender processes send batches of customer messages
(``Gateway.pipeline(acks="last")``) as fast as they are answered. The CPU time of every
process of the engine (utime + stime from ``/proc/PID/stat``) is read before the senders
start and after the last batch is answered; each process is named by its title
(:mod:`infra.proctitle`). A process's share of all the engine's CPU in that interval bounds
how far more cores can help: when one process holds a share ``s``, the engine cannot go
faster than ``1 / s`` times that process's own speed, however many cores it is given.

    python -m bench.serial --hosts 1,2 --spread 1,2 --runs 3

Besides the busiest process, the busiest process *of a kind whose number is fixed* is
reported (every process but the conversation hosts: agent hosts, Routers, archivists, the
TopicMonitor, the AgentSupervisor): conversation hosts are added with the load, so what bounds
the scale-out is the busiest of the others.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from pathlib import Path
from typing import Any

from bench import support
from bench.common import join_agents, open_conversations, settle, ticks_of
from bench.traffic import batch_sender, slices
from runtime import procs
from runtime.gateway import Gateway

TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def _title(pid: int) -> str:
    words = procs.cmdline(pid)
    title = " ".join(words).strip()
    return title.split(" --config")[0] if title else f"pid {pid}"


def _ticks(pids: set[int]) -> dict[int, int]:
    found = {pid: ticks_of(pid) for pid in pids}
    return {pid: ticks for pid, ticks in found.items() if ticks is not None}


#: The title of a conversation host: the one kind of process whose count the engine raises
#: with the load (``placement.hosts``, ``placement.per_host``); every other kind is a fixed
#: number of processes, whose busiest bounds how far more hosts can help.
HOST_TITLE = "cx: host conversations"


def measure(
    *,
    hosts: int,
    conversations: int,
    messages: int,
    senders: int,
    batch: int,
    window: int = 3,
    spread: int = 1,
) -> dict[str, Any]:
    """One run: throughput, engine CPU per message and the busiest process's share.
    ``spread``: agent hosts, Routers and archivists (``placement.agent_hosts``, ``routers``,
    ``archivists``) each this many."""
    per_sender = messages // senders
    total = per_sender * senders
    with support.scratch("serial") as directory:
        sections = {
            "placement": {
                "per_host": math.ceil(conversations / hosts),
                "hosts": hosts,
                "agent_hosts": spread,
                "routers": spread,
                "archivists": spread,
            }
        }
        config = support.write_config(Path(directory), sections)
        with support.engine(config) as running, Gateway.connect(config) as gw:
            population = open_conversations(gw, conversations, prefix="s")
            join_agents(gw, population, prefix="s")
            settle(running)
            jobs: list[Any] = [
                (batch_sender, (str(config), cids, sids, per_sender, batch, window, f"s{i}"))
                for i, (cids, sids) in enumerate(slices(population, senders))
            ]
            before: dict[int, int] = {}
            clock: dict[str, float] = {}

            def started() -> None:
                clock["start"] = time.monotonic()
                before.update(_ticks(running.pids()))

            results = support.run_workers(jobs, timeout=600, started=started)
            after = _ticks(running.pids())
            titles = {pid: _title(pid) for pid in after}
    elapsed = max(r["done"] for r in results) - clock["start"]
    used = {pid: after[pid] - before.get(pid, 0) for pid in after}
    engine_ticks = sum(used.values())
    busiest = max(used, key=lambda pid: used[pid])
    others = [pid for pid in used if not titles[pid].startswith(HOST_TITLE)]
    fixed = max(others, key=lambda pid: used[pid]) if others else busiest
    return {
        "hosts": hosts,
        "spread": spread,
        "busiest_fixed": titles[fixed],
        "busiest_fixed_share": used[fixed] / engine_ticks if engine_ticks else math.nan,
        "messages": total,
        "per_s": total / elapsed,
        "cpu_us_per_message": engine_ticks / TICKS_PER_S / total * 1e6,
        "busiest": titles[busiest],
        "busiest_share": used[busiest] / engine_ticks if engine_ticks else math.nan,
        "processes": len(used),
        "shares": {
            f"{titles[pid]} ({pid})": round(ticks / engine_ticks, 3)
            for pid, ticks in sorted(used.items(), key=lambda kv: -kv[1])[:6]
            if engine_ticks
        },
    }


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run whose throughput is the median (its own busiest process and shares)."""
    middle = statistics.median_low([r["per_s"] for r in runs])
    return next(r for r in runs if r["per_s"] == middle)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", default="1,2", help="comma-separated host counts")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--conversations", type=int, default=2000)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--senders", type=int, default=2)
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument(
        "--spread",
        default="1",
        help="comma-separated counts of agent hosts, Routers and archivists (each this many)",
    )
    args = parser.parse_args(argv)
    for hosts, spread in (
        (int(h), int(n)) for h in args.hosts.split(",") for n in args.spread.split(",")
    ):
        runs = [
            measure(
                hosts=hosts,
                conversations=args.conversations,
                messages=args.messages,
                senders=args.senders,
                batch=args.batch,
                spread=spread,
            )
            for _ in range(args.runs)
        ]
        row = median_of(runs)
        each = ", ".join(f"{r['per_s']:,.0f}/s {r['busiest_share']:.1%}" for r in runs)
        print(
            f"hosts {hosts}, spread {spread}: {row['per_s']:,.0f} messages/s, "
            f"{row['cpu_us_per_message']:.0f} us engine CPU per message, busiest "
            f"{row['busiest']!r} {row['busiest_share']:.1%} of engine CPU, busiest of a fixed"
            f" number {row['busiest_fixed']!r} {row['busiest_fixed_share']:.1%} (runs: {each})"
        )
        for name, share in row["shares"].items():
            print(f"    {share:6.1%}  {name}")


if __name__ == "__main__":
    main()
