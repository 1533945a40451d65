"""Lifecycles under ``storage.fsync: interval`` for a while, then the engine's CPU when idle.

::

    python -m bench.idle                       # 3,000 lifecycles, then 5 s idle
    python -m bench.idle --lifecycles 1500 --idle 5 --fsync never

One gateway runs lifecycles one after the other (start, a customer message, an agent joins and
answers, end: archived), printing the rate of each slice of 250, then the load stops and the
CPU every engine process uses over ``--idle`` seconds is printed. A host that piles up
Thespian wakeups slows down slice after slice and keeps a core busy when idle; the reference is
the same run with ``--fsync never`` (no journal sync to wake up for) in the same process.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from bench import support
from bench.common import cpu_ticks
from runtime.gateway import Gateway

SLICE = 250


def run(lifecycles: int, idle_s: float, fsync: str) -> dict[str, object]:
    with support.scratch("cx-idle-") as directory:
        config = support.write_config(
            Path(directory),
            {
                "storage": {"fsync": fsync},
                "timers": {"customer_inactivity": {"seconds": 3600}},
            },
        )
        with support.engine(config) as running, Gateway.connect(config) as gw:
            gw.agent_login("alice", max_conversations=100)
            rates: list[float] = []
            started = time.monotonic()
            for n in range(lifecycles):
                ref = gw.start_session(f"c{n}", "WEB", f"v{n}")
                gw.customer_message(ref.channel_session_id, "hello", message_id=f"m{n}")
                gw.agent_join("alice", ref.conversation_id)
                gw.agent_message("alice", ref.conversation_id, "hi")
                gw.end_conversation(ref.conversation_id)
                if (n + 1) % SLICE == 0:
                    now = time.monotonic()
                    rates.append(round(SLICE / (now - started), 1))
                    started = now
            time.sleep(1.0)  # the last archive writes
            pids = running.pids()
            before = cpu_ticks(pids)
            time.sleep(idle_s)
            ticks = cpu_ticks(pids) - before
            idle_percent = round(100 * ticks / (os.sysconf("SC_CLK_TCK") * idle_s), 1)
    return {"fsync": fsync, "rates": rates, "idle_cpu_percent": idle_percent}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.idle", description=__doc__.split("\n")[0])
    parser.add_argument("--lifecycles", type=int, default=3000)
    parser.add_argument("--idle", type=float, default=5.0, help="seconds idle after the load")
    parser.add_argument("--fsync", default=None, help="only this policy (default: interval and never)")
    options = parser.parse_args(argv)
    for fsync in [options.fsync] if options.fsync else ["interval", "never"]:
        result = run(options.lifecycles, options.idle, fsync)
        print(
            f"fsync {result['fsync']:<8} lifecycles/s per {SLICE}: {result['rates']};"
            f" idle CPU of the engine: {result['idle_cpu_percent']} % of a core",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
