"""What the routing book tells of its agents: counts by presence, and one row per agent.

An agent is READY (ready with free capacity), BUSY (ready, every slot taken) or NOT_READY.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from domain.enums import Presence
from domain.routing.entries import BookAgent

__all__ = ["BUSY", "agent_rows", "availability_counts", "availability_of", "presence_counts"]

BUSY = "BUSY"

#: Whether an agent with these queues is counted (None: every agent).
Counted = Callable[[tuple[str, ...]], bool] | None


def availability_of(agent: BookAgent) -> str:
    if not agent.ready:
        return Presence.NOT_READY.value
    return Presence.READY.value if agent.free > 0 else BUSY


def presence_counts(agents: Iterable[BookAgent], counted: Counted = None) -> dict[str, int]:
    """READY and NOT_READY agents (ready ones whether or not a slot is free)."""
    counts = {Presence.READY.value: 0, Presence.NOT_READY.value: 0}
    for agent in agents:
        if counted is None or counted(agent.queues):
            presence = Presence.READY if agent.ready else Presence.NOT_READY
            counts[presence.value] += 1
    return counts


def availability_counts(agents: Iterable[BookAgent], counted: Counted = None) -> dict[str, int]:
    """READY (with free capacity), BUSY and NOT_READY agents."""
    counts = {Presence.READY.value: 0, BUSY: 0, Presence.NOT_READY.value: 0}
    for agent in agents:
        if counted is None or counted(agent.queues):
            counts[availability_of(agent)] += 1
    return counts


def agent_rows(agents: Iterable[BookAgent]) -> list[dict[str, object]]:
    """Each agent: id, presence (READY, NOT_READY or BUSY), free capacity and queues."""
    return [
        {
            "agent_id": agent.id,
            "presence": availability_of(agent),
            "free": agent.free,
            "queues": list(agent.queues),
        }
        for agent in agents
    ]
