"""Between a gateway and every actor of the engine: the figures each keeps (for the metrics)
and the live conversations each conversation host holds (for the inventory).

Both are asked of an actor directly (not through an entity) and answered with
``Reply(call_id, ...)``; the gateway adds up the answers of every actor of a kind.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.pickling import pickle_by_field_names


@dataclass(frozen=True, slots=True)
class Survey:
    """Answered by every engine actor with its figures: a dict of plain values (counters
    since the actor started, and gauges); an actor with none answers ``{}``."""

    call_id: str


@dataclass(frozen=True, slots=True)
class Roster:
    """Answered by the TopicMonitor with the addresses of the actors a survey asks:
    ``{"routers": [...], "hosts": [...], "archivists": [...]}`` (conversation hosts)."""

    call_id: str


@dataclass(frozen=True, slots=True)
class ConversationFilter:
    """Which live conversations an inventory lists; None matches any. ``min_age_ms``: opened
    at least this long ago; ``limit``: at most this many from each host, the oldest first."""

    state: str | None = None
    queue: str | None = None
    agent_id: str | None = None
    customer_id: str | None = None
    min_age_ms: int = 0
    limit: int = 1000


@dataclass(frozen=True, slots=True)
class ListConversations:
    """Answered by a conversation host with a list of the summaries of its live conversations
    that ``where`` matches (``actors.inventory.summary``), their ages taken at ``now`` (the
    caller's clock, ms) or the host's, whichever is later."""

    call_id: str
    where: ConversationFilter
    now: int = 0


@dataclass(frozen=True, slots=True)
class ListAgents:
    """Asked of a Router (delivered): every agent its routing book knows, with presence,
    free capacity and queues (``RoutingBook.agent_list``)."""


pickle_by_field_names(globals())  # after every class above: see domain.pickling
