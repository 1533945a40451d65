"""The members of a multi-node system and a failure detector over their heartbeats: pure data.

Each node sends a heartbeat every ``interval_ms``, carrying its name, its *incarnation* (a
number the node picks when it starts, larger at every start: its start time in milliseconds)
and what it offers (:class:`Capacity`). The leader keeps one :class:`NodeRecord` per node name and
feeds this module two kinds of input, the time always passed in (no clock here):

- :func:`heard`: a heartbeat arrived;
- :func:`tick`: time passed; a member whose last heartbeat is ``suspect_after`` intervals old
  is suspected, ``dead_after`` intervals old is declared dead.

Both look up one row of :data:`TRANSITIONS`, keyed by (state, :class:`Observation`), which
gives the next state and the :class:`Change` s to report. A member declared dead stays dead:
its incarnation is *fenced* (a later heartbeat of it is answered :attr:`Change.FENCED`, and
nothing is sent to it). The same node started again brings a larger incarnation and joins as
a new member; a heartbeat of an incarnation older than the one known is fenced too.

Only ``ALIVE`` members are reachable (:func:`reachable`): sends to a suspected or dead node
are dropped, never queued. :func:`least_loaded` picks, of the nodes offering a kind of
:class:`Work`, the one with the fewest actors of that kind per unit of weight.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from types import MappingProxyType

from domain.errors import CxError, ErrorKind


class MembershipError(CxError, ValueError):
    """A heartbeat, a time or a setting the membership table cannot take (the table is
    unchanged)."""

    kind = ErrorKind.BAD_ARGUMENT


class NodeState(StrEnum):
    ALIVE = "ALIVE"
    SUSPECT = "SUSPECT"
    DEAD = "DEAD"


class Observation(StrEnum):
    """What the leader learnt about a member."""

    HEARD = "a heartbeat of the member's incarnation"
    LATE = "suspect_after intervals without a heartbeat"
    SILENT = "dead_after intervals without a heartbeat"
    REBORN = "a heartbeat of a newer incarnation of the same node"


class Change(StrEnum):
    """What the leader reports (the owner of the table turns them into messages)."""

    UP = "a node (incarnation) joined"
    SUSPECTED = "a node missed heartbeats; nothing is sent to it"
    TRUSTED = "a suspected node was heard again"
    DOWN = "a node (incarnation) is declared dead and fenced"
    FENCED = "a fenced incarnation spoke: it must stop"


#: (state, observation) -> (next state, changes). In a REBORN row, DOWN names the old
#: incarnation and UP the new one; every other change names the member's incarnation.
TRANSITIONS: Mapping[tuple[NodeState, Observation], tuple[NodeState, tuple[Change, ...]]] = (
    MappingProxyType(
        {
            (NodeState.ALIVE, Observation.HEARD): (NodeState.ALIVE, ()),
            (NodeState.ALIVE, Observation.LATE): (NodeState.SUSPECT, (Change.SUSPECTED,)),
            (NodeState.ALIVE, Observation.SILENT): (NodeState.DEAD, (Change.DOWN,)),
            (NodeState.ALIVE, Observation.REBORN): (NodeState.ALIVE, (Change.DOWN, Change.UP)),
            (NodeState.SUSPECT, Observation.HEARD): (NodeState.ALIVE, (Change.TRUSTED,)),
            (NodeState.SUSPECT, Observation.LATE): (NodeState.SUSPECT, ()),
            (NodeState.SUSPECT, Observation.SILENT): (NodeState.DEAD, (Change.DOWN,)),
            (NodeState.SUSPECT, Observation.REBORN): (NodeState.ALIVE, (Change.DOWN, Change.UP)),
            (NodeState.DEAD, Observation.HEARD): (NodeState.DEAD, (Change.FENCED,)),
            (NodeState.DEAD, Observation.LATE): (NodeState.DEAD, ()),
            (NodeState.DEAD, Observation.SILENT): (NodeState.DEAD, ()),
            (NodeState.DEAD, Observation.REBORN): (NodeState.ALIVE, (Change.UP,)),
        }
    )
)


class Work(StrEnum):
    """The kinds of actor the engine places on nodes itself."""

    HOSTS = "conversation hosts"
    AGENT_HOSTS = "agent hosts"
    ARCHIVISTS = "archivists"


@dataclass(frozen=True, slots=True)
class Capacity:
    """What a node offers: whether conversation hosts, agent hosts and archivists may run on
    it, and its weight (a node of weight 2 is given twice the actors of each kind of a node
    of weight 1)."""

    hosts: bool = True
    weight: int = 1
    agent_hosts: bool = True
    archivists: bool = True

    def offers(self, work: Work) -> bool:
        if work is Work.HOSTS:
            return self.hosts
        return self.agent_hosts if work is Work.AGENT_HOSTS else self.archivists


@dataclass(frozen=True, slots=True)
class NodeRecord:
    name: str
    incarnation: int
    state: NodeState
    last_heard_ms: int
    capacity: Capacity


@dataclass(frozen=True, slots=True)
class NodeChange:
    """One change to tell the rest of the engine about."""

    change: Change
    node: str
    incarnation: int


@dataclass(frozen=True, slots=True)
class Detector:
    """The failure detector's settings: heartbeats every ``interval_ms``; suspected after
    ``suspect_after`` missed, dead after ``dead_after`` missed."""

    interval_ms: int
    suspect_after: int
    dead_after: int

    def __post_init__(self) -> None:
        if self.interval_ms < 1:
            raise MembershipError(f"interval_ms must be >= 1, got {self.interval_ms}")
        if not 1 <= self.suspect_after < self.dead_after:
            raise MembershipError(
                "need 1 <= suspect_after < dead_after, got"
                f" suspect_after={self.suspect_after} dead_after={self.dead_after}"
            )


@dataclass(frozen=True, slots=True)
class Membership:
    detector: Detector
    members: Mapping[str, NodeRecord]
    now_ms: int


def empty(detector: Detector, now_ms: int) -> Membership:
    return Membership(detector, MappingProxyType({}), now_ms)


def _advance(table: Membership, now_ms: int) -> None:
    if now_ms < table.now_ms:
        raise MembershipError(f"time went back: {now_ms} ms after {table.now_ms} ms")


def _with(table: Membership, member: NodeRecord, now_ms: int) -> Membership:
    members = {**table.members, member.name: member}
    return Membership(table.detector, MappingProxyType(members), now_ms)


def heard(
    table: Membership, node: str, incarnation: int, capacity: Capacity, now_ms: int
) -> tuple[Membership, tuple[NodeChange, ...]]:
    """A heartbeat of ``node`` (``incarnation``) arrived at ``now_ms``."""
    _advance(table, now_ms)
    if not node.strip():
        raise MembershipError("a heartbeat needs a node name")
    if incarnation < 0:
        raise MembershipError(f"node {node!r}: incarnation must be >= 0, got {incarnation}")
    if capacity.weight < 1:
        raise MembershipError(f"node {node!r}: weight must be >= 1, got {capacity.weight}")
    known = table.members.get(node)
    if known is None:
        joined = NodeRecord(node, incarnation, NodeState.ALIVE, now_ms, capacity)
        return _with(table, joined, now_ms), (NodeChange(Change.UP, node, incarnation),)
    if incarnation < known.incarnation:
        return replace(table, now_ms=now_ms), (NodeChange(Change.FENCED, node, incarnation),)
    observation = Observation.REBORN if incarnation > known.incarnation else Observation.HEARD
    state, changes = TRANSITIONS[(known.state, observation)]
    reports = tuple(
        NodeChange(c, node, known.incarnation if c is Change.DOWN else incarnation) for c in changes
    )
    if state is NodeState.DEAD:  # a fenced incarnation: nothing about it changes
        return replace(table, now_ms=now_ms), reports
    member = NodeRecord(node, incarnation, state, now_ms, capacity)
    return _with(table, member, now_ms), reports


def tick(table: Membership, now_ms: int) -> tuple[Membership, tuple[NodeChange, ...]]:
    """Time is ``now_ms``: suspect or declare dead the members not heard from for long."""
    _advance(table, now_ms)
    detector = table.detector
    members = dict(table.members)
    reports: list[NodeChange] = []
    for name, member in table.members.items():
        missed = (now_ms - member.last_heard_ms) // detector.interval_ms
        if missed >= detector.dead_after:
            observation = Observation.SILENT
        elif missed >= detector.suspect_after:
            observation = Observation.LATE
        else:
            continue
        state, changes = TRANSITIONS[(member.state, observation)]
        members[name] = replace(member, state=state)
        reports.extend(NodeChange(c, name, member.incarnation) for c in changes)
    return Membership(detector, MappingProxyType(members), now_ms), tuple(reports)


def reachable(table: Membership, node: str) -> bool:
    """Whether messages may be sent to ``node`` (only a live member's; others are dropped)."""
    member = table.members.get(node)
    return member is not None and member.state is NodeState.ALIVE


def live(table: Membership) -> tuple[NodeRecord, ...]:
    return tuple(m for m in table.members.values() if m.state is NodeState.ALIVE)


def least_loaded(weights: Mapping[str, int], placed: Mapping[str, int]) -> str | None:
    """Of the nodes in ``weights`` (name -> weight), the one with the fewest actors placed
    (``placed``: name -> count) per unit of weight; ties go to the first name in order. None
    when ``weights`` is empty."""
    return min(weights, key=lambda n: (placed.get(n, 0) / weights[n], n), default=None)


def choose_host_node(table: Membership, hosts_on: Mapping[str, int]) -> str | None:
    """The live node offering conversation hosts with the fewest hosts per unit of weight
    (``hosts_on``: node name -> hosts placed there; ties go to the first name in order), or
    None when no live node offers hosts."""
    weights = {m.name: m.capacity.weight for m in live(table) if m.capacity.hosts}
    return least_loaded(weights, hosts_on)
