"""Bootstrap and wiring of the engine's actors, host loss, and the virtual clock."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domain.pickling import pickle_by_field_names
from domain.routing import partition_of


@dataclass(frozen=True, slots=True)
class Wiring:
    """Sent to every long-lived actor once at boot: settings and each other's addresses."""

    settings: Any  # infra.config.Settings
    monitor: Any
    router: Any
    agents: Any
    virtual: bool
    now: int
    clock: Any = None  # virtual clock: the gateway driving it (see ClockDriver)
    # Every Router (``placement.routers``), ``router`` first; each owns the queues
    # ``partition_of(queue, len(routers))`` names it for. Empty: ``router`` is the only one.
    routers: tuple[Any, ...] = ()
    # Every Archivist, by partition (``placement.archivists`` once the archive is open, only
    # archivist 0 before): each owns the conversations ``partition_of(id, len(archivists))``
    # names it for. Hosts learn a change from ArchivistsMoved.
    archivists: tuple[Any, ...] = ()
    # The room desks (``placement.room_desks`` > 1); each decides get-or-create for the
    # customers ``partition_of(customer_id, len(desks))`` names it for. Empty: the monitor does.
    desks: tuple[Any, ...] = ()

    def router_of(self, queue: str) -> Any:
        """The Router that owns ``queue``: its requests go there, and only there."""
        routers = self.every_router()
        return routers[partition_of(queue, len(routers))]

    def desk_of(self, customer_id: str) -> Any:
        """Where ``customer_id``'s sessions are opened: its desk, or the monitor (no desks)."""
        return desk_for(self.desks, self.monitor, customer_id)

    def every_router(self) -> tuple[Any, ...]:
        return self.routers or (self.router,)

    def archivist_of(self, conversation_id: str) -> Any:
        """The Archivist that writes ``conversation_id``: its closing goes there, and only there."""
        return self.archivists[partition_of(conversation_id, len(self.archivists))]


@dataclass(frozen=True, slots=True)
class ArchivistsMoved:
    """The TopicMonitor to every conversation host: the Archivists are now at these addresses
    (one was replaced, or the pool started). A host passes it to its conversations: one still
    CLOSING whose request went to an address no longer in the pool asks the new one."""

    archivists: tuple[Any, ...]


def desk_for(desks: tuple[Any, ...], monitor: Any, customer_id: str) -> Any:
    """The room desk of ``customer_id`` among ``desks``; ``monitor`` when there are none."""
    return desks[partition_of(customer_id, len(desks))] if desks else monitor


@dataclass(frozen=True, slots=True)
class Rewired:
    """The Router was restarted at a new address: use this wiring from now on.

    ``reroute``: a new Router, which knows nothing: conversations re-send their pending agent
    request, agents report their availability again. One message, so that nothing is sent to
    the new Router before its address is known (a fresh address may be held back by Thespian
    until the actor exists, while a message without one would overtake it)."""

    wiring: Wiring
    reroute: bool = False


@dataclass(frozen=True, slots=True)
class Reroute:
    """A new Router knows nothing: conversations re-send their pending agent request, agents
    report their availability again."""


@dataclass(frozen=True, slots=True)
class AgentsLost:
    """These agents' host died: conversations they were in ask for them again (Reattach)."""

    agent_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Directory:
    """Answered by the TopicMonitor with the current address of the Router."""

    call_id: str


@dataclass(frozen=True, slots=True)
class HostInit:
    host_id: str
    kind: str  # "conversations" or "agents"
    wiring: Wiring
    now: int


@dataclass(frozen=True, slots=True)
class WatchHosts:
    """A gateway asks to be told when a conversation host dies (it caches hosts' addresses:
    a send to a dead one would block in Thespian for half a minute)."""

    address: Any


@dataclass(frozen=True, slots=True)
class HostLost:
    address: Any


@dataclass(frozen=True, slots=True)
class ClockDriver:
    """Virtual clock only: the gateway that drives the clock; timer owners report to it."""

    address: Any


@dataclass(frozen=True, slots=True)
class AlarmAt:
    """Virtual clock only: a timer owner's earliest alarm changed (None: it has none)."""

    owner: Any
    at: int | None


@dataclass(frozen=True, slots=True)
class FireAlarms:
    """Virtual clock only: move the clock to ``now`` and fire every alarm due by then."""

    now: int


@dataclass(frozen=True, slots=True)
class ListTimerOwners:
    """Answered by the TopicMonitor with the Router and every conversation host."""

    call_id: str


@dataclass(frozen=True, slots=True)
class WhoAmI:
    """Answered with :class:`Reply` whose value is the asker's address (how a gateway learns
    the address that forwarded answers must go to)."""

    call_id: str


@dataclass(frozen=True, slots=True)
class Ping:
    """Answered with ``Reply({"pid": ..., "actor": ...})``: which process runs an actor."""

    call_id: str


@dataclass(frozen=True, slots=True)
class Drain:
    """Does nothing: lets a caller run a simpleSystemBase until it is quiescent."""


pickle_by_field_names(globals())  # after every class above: see domain.pickling
