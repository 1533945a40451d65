"""``cx metrics``, ``cx list`` and ``cx customer``: the engine's figures and inventory from the
command line, through a gateway to the running engine (the same calls as
``Gateway.metrics``, ``conversations``, ``agents``, ``queues`` and ``customer``).

- ``cx metrics``: the Prometheus text the daemon's ``/metrics`` serves (``--json``: the
  snapshot it is made of); the daemon's own restarts (engine, system) only at ``/metrics``;
- ``cx list conversations [--state S] [--queue Q] [--agent A] [--customer C] [--min-age SECONDS]``;
- ``cx list agents``, ``cx list queues``;
- ``cx customer ID``: the customer's room, its archived conversations and the live ones.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from runtime import control
from runtime.metrics import render

__all__ = ["add_commands"]

WithConfig = Callable[[argparse.ArgumentParser], argparse.ArgumentParser]


def add_commands(commands: Any, with_config: WithConfig) -> None:
    """Add ``metrics``, ``list`` and ``customer`` to the ``cx`` parser; each sets ``run``."""
    metrics = with_config(
        commands.add_parser("metrics", help="the engine's metrics (Prometheus text, or --json)")
    )
    metrics.add_argument("--json", action="store_true", help="print the snapshot as JSON")
    metrics.set_defaults(run=_metrics)

    listing = with_config(
        commands.add_parser("list", help="live conversations (filtered), agents or queues")
    )
    listing.add_argument("what", choices=("conversations", "agents", "queues"))
    listing.add_argument("--state", help="conversations in this state (e.g. ACTIVE)")
    listing.add_argument("--queue", help="conversations routed (or waiting) in this queue")
    listing.add_argument("--agent", help="conversations this agent is subscribed to")
    listing.add_argument("--customer", help="conversations of this customer id")
    listing.add_argument(
        "--min-age", type=float, default=0, metavar="SECONDS", help="opened at least this long ago"
    )
    listing.add_argument("--limit", type=int, default=1000, help="at most this many (default 1000)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(run=_list)

    customer = with_config(
        commands.add_parser("customer", help="a customer's room, history and live conversations")
    )
    customer.add_argument("customer_id", metavar="ID", help="the customer id")
    customer.add_argument("--json", action="store_true", help="print JSON")
    customer.set_defaults(run=_customer)


def _metrics(args: argparse.Namespace) -> int:
    with control.connect(args.config) as gw:
        figures = gw.metrics()
    if args.json:
        _print_json(figures)
    else:
        sys.stdout.write(render(lambda: figures).decode())
    return 0


def _list(args: argparse.Namespace) -> int:
    with control.connect(args.config) as gw:
        if args.what == "agents":
            found: Any = gw.agents()
        elif args.what == "queues":
            found = gw.queues()
        else:
            found = gw.conversations(
                state=args.state,
                queue=args.queue,
                agent_id=args.agent,
                customer_id=args.customer,
                min_age_seconds=args.min_age,
                limit=args.limit,
            )
    if args.json:
        _print_json(found)
    elif args.what == "agents":
        _table(["agent_id", "presence", "free", "queues"], found)
    elif args.what == "queues":
        rows = [{"queue": name, **figures} for name, figures in found.items()]
        _table(
            [
                "queue",
                "waiting",
                "oldest_wait_ms",
                "assigned",
                "rona",
                "no_agent",
                "answered",
                "service_level",
            ],
            rows,
        )
    else:
        _table(["id", "state", "queue", "agents", "customer_id", "age_seconds", "events"], found)
    return 0


def _customer(args: argparse.Namespace) -> int:
    with control.connect(args.config) as gw:
        found = gw.customer(args.customer_id)
    if args.json:
        _print_json(found)
        return 0
    print(f"customer {found['customer_id']}")
    for room in found["rooms"]:
        print(
            f"  room {room['room_id']} ({room['mode']}, since {room['created_at']}): "
            f"{len(room['conversations'])} archived conversation(s)"
        )
        for past in room["conversations"]:
            print(
                f"    {past['id']}  {past['state']:<7} {past['created_at']} -> "
                f"{past['ended_at']}  {past['seq']} events"
            )
    print(f"  live: {len(found['live'])} conversation(s)")
    for live in found["live"]:
        print(
            f"    {live['id']}  {live['state']:<13} queue {live['queue']}  "
            f"agents {', '.join(live['agents']) or '-'}"
        )
    return 0


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def _table(columns: list[str], rows: list[dict[str, Any]]) -> None:
    """Rows under a header, each column as wide as its widest cell."""
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    for line in [columns, *cells]:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )
    if not rows:
        print("(none)")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
