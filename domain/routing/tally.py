"""What the routing book counts per queue for the engine's metrics: its routing outcomes and
how long the answered requests had waited (the service level).

A request is *answered* when its agent is subscribed (``accepted``); it was answered *within
the service level* when it had waited at most ``RoutingPolicy.service_level_ms`` since it was
queued (a request back in the queue after a RONA keeps its first enqueue time).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["OUTCOMES", "QueueTally"]

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

