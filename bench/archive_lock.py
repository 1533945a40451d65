"""Benchmark: what a locked archive costs everyone else.

    python -m bench.archive_lock [--closing 300] [--live 5] [--seconds 10] [--system] [--after 8]

An embedded engine on real time (everything in this process; ``--system``: the engine on
multiprocTCPBase, each actor a process, and a connected gateway) opens ``--live``
conversations and ``--closing`` more; a second SQLite connection then holds ``BEGIN EXCLUSIVE`` on the
archive while the closing ones are ended, customer messages go to the live ones for
``--seconds``, and a returning and a new customer start a session. Then the lock goes and
the closing conversations must be archived and CLOSED. Prints the time to end the closing
conversations, the customer messages' count and latency, each start_session's outcome, and
the conversations' states while locked and ``--after`` seconds (8) after the release.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import time
from pathlib import Path

from bench import support
from runtime.gateway import Gateway, GatewayError

RELEASE_WAIT_S = 8.0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--closing", type=int, default=300)
    parser.add_argument("--live", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--system", action="store_true", help="multiprocTCPBase, not embedded")
    parser.add_argument(
        "--after",
        type=float,
        default=RELEASE_WAIT_S,
        help="seconds from the release to the last look at the conversations' states",
    )
    args = parser.parse_args(argv)
    with support.scratch("archive-lock") as directory:
        archive = directory / "archive.sqlite3"
        if not args.system:
            config = {
                "storage": {"archive": str(archive), "journal": str(directory / "journal")},
                "logging": {"level": "error"},
            }
            with Gateway.embedded(config, virtual_time=False, seed=1) as gw:
                _measure(gw, archive, args)
            return
        path = support.write_config(directory, {"storage": {"fsync": "always"}})
        with support.engine(path), Gateway.connect(path) as gw:
            _measure(gw, archive, args)


def _measure(gw: Gateway, archive: Path, args: argparse.Namespace) -> None:
    live = [gw.start_session(f"live-{i}", "WEB", f"v{i}") for i in range(args.live)]
    back = gw.start_session("back-1", "WEB", "b")
    gw.end_session(back.channel_session_id)
    closing = [gw.start_session(f"c-{i}", "WEB", f"w{i}") for i in range(args.closing)]
    lock = sqlite3.connect(archive, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    started = time.monotonic()
    for ref in closing:
        gw.end_session(ref.channel_session_id)
    print(f"ending {args.closing} conversations: {time.monotonic() - started:.2f} s")
    latencies = []
    until = time.monotonic() + args.seconds
    while time.monotonic() < until:
        for ref in live:
            started = time.monotonic()
            gw.customer_message(ref.channel_session_id, "hello")
            latencies.append(time.monotonic() - started)
    print(
        f"customer messages in {args.seconds:g} s: {len(latencies)},"
        f" median {statistics.median(latencies) * 1000:.1f} ms,"
        f" max {max(latencies) * 1000:.0f} ms"
    )
    for who, customer, identifier in (("returning", "back-1", "b"), ("new", "new-1", "n")):
        started = time.monotonic()
        try:
            gw.start_session(customer, "WEB", identifier)
            outcome = "opened"
        except GatewayError as error:
            outcome = f"{type(error).__name__}: {str(error)[:80]}"
        print(f"{who} customer: {time.monotonic() - started:.2f} s, {outcome}")
    print("while locked:", gw.status()["conversations"])
    lock.execute("ROLLBACK")
    lock.close()
    time.sleep(args.after)
    gw.customer_message(live[0].channel_session_id, "after")
    print(f"{args.after:g} s after the release:", gw.status()["conversations"])


if __name__ == "__main__":
    main()
