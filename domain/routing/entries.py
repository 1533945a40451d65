"""What the routing book keeps per request and per agent (the rules: :mod:`domain.routing`)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BookAgent", "BookRequest", "Lane"]

#: Where a request waits: its queue, and the one agent it is for (None: any of the queue's).
Lane = tuple[str, str | None]


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
    target: str | None = None  # the one agent it may go to (None: any agent of its queue)
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
    id: str
    order: int  # registration order, the tie-break after the last assignment
    ready: bool
    free: int
    queues: tuple[str, ...]
    last_assigned: int
    epoch: int  # bumped (from one book-wide counter) by every report
