"""Soak: does memory stay flat? Many lifecycles, then a push flood through ``cx gateway``.

::

    python -m bench.soak                          # 20,000 lifecycles, a 60 s flood
    python -m bench.soak --lifecycles 4000 --flood 15

1. The engine (``multiprocTCPBase``) runs ``--lifecycles`` lifecycles in batches (start, three
   customer messages, end: archived), with one agent who stays logged in and joins each
   conversation of the first slice of every batch; the memory of every engine process is read
   after the first tenth (warm-up) and at the end.
2. ``cx gateway`` in front of it: one connection floods (customer messages on one session as
   fast as the gateway takes them) while another subscribes to that session and reads every
   pushed event; the gateway's memory is read after 5 s and at the end, and the subscriber's
   stream is checked: every seq once, in order.

Memory is the proportional set size (shared pages divided among their users), by role (the
process title). Flat after warm-up is the expectation: the difference is printed per role.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench import support
from bench.chaos_netgw import TOKEN, Broken, Client
from bench.common import customer_messages, end_conversations, open_conversations
from runtime import procs
from runtime.gateway import Gateway

ROOT = Path(__file__).resolve().parent.parent


def by_role(pids: set[int]) -> dict[str, int]:
    """Proportional set size in MB, summed by role (the process title's first words)."""
    sizes: dict[str, int] = defaultdict(int)
    for pid in pids:
        line = procs.cmdline(pid)
        title = " ".join(line).split(" --config")[0] if line else str(pid)
        role = title.removeprefix("cx: ").split(" ActorAddr-")[0]  # Thespian's admin, logger
        if role.startswith("host "):
            role = " ".join(role.split()[:2])  # every host of a kind together
        sizes[role] += support.memory_of([pid]).pss
    return {role: round(size / 1e6, 1) for role, size in sorted(sizes.items())}


def lifecycles(gw: Gateway, count: int, batch: int, offset: int = 0) -> float:
    """Run ``count`` lifecycles in batches (ids numbered from ``offset``); their rate."""
    started = time.monotonic()
    for first in range(offset, offset + count, batch):
        population = open_conversations(gw, batch, prefix=f"soak-{first}", batch=batch)
        for conversation_id in population.conversation_ids[:5]:
            gw.agent_join("alice", conversation_id)
        customer_messages(gw, population.session_ids, [f"question {k}" for k in range(3)])
        end_conversations(gw, population.conversation_ids)
    return count / (time.monotonic() - started)


def flood(port: int, seconds: float, gateway_pid: int) -> dict[str, Any]:
    """One connection floods a session, another reads its pushes; memory and the stream."""
    writer = Client(port)
    ref = writer.call("start_session", customer_id="soak-flood", channel="WEB", identifier="f")
    reader = Client(port)
    reader.sock.settimeout(2.0)  # to look at ``stop`` now and then
    seqs: list[int] = []
    stop = threading.Event()

    def read() -> None:
        reader.send("subscribe_session", channel_session_id=ref["channel_session_id"])
        while not stop.is_set():
            try:
                frame = reader.frame()
            except TimeoutError:
                continue
            except Broken:
                return
            if "push" in frame:
                seqs.append(int(frame["event"]["seq"]))

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    time.sleep(1.0)
    before = after_warmup = None
    started = time.monotonic()
    sent = 0
    while time.monotonic() - started < seconds:
        writer.call("customer_message", channel_session_id=ref["channel_session_id"], text="x")
        sent += 1
        if after_warmup is None and time.monotonic() - started > 5:
            after_warmup = support.memory_of([gateway_pid]).pss
        if before is None:
            before = support.memory_of([gateway_pid]).pss
    time.sleep(2.0)
    end = support.memory_of([gateway_pid]).pss
    stop.set()
    thread.join(5)
    writer.close()
    reader.close()
    in_order = seqs == list(range(seqs[0], seqs[0] + len(seqs))) if seqs else False
    return {
        "messages": sent,
        "pushes": len(seqs),
        "gap_free_in_order": in_order,
        "gateway_mb": [round((v or 0) / 1e6, 1) for v in (before, after_warmup, end)],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--lifecycles", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--flood", type=float, default=60.0, help="seconds of push flood")
    options = parser.parse_args(argv)
    with support.scratch("cx-soak-") as directory:
        port = support.free_port()
        config = support.write_config(
            Path(directory),
            {
                "gateway": {"listen": f"127.0.0.1:{port}"},
                "timers": {"customer_inactivity": {"seconds": 3600}},
            },
        )
        with support.engine(config) as running, Gateway.connect(config) as gw:
            gw.agent_login("alice", max_conversations=100)
            warm = max(options.batch, options.lifecycles // 10 // options.batch * options.batch)
            rate = lifecycles(gw, warm, options.batch)
            time.sleep(2.0)
            before = by_role(running.pids())
            half = (options.lifecycles - warm) // 2 // options.batch * options.batch
            lifecycles(gw, half, options.batch, warm)
            time.sleep(2.0)
            middle = by_role(running.pids())
            rate = lifecycles(gw, options.lifecycles - warm - half, options.batch, warm + half)
            time.sleep(5.0)  # archived, journals compacted at their next look
            after = by_role(running.pids())
            print(
                f"lifecycles: {options.lifecycles} at {rate:.0f}/s; memory after {warm},"
                f" {warm + half} and {options.lifecycles}:"
            )
            for role in sorted(set(before) | set(after)):
                b, m, a = (x.get(role, 0.0) for x in (before, middle, after))
                print(f"  {role:<24} {b:7.1f} MB -> {m:7.1f} MB -> {a:7.1f} MB ({a - b:+.1f})")
            gateway = subprocess.Popen(
                [sys.executable, "-m", "runtime.cli", "gateway", "--config", str(config)],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT), "CX_GATEWAY_TOKEN": TOKEN},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    try:
                        Client(port).close()
                        break
                    except OSError:
                        time.sleep(0.1)
                result = flood(port, options.flood, gateway.pid)
            finally:
                gateway.terminate()
                gateway.wait(10)
            start, warmed, end = result["gateway_mb"]
            print(
                f"push flood: {options.flood:g} s, {result['messages']} messages, {result['pushes']}"
                f" pushes read, gap-free and in order: {result['gap_free_in_order']};"
                f" cx gateway {start} MB -> {warmed} MB after 5 s -> {end} MB at the end"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
