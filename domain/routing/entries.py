"""What the routing book keeps per request and per agent (the rules: :mod:`domain.routing`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["BookAgent", "BookRequest", "Lane", "best_agent"]

#: Where a request waits: its queue, and the agents it is for (None: any of the queue's).
Lane = tuple[str, frozenset[str] | None]


@dataclass(slots=True)
class BookRequest:
    id: str
    conversation_id: str
    queue: str
    enqueued_at: int
    seq: int  # enqueue order, the tie-break after enqueue time
    agent_id: str | None = None  # the holder; None while waiting
    offered: bool = False
    epoch: int = 0  # the holder's report epoch the held unit was taken from
    excluded: frozenset[str] = frozenset()  # agents this request must not go to
    target: frozenset[str] | None = None  # the agents it may go to (None: its queue's)
    room: str = ""  # the customer's room, for the sticky agent ("": none)
    sticky: bool = False  # ``target`` is the room's last agent, for a while only

    @property
    def place(self) -> tuple[int, int, str]:
        return (self.enqueued_at, self.seq, self.id)

    @property
    def lane(self) -> Lane:
        return (self.queue, self.target)


@dataclass(slots=True)
class BookAgent:
    """An agent as the book sees it; ``eligible`` and the rank order the match (below)."""

    id: str
    order: int  # registration order, the tie-break after the last assignment
    ready: bool
    free: int
    queues: tuple[str, ...]
    last_assigned: int
    epoch: int  # bumped (from one book-wide counter) by every report

    @property
    def rank(self) -> tuple[int, int]:
        """The longest idle first: the oldest last assignment, then registration order."""
        return (self.last_assigned, self.order)


def best_agent(
    agents: Iterable[BookAgent], lane: Lane, excluded: frozenset[str] = frozenset()
) -> BookAgent | None:
    """The agent a request waiting in ``lane`` goes to: among the READY agents with a free
    slot that it does not exclude, and that serve its queue (a lane of named agents: that
    are named, whatever their queues), the longest idle; None if there is none."""
    queue, named = lane
    best: BookAgent | None = None
    for agent in agents:
        if not agent.ready or agent.free <= 0 or agent.id in excluded:
            continue
        if queue not in agent.queues if named is None else agent.id not in named:
            continue
        if best is None or agent.rank < best.rank:
            best = agent
    return best
