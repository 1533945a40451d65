"""The invariants checked at the end of every simulation run (:mod:`runtime.invariants`).

Every conversation's events, archived or still live, are checked as they are read for the
summary: sequences gap free, states chained (an archived one ends CLOSED), no customer message
stored twice, at least as many stored as the driver was told were (nothing acknowledged lost);
and in each room, the conversations' live spans (from their first event until they began to
close) do not overlap. The summary's ``invariants`` says which held, with the problems found.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from runtime.invariants import INVARIANTS, StoredEvent, conversation_problems, room_problems
from runtime.simulation.driver_base import timestamp_ms

__all__ = ["RunChecks"]

#: How many problems of each invariant the summary lists (all are counted).
SHOWN = 20
_CLOSE = frozenset({"CLOSING", "CLOSED"})


class RunChecks:
    def __init__(self, rooms: Mapping[str, str], acknowledged: Mapping[str, int]) -> None:
        self._rooms = rooms
        self._acknowledged = acknowledged
        self._spans: dict[str, list[tuple[int, int | None, str]]] = defaultdict(list)
        self._problems: list[tuple[str, str]] = []

    def add(self, conversation_id: str, events: list[dict[str, Any]], *, live: bool) -> None:
        stored = [StoredEvent(e["seq"], e["name"], e["data"]) for e in events]
        self._problems += conversation_problems(
            conversation_id,
            stored,
            None if live else "CLOSED",
            acknowledged_customer_messages=self._acknowledged.get(conversation_id, 0),
        )
        room = self._rooms.get(conversation_id)
        if room is None or not events:
            return
        ended = next(
            (
                timestamp_ms(e["timestamp"])
                for e in events
                if e["name"] == "TOPIC_STATE_CHANGED" and e["data"].get("to") in _CLOSE
            ),
            None,
        )
        self._spans[room].append((timestamp_ms(events[0]["timestamp"]), ended, conversation_id))

    def summary(self) -> dict[str, Any]:
        problems = list(self._problems)
        for room in sorted(self._spans):
            problems += [
                ("one_live_conversation_per_room", p)
                for p in room_problems(room, self._spans[room])
            ]
        violated: dict[str, dict[str, Any]] = {}
        for name, problem in problems:
            entry = violated.setdefault(name, {"count": 0, "problems": []})
            entry["count"] += 1
            if len(entry["problems"]) < SHOWN:
                entry["problems"].append(problem)
        return {
            "held": not problems,
            "checked": list(INVARIANTS),
            "violated": {name: violated[name] for name in INVARIANTS if name in violated},
        }
