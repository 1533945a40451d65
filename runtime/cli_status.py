"""``cx status`` and ``cx history``: what a running engine holds, asked from the command line.

``cx status`` reads the engine's state from its pid file and processes first (it never waits on
an engine that is recovering), then the counts from the engine, waited for STATUS_TIMEOUT_S at
most; ``cx history ROOM`` lists a room's archived conversations.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from domain.errors import CxError, ErrorKind
from infra.config import load_config
from runtime import control, pidfile

__all__ = ["EXIT_DEGRADED", "STATUS_TIMEOUT_S", "DegradedError", "history_command", "status_command"]

#: How long ``cx status`` waits for the engine's answer.
STATUS_TIMEOUT_S = 2.0
#: ``cx status``: running but not serving (recovering, or no answer within STATUS_TIMEOUT_S).
EXIT_DEGRADED = 4


class DegradedError(CxError):
    """The engine runs but does not serve now: it is recovering, or it did not answer."""
    kind = ErrorKind.UNAVAILABLE


def status_command(config: str, *, as_json: bool) -> int:
    """The engine's state from its pid file and processes first (it never waits on an engine
    that is recovering), then the counts from the engine, waited for STATUS_TIMEOUT_S at most."""
    settings = load_config(config)
    record = pidfile.running_record(settings)
    admin = f"{settings.system.bind}:{settings.system.admin_port}"
    down = [] if record is None else record.down_now()
    if record is not None and (record.state != "running" or down):
        return _status_degraded(record, down, admin, as_json=as_json)
    status = _engine_status(config)
    engine = None if record is None else {**_engine_fields(record), "state": "running", "down": []}
    if as_json:
        print(json.dumps({"engine": engine, **status}, indent=2))
        return 0
    state = "draining (cx drain: no new conversation)" if status.get("draining") else "running"
    if record is None:
        print(f"engine         {state}, admin {admin} (no pid file: not started by cx start)")
    else:
        print(f"engine         {state}, pid {record.pid}, admin {admin}, since {record.started_at}")
    failing = status.get("storage", {}).get("failing_journals", 0)
    if failing:
        print(f"storage        FAILING: {failing} conversation host journal(s) refuse writes (see the log)")
    for title, counts in (
        ("conversations", status["conversations"]),
        ("agents", status["agents"]),
        ("queues", status["queues"]),
    ):
        print(f"\n{title:<14} {sum(counts.values()):>5}")
        for key, value in counts.items():
            print(f"  {key:<12} {value:>5}")
        if not counts:
            print("  (none)")
    return 0


def _engine_fields(record: pidfile.Record) -> dict[str, Any]:
    return {
        "pid": record.pid,
        "admin": record.admin,
        "started_at": record.started_at,
        "config": record.config,
        "log": record.log,
    }


def _status_degraded(record: pidfile.Record, down: list[str], admin: str, *, as_json: bool) -> int:
    """The engine runs but does not serve: say so (and what is down) without asking it."""
    state = "recovering" if down else record.state
    if as_json:
        engine = {**_engine_fields(record), "state": state, "down": down}
        print(json.dumps({"engine": engine}, indent=2))
    else:
        what = f": {', '.join(down)} down, the daemon is restarting it" if down else ""
        print(
            f"engine         {state}, pid {record.pid}, admin {admin}, since "
            f"{record.started_at}{what}"
        )
    return EXIT_DEGRADED


def _engine_status(config: str) -> dict[str, Any]:
    """The gateway's ``status()`` with ``draining``, or DegradedError if it takes over
    STATUS_TIMEOUT_S (the call is left to a daemon thread: nothing waits for it once this
    process exits)."""
    outcome: dict[str, Any] = {}

    def ask() -> None:
        try:
            with control.connect(config) as gw:
                outcome["status"] = {**gw.status(), "draining": gw.drain_status()["draining"]}
        except BaseException as error:
            outcome["error"] = error

    caller = threading.Thread(target=ask, name="cx-status", daemon=True)
    caller.start()
    caller.join(STATUS_TIMEOUT_S)
    if "error" in outcome:
        raise outcome["error"]
    if "status" not in outcome:
        raise DegradedError(
            f"the engine did not answer within {STATUS_TIMEOUT_S:g} s (it may be overloaded or "
            "recovering); see its log"
        )
    status: dict[str, Any] = outcome["status"]
    return status


def history_command(config: str, room: str, *, as_json: bool) -> int:
    with control.connect(config) as gw:
        conversations = gw.history(room)
    if as_json:
        print(json.dumps(conversations, indent=2, ensure_ascii=False))
        return 0
    print(f"room {room}: {len(conversations)} archived conversation(s)")
    for conversation in conversations:
        channels = ", ".join(s["channel"] for s in conversation["channel_sessions"]) or "-"
        agents = (
            ", ".join(p["id"] for p in conversation["participants"] if p["type"] == "AGENT") or "-"
        )
        print(
            f"  {conversation['id']}  {conversation['state']:<7} "
            f"{conversation['created_at']} -> {conversation['ended_at']}  "
            f"channels {channels}  agents {agents}  {len(conversation['events'])} events"
        )
    return 0
