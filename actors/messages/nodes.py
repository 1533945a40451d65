"""Messages of the membership actor, the heartbeat actors on the nodes, and what they report."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domain.membership import Capacity, Detector, NodeRecord
from domain.pickling import pickle_by_field_names


@dataclass(frozen=True, slots=True)
class StartMembership:
    """To the leader's membership actor, once at start (again: a no-op). ``virtual``: time
    moves only by :class:`Tick` (tests); otherwise the actor keeps its own wakeups.
    ``members_file``: where the members are recorded, read back at the leader's start."""

    detector: Detector
    node: str
    incarnation: int
    capacity: Capacity
    monitor: Any
    members_file: Path | None
    virtual: bool
    now_ms: int
    agents: Any = None  # the AgentSupervisor: with the monitor, the engine's roots


@dataclass(frozen=True, slots=True)
class Roots:
    """The engine's root actors (the TopicMonitor and the AgentSupervisor, on the leader), as
    a node's gateways find them: kept on each node by its :class:`~actors.node_roots.NodeRoots`
    (a :class:`RootsQuery` answers this; ``None`` fields until the node joined a leader)."""

    monitor: Any
    agents: Any


@dataclass(frozen=True, slots=True)
class RootsQuery:
    pass


@dataclass(frozen=True, slots=True)
class StartHeartbeat:
    """To a node's heartbeat actor: send :class:`Heartbeat` to ``leader`` every
    ``interval_ms``. Sent again (after a leader restart), it replaces the previous one.
    ``give_up_after``: after that many heartbeats in a row without a :class:`HeartbeatAck`
    the leader is taken as lost and the node stops (0: never; the leader's own node)."""

    node: str
    incarnation: int
    capacity: Capacity
    leader: Any
    interval_ms: int
    give_up_after: int = 0
    roots: Roots | None = None  # kept on the node for its gateways (actors.node_roots)


@dataclass(frozen=True, slots=True)
class Heartbeat:
    node: str
    incarnation: int
    capacity: Capacity


@dataclass(frozen=True, slots=True)
class HeartbeatAck:
    """The leader heard the heartbeat (also keeps the heartbeat actor's wakeups moving)."""

    node: str
    incarnation: int


@dataclass(frozen=True, slots=True)
class Fenced:
    """To a heartbeat actor of an incarnation declared dead: it stops for good."""

    node: str
    incarnation: int


@dataclass(frozen=True, slots=True)
class Tick:
    """Time is ``now_ms`` (the membership actor under the virtual clock)."""

    now_ms: int


@dataclass(frozen=True, slots=True)
class NodeUp:
    """To the TopicMonitor: a node (incarnation) joined and takes new work, as its
    ``capacity`` says."""

    node: str
    incarnation: int
    capacity: Capacity


@dataclass(frozen=True, slots=True)
class NodeDown:
    """To the TopicMonitor: a node (incarnation) is declared dead and fenced: what it hosted
    is to be rebuilt elsewhere, after its journal writer is fenced."""

    node: str
    incarnation: int


@dataclass(frozen=True, slots=True)
class MembersQuery:
    pass


@dataclass(frozen=True, slots=True)
class Members:
    records: tuple[NodeRecord, ...]


@dataclass(frozen=True, slots=True)
class WhichNode:
    """Which node should the next conversation host go to, given the hosts on each node."""

    hosts_on: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class NodeChoice:
    node: str | None


pickle_by_field_names(globals())  # after every class above: see domain.pickling
