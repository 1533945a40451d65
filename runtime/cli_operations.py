"""``cx drain`` and ``cx reload``: an operator's requests to a running engine.

``cx drain`` stops the engine opening new conversations (live ones finish; docs/OPERATIONS.md,
"Drain"); with ``--wait`` it returns once none is left (CLOSED and archived), or after
``--timeout`` seconds with exit code 1. ``cx reload`` reads the configuration file again and
applies what may change at run time ("Reload"); a refusal names the key (exit code 2).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from runtime import control

__all__ = ["DRAIN_POLL_S", "add_commands", "drain_command", "reload_command"]

#: How often ``cx drain --wait`` asks how many conversations are left.
DRAIN_POLL_S = 0.5


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser],
) -> None:
    drain = with_config(
        commands.add_parser(
            "drain", help="open no new conversation; live ones finish (then `cx stop`)"
        )
    )
    drain.add_argument(
        "--wait", action="store_true", help="return once no live conversation is left"
    )
    drain.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="S",
        help="with --wait: give up after S seconds (exit code 1)",
    )
    with_config(
        commands.add_parser(
            "reload", help="apply the bot texts, timers and routing of config.yaml now"
        )
    )


def drain_command(config: str, *, wait: bool, timeout: float | None) -> int:
    with control.connect(config) as gw:
        state = gw.drain_engine()
        print(f"cx drain: draining; {state['live']} live conversation(s)")
        if not wait:
            return 0
        deadline = None if timeout is None else time.monotonic() + timeout
        live = int(state["live"])
        while live:
            if deadline is not None and time.monotonic() >= deadline:
                print(f"cx drain: {live} live conversation(s) left after {timeout:g} s")
                return 1
            time.sleep(DRAIN_POLL_S)
            left = int(gw.drain_status()["live"])
            if left != live:
                print(f"cx drain: {left} live conversation(s)")
            live = left
        print("cx drain: drained: no live conversation; `cx stop` loses nothing")
        return 0


def reload_command(config: str) -> int:
    with control.connect(config) as gw:
        changed = gw.reload_config()
    if changed:
        print(f"cx reload: applied {', '.join(changed)} (to new conversations)")
    else:
        print("cx reload: nothing changed")
    return 0
