"""Membership of the nodes of one actor system, and the failure detector that keeps it.

Pure: no clock, no IO. Every call takes ``now`` (seconds, any monotonic origin) and returns the
:class:`Change` s it caused, in order; the membership actor sends them on.

A node is known by its name and its *incarnation*, a number the node picks when it starts and
that only grows (its start time in microseconds, say). States and moves, as data
(:data:`MOVES`, looked up by :func:`move_for`):

- a node *joins* with an incarnation: it is ALIVE;
- each *heartbeat* of its current incarnation makes it ALIVE again and restarts its count;
- at each *tick*, a node silent for ``suspect_after`` heartbeat intervals is SUSPECT (nothing
  is sent to it: sends are dropped, not queued), and one silent for ``dead_after`` intervals
  is DEAD: its work is rebuilt elsewhere;
- a DEAD incarnation stays DEAD for ever: its heartbeats are refused (:func:`Membership.fenced`
  says so) so that it can never write again. The node comes back only by joining with a larger
  incarnation; a join with a larger incarnation while the old one is still ALIVE or SUSPECT (a
  restart faster than the detector) declares the old one DEAD first.

Stale messages (an incarnation older than the current one) change nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from domain.errors import CxError, ErrorKind


class MembershipError(CxError, ValueError):
    """A bad detector setting or a bad node message, named; nothing changed."""

    kind = ErrorKind.BAD_ARGUMENT


class NodeState(StrEnum):
    ALIVE = "ALIVE"
    SUSPECT = "SUSPECT"
    DEAD = "DEAD"


class Signal(StrEnum):
    HEARD = "HEARD"  # a heartbeat (or a join) of the current incarnation
    SILENT_SUSPECT = "SILENT_SUSPECT"  # suspect_after intervals without one
    SILENT_DEAD = "SILENT_DEAD"  # dead_after intervals without one


#: ``(state, signal) -> new state``; a pair that is absent changes nothing.
MOVES: Mapping[tuple[NodeState, Signal], NodeState] = {
    (NodeState.ALIVE, Signal.HEARD): NodeState.ALIVE,
    (NodeState.SUSPECT, Signal.HEARD): NodeState.ALIVE,
    (NodeState.ALIVE, Signal.SILENT_SUSPECT): NodeState.SUSPECT,
    (NodeState.ALIVE, Signal.SILENT_DEAD): NodeState.DEAD,
    (NodeState.SUSPECT, Signal.SILENT_DEAD): NodeState.DEAD,
}


def move_for(state: NodeState, signal: Signal) -> NodeState:
    """The state ``signal`` leads to from ``state``; ``state`` itself when the table has no row."""
    return MOVES.get((state, signal), state)


class ChangeKind(StrEnum):
    NODE_UP = "NODE_UP"
    NODE_SUSPECTED = "NODE_SUSPECTED"
    NODE_RECOVERED = "NODE_RECOVERED"  # SUSPECT back to ALIVE
    NODE_DOWN = "NODE_DOWN"


#: The change reported for each move between two different states.
CHANGE_OF_MOVE: Mapping[tuple[NodeState, NodeState], ChangeKind] = {
    (NodeState.ALIVE, NodeState.SUSPECT): ChangeKind.NODE_SUSPECTED,
    (NodeState.SUSPECT, NodeState.ALIVE): ChangeKind.NODE_RECOVERED,
    (NodeState.ALIVE, NodeState.DEAD): ChangeKind.NODE_DOWN,
    (NodeState.SUSPECT, NodeState.DEAD): ChangeKind.NODE_DOWN,
}


@dataclass(frozen=True, slots=True)
class Change:
    kind: ChangeKind
    node: str
    incarnation: int


@dataclass(frozen=True, slots=True)
class NodeMember:
    name: str
    incarnation: int
    state: NodeState
    last_heard: float
    capabilities: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DetectorSettings:
    """Heartbeat interval (seconds) and the missed intervals that make a node suspect, then dead."""

    interval: float
    suspect_after: int
    dead_after: int

    def __post_init__(self) -> None:
        if not self.interval > 0:
            raise MembershipError(f"heartbeat interval must be > 0 seconds, got {self.interval!r}")
        if self.suspect_after < 1:
            raise MembershipError(
                f"suspect_after must be >= 1 interval, got {self.suspect_after!r}"
            )
        if self.dead_after <= self.suspect_after:
            raise MembershipError(
                f"dead_after ({self.dead_after!r}) must be more intervals than suspect_after "
                f"({self.suspect_after!r})"
            )


class Membership:
    """The table of known nodes; one per convention leader."""

    def __init__(self, settings: DetectorSettings) -> None:
        self._settings = settings
        self._members: dict[str, NodeMember] = {}

    # -- reading ---------------------------------------------------------------------------

    def get(self, name: str) -> NodeMember | None:
        return self._members.get(name)

    def __iter__(self) -> Iterator[NodeMember]:
        return iter(sorted(self._members.values(), key=lambda m: m.name))

    def alive(self) -> list[NodeMember]:
        """Members that may be sent to and given work (ALIVE only), by name."""
        return [m for m in self if m.state is NodeState.ALIVE]

    def reachable(self, name: str) -> bool:
        """Whether a send to ``name`` goes out; to a SUSPECT, DEAD or unknown node it is dropped."""
        member = self._members.get(name)
        return member is not None and member.state is NodeState.ALIVE

    def fenced(self, name: str, incarnation: int) -> bool:
        """Whether ``incarnation`` of ``name`` may no longer act: declared DEAD, or superseded."""
        member = self._members.get(name)
        if member is None:
            return False
        if incarnation < member.incarnation:
            return True
        return incarnation == member.incarnation and member.state is NodeState.DEAD

    # -- commands --------------------------------------------------------------------------

    def join(
        self,
        name: str,
        incarnation: int,
        now: float,
        capabilities: Mapping[str, object] | None = None,
    ) -> list[Change]:
        """``name`` announces ``incarnation``; a fenced incarnation changes nothing."""
        _check_node(name, incarnation)
        caps = dict(capabilities or {})
        current = self._members.get(name)
        if current is not None and incarnation == current.incarnation:
            if current.state is NodeState.DEAD:
                return []
            self._members[name] = replace(current, capabilities=caps)
            return self._heard(name, now)
        if current is not None and incarnation < current.incarnation:
            return []
        changes: list[Change] = []
        if current is not None and current.state is not NodeState.DEAD:
            changes.append(Change(ChangeKind.NODE_DOWN, name, current.incarnation))
        self._members[name] = NodeMember(name, incarnation, NodeState.ALIVE, now, caps)
        changes.append(Change(ChangeKind.NODE_UP, name, incarnation))
        return changes

    def heartbeat(self, name: str, incarnation: int, now: float) -> list[Change]:
        """A heartbeat; from an unknown node or a fenced incarnation it changes nothing."""
        _check_node(name, incarnation)
        current = self._members.get(name)
        if current is None or current.incarnation != incarnation:
            return []
        return self._heard(name, now)

    def tick(self, now: float) -> list[Change]:
        """Count the intervals each node has been silent at ``now``; report what that changed."""
        changes: list[Change] = []
        for member in list(self):
            signal = self._silence(member, now)
            if signal is not None:
                changes.extend(self._move(member, signal, member.last_heard))
        return changes

    # -- internals -------------------------------------------------------------------------

    def _silence(self, member: NodeMember, now: float) -> Signal | None:
        missed = (now - member.last_heard) / self._settings.interval
        if missed >= self._settings.dead_after:
            return Signal.SILENT_DEAD
        if missed >= self._settings.suspect_after:
            return Signal.SILENT_SUSPECT
        return None

    def _heard(self, name: str, now: float) -> list[Change]:
        member = self._members[name]
        return self._move(member, Signal.HEARD, max(now, member.last_heard))

    def _move(self, member: NodeMember, signal: Signal, last_heard: float) -> list[Change]:
        target = move_for(member.state, signal)
        self._members[member.name] = replace(member, state=target, last_heard=last_heard)
        kind = CHANGE_OF_MOVE.get((member.state, target))
        return [] if kind is None else [Change(kind, member.name, member.incarnation)]


def _check_node(name: str, incarnation: int) -> None:
    if not isinstance(name, str) or not name:
        raise MembershipError(f"node name must be a non-empty string, got {name!r}")
    if isinstance(incarnation, bool) or not isinstance(incarnation, int) or incarnation < 0:
        raise MembershipError(
            f"incarnation of node {name!r} must be an integer >= 0, got {incarnation!r}"
        )


def choose_node(
    members: Iterable[NodeMember], load: Mapping[str, int], *, hosts_key: str, weight_key: str
) -> str | None:
    """The ALIVE node offering conversation hosts with the least load per unit of weight (ties:
    by name); None when there is none. ``load`` counts each node's hosts (absent: 0); the
    capability names are the caller's (``hosts_key`` must be true, ``weight_key`` an int >= 1,
    1 when absent)."""
    best: tuple[float, str] | None = None
    for member in members:
        if member.state is not NodeState.ALIVE or not member.capabilities.get(hosts_key, True):
            continue
        weight = member.capabilities.get(weight_key, 1)
        share = load.get(member.name, 0) / (weight if isinstance(weight, int) and weight > 0 else 1)
        if best is None or (share, member.name) < best:
            best = (share, member.name)
    return None if best is None else best[1]
