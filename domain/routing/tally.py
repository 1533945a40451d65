"""What the routing book counts per queue for the engine's metrics: its routing outcomes and
how long the answered requests had waited (the service level).

A request is *answered* when its agent is subscribed (``accepted``); it was answered *within
the service level* when it had waited at most ``RoutingPolicy.service_level_ms`` since it was
queued (a request back in the queue after a RONA keeps its first enqueue time).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

from domain.routing.entries import Lane

__all__ = ["OUTCOMES", "QueueTally", "queue_figures"]

#: The routing outcomes a queue counts (fields of :class:`QueueTally`).
OUTCOMES = ("assigned", "rona", "no_agent")


@dataclass(slots=True)
class QueueTally:
    """The counts of one queue since its Router started (they only grow)."""

    assigned: int = 0  # matched with an agent: subscribed at once, or offered
    rona: int = 0  # an offer not accepted in time
    no_agent: int = 0  # the request's time to live ran out (NO_AGENT_AVAILABLE)
    answered: int = 0
    answered_within: int = 0  # answered within the service level

    def answer(self, waited_ms: int, service_level_ms: int) -> None:
        self.answered += 1
        if waited_ms <= service_level_ms:
            self.answered_within += 1

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def queue_figures(
    lanes: Mapping[Lane, list[tuple[int, int, str]]],
    tallies: Mapping[str, QueueTally],
    now: int,
) -> dict[str, dict[str, int]]:
    """Queue -> its counts, ``waiting`` (over its lanes: the requests waiting, each a place
    ``(enqueued_at, seq, id)``) and ``oldest_wait_ms`` (how long the oldest has waited at
    ``now``; 0 when none waits); every queue ever used."""
    waiting: dict[str, int] = {}
    first: dict[str, int] = {}  # queue -> when its oldest waiting request was queued
    for (queue, _), places in lanes.items():
        waiting[queue] = waiting.get(queue, 0) + len(places)
        if places:
            first[queue] = min(first.get(queue, places[0][0]), places[0][0])
    figures: dict[str, dict[str, int]] = {}
    for queue in {**waiting, **tallies}:
        figures[queue] = {
            **tallies.get(queue, QueueTally()).as_dict(),
            "waiting": waiting.get(queue, 0),
            "oldest_wait_ms": max(now - first[queue], 0) if queue in first else 0,
        }
    return figures
