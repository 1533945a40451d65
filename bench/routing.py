"""Routed requests over one Router or several: the CPU each engine process spends on them.

    python -m bench.routing --requests 800 --routers 1 2

Set-up: the engine on multiprocTCPBase (bot off), eight queues with one agent each (room for
100 conversations each), ``requests`` conversations opened beforehand. Measured: one public
``request_agent`` call per conversation (queues in turn), until every request is routed (no
request waiting); the CPU time (user + system, from ``/proc``) each engine process used
meanwhile, and the busiest Router's share of all of it.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from bench import support
from bench.common import open_conversations
from runtime.gateway import Gateway

QUEUES = tuple(f"queue-{n}" for n in range(8))
_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # gone
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def _title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return "?"


def _waiting(gw: Gateway) -> int:
    return sum(gw.status()["queues"].values())


def routing(*, routers: int, requests: int) -> dict[str, Any]:
    with support.scratch("routing") as directory:
        sections = {"placement": {"routers": routers}, "bot": {"enabled": False}}
        config = support.write_config(directory, sections)
        with support.engine(config) as running, Gateway.connect(config) as gw:
            for n, queue in enumerate(QUEUES):
                gw.agent_login(f"agent-{n}", queues=[queue], max_conversations=100)
                gw.agent_ready(f"agent-{n}")
            population = open_conversations(gw, requests, prefix="r")
            pids = running.pids()
            before = {pid: _cpu_seconds(pid) for pid in pids}
            start = time.monotonic()
            for n, conversation_id in enumerate(population.conversation_ids):
                gw.request_agent(conversation_id, queue=QUEUES[n % len(QUEUES)])
            while _waiting(gw):
                time.sleep(0.01)
            elapsed = time.monotonic() - start
            used = {pid: _cpu_seconds(pid) - before.get(pid, 0.0) for pid in running.pids()}
            titles = {pid: _title(pid) for pid in used}
    total = sum(used.values())
    router_cpu = [s for pid, s in used.items() if titles[pid].startswith("cx: router")]
    return {
        "routers": routers,
        "requests": requests,
        "per_s": requests / elapsed,
        "engine_cpu_s": total,
        "busiest_router_share": max(router_cpu) / total if total else 0.0,
        "all_routers_share": sum(router_cpu) / total if total else 0.0,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=800)
    parser.add_argument("--routers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args(argv)
    for routers in args.routers:
        row = routing(routers=routers, requests=args.requests)
        print(
            f"routers {row['routers']}: {row['requests']} requests, {row['per_s']:.0f}/s,"
            f" engine CPU {row['engine_cpu_s']:.2f} s, busiest Router"
            f" {100 * row['busiest_router_share']:.1f} % (all Routers"
            f" {100 * row['all_routers_share']:.1f} %)"
        )


if __name__ == "__main__":
    main()
