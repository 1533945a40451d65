"""Nodes of one actor system: the leader's membership actor and a heartbeat actor per node.

The membership actor runs on the convention leader. It asks Thespian for convention changes;
for every node that registers (and for the leader's own node) it creates a
:class:`HeartbeatActor` *on that node* (requirements naming the node and its incarnation,
:func:`fits`), which sends it a :class:`Heartbeat` every ``system.heartbeat_ms``. The failure
detector itself is pure (``domain.membership``); this shell feeds it heartbeats and time, and
turns what it reports into :class:`NodeUp` / :class:`NodeDown` for the TopicMonitor and the
AgentSupervisor, which place actors on the live nodes and rebuild what a dead one held.

- Time: one pending wakeup at a time, each carrying a token; a wakeup whose token is not the
  current one changes nothing (Thespian cannot cancel a wakeup, and may deliver a message
  twice). Under the virtual clock, :class:`Tick` moves time instead.
- Never blocking on a dead peer: the actor answers only nodes that are reachable (alive); a
  suspected or dead node is sent nothing, and a fenced incarnation that speaks gets one
  :class:`Fenced`, to which its heartbeat actor answers by stopping.
- Engine restart on a running admin (``runtime.supervise``): :class:`StartMembership` is sent
  again, with the new TopicMonitor and AgentSupervisor, which are told every live node
  (:class:`NodeUp`).
- Leader restart: every member's admin address ("host:port", its ``cx.admin`` capability) is
  recorded in ``members_file``; on start the actor calls ``preRegisterRemoteSystem`` for each,
  so that members come back at once instead of at their next registration.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import structlog
from thespian.actors import (
    Actor,
    ActorExitRequest,
    ActorSystemConventionUpdate,
    PoisonMessage,
    WakeupMessage,
)

from actors.messages.nodes import (
    Fenced,
    Heartbeat,
    HeartbeatAck,
    Members,
    MembersQuery,
    NodeChoice,
    NodeDown,
    NodeUp,
    Roots,
    StartHeartbeat,
    StartMembership,
    Tick,
    WhichNode,
)
from actors.node_roots import NODE_ROOTS_NAME, NodeRoots
from domain.membership import (
    Capacity,
    Change,
    Membership,
    NodeChange,
    choose_host_node,
    empty,
    heard,
    live,
    reachable,
    tick,
)
from infra.members_file import read_members, write_members
from infra.proctitle import set_actor_title
from infra.timefmt import wall_ms

log = structlog.get_logger("cx.nodes")

#: Thespian's capability naming the convention leader's admin ("host:port") to join.
CONVENTION_CAPABILITY = "Convention Address.IPv4"
#: The capabilities every node advertises: its name, the start that made it (incarnation),
#: its admin address, whether it takes conversation hosts, its weight, whether it takes agent
#: hosts and archivists.
NODE_CAPABILITY = "cx.node"
INCARNATION_CAPABILITY = "cx.incarnation"
ADMIN_CAPABILITY = "cx.admin"
HOSTS_CAPABILITY = "cx.hosts"
WEIGHT_CAPABILITY = "cx.weight"
AGENT_HOSTS_CAPABILITY = "cx.agent_hosts"
ARCHIVISTS_CAPABILITY = "cx.archivists"
#: The global name of the leader's membership actor.
MEMBERSHIP_NAME = "cx-nodes"


def fits(capabilities: Mapping[str, Any], requirements: Mapping[str, Any] | None) -> bool:
    """Thespian's ``actorSystemCapabilityCheck`` for actors placed on a named node: every
    requirement must equal the capability of that name (no requirements: any node)."""
    return all(capabilities.get(key) == value for key, value in (requirements or {}).items())


def node_requirements(node: str, incarnation: int | None = None) -> dict[str, Any]:
    """The ``targetActorRequirements`` that place an actor on ``node`` (and only on that
    incarnation of it, when given)."""
    requirements: dict[str, Any] = {NODE_CAPABILITY: node}
    if incarnation is not None:
        requirements[INCARNATION_CAPABILITY] = incarnation
    return requirements


def capacity_of(capabilities: Mapping[str, Any]) -> Capacity:
    """What a node offers, as its capabilities say (a capability it lacks: offered)."""
    return Capacity(
        hosts=bool(capabilities.get(HOSTS_CAPABILITY, True)),
        weight=int(capabilities.get(WEIGHT_CAPABILITY, 1)),
        agent_hosts=bool(capabilities.get(AGENT_HOSTS_CAPABILITY, True)),
        archivists=bool(capabilities.get(ARCHIVISTS_CAPABILITY, True)),
    )


def create_on_node(
    parent: Actor, actor_class: type, node: str | None, what: str
) -> tuple[Any, str | None]:
    """``parent.createActor(actor_class)`` on ``node`` (requirements naming it), and the node
    it went to: this node (None) when ``node`` is None or cannot take it (it left meanwhile).
    ``actor_class`` must check requirements with :func:`fits`."""
    if node is not None:
        try:
            requirements = node_requirements(node)
            return parent.createActor(actor_class, targetActorRequirements=requirements), node
        except Exception as error:  # no such node any more: this one takes the actor
            log.warning("actor_not_placed", actor=what, node=node, error=str(error))
    return parent.createActor(actor_class), None


#: A member daemon names itself in this environment variable before it starts its actor
#: system (its actors inherit it); the heartbeat actor of a node that was fenced or lost its
#: leader sends it :data:`FENCE_SIGNAL`, and the daemon stops the node (``runtime.daemon``).
FENCE_SIGNAL_ENV = "CX_MEMBER_DAEMON_PID"
FENCE_SIGNAL = signal.SIGUSR2


def _stop_the_node() -> None:
    """Ask this node's member daemon, if it runs under one, to stop the node: a fenced
    incarnation, or one that lost its leader, may not serve again (restarted, it joins as a
    new one)."""
    daemon = os.environ.get(FENCE_SIGNAL_ENV)
    if daemon is None or not daemon.isdigit():
        return
    try:
        os.kill(int(daemon), FENCE_SIGNAL)
    except OSError as problem:
        log.error("node_stop_failed", daemon=int(daemon), problem=str(problem))


class HeartbeatActor(Actor):  # type: ignore[misc]
    """Runs on one node: sends the leader a heartbeat every interval until fenced."""

    actorSystemCapabilityCheck = staticmethod(fits)  # noqa: N815 (Thespian's name)

    def __init__(self) -> None:
        super().__init__()
        self.start: StartHeartbeat | None = None
        self.token = 0
        self.fenced = False
        self.unanswered = 0  # heartbeats sent since the leader last answered

    def receiveMessage(self, message: Any, sender: Any) -> None:
        if isinstance(message, StartHeartbeat) and not self.fenced:
            set_actor_title(self, None)  # cx: heartbeat-actor, in ps and top
            self.start, self.unanswered = message, 0
            self.token += 1  # wakeups of a previous start are stale from now on
            if message.roots is not None:
                self.send(self.createActor(NodeRoots, globalName=NODE_ROOTS_NAME), message.roots)
            self._beat()
        elif isinstance(message, WakeupMessage):
            if self.start is not None and message.payload == self.token:
                self._beat()
        elif isinstance(message, Fenced):
            if not self.fenced:
                log.error("node_fenced", node=message.node, incarnation=message.incarnation)
                _stop_the_node()
            self.fenced, self.start = True, None
        elif isinstance(message, HeartbeatAck):
            self.unanswered = 0
        elif isinstance(message, PoisonMessage):
            pass  # an answer keeps this actor's wakeups moving; a lost beat is just late

    def _beat(self) -> None:
        start = self.start
        assert start is not None
        if start.give_up_after and self.unanswered >= start.give_up_after:
            log.error(
                "leader_lost", node=start.node, incarnation=start.incarnation, beats=self.unanswered
            )
            self.start = None
            _stop_the_node()
            return
        self.unanswered += 1
        self.send(start.leader, Heartbeat(start.node, start.incarnation, start.capacity))
        self.wakeupAfter(start.interval_ms / 1000, payload=self.token)


class MembershipActor(Actor):  # type: ignore[misc]
    """The leader's membership table and failure detector (one per system, global name
    :data:`MEMBERSHIP_NAME`)."""

    def __init__(self) -> None:
        super().__init__()
        self.config: StartMembership | None = None
        self.table: Membership | None = None
        self.beaters: dict[str, Any] = {}  # node -> its heartbeat actor's address
        self.admins: dict[str, str] = {}  # node -> admin "host:port", as recorded
        self.token = 0

    def receiveMessage(self, message: Any, sender: Any) -> None:
        if isinstance(message, StartMembership):
            self._start(message)
        elif self.config is None or self.table is None:
            return  # not started: nothing to compare against
        elif isinstance(message, Heartbeat):
            self._heard(message, sender)
        elif isinstance(message, Tick):
            if self.config.virtual and message.now_ms >= self.table.now_ms:
                self._apply(*tick(self.table, message.now_ms))
        elif isinstance(message, WakeupMessage):
            if message.payload == self.token:
                self._apply(*tick(self.table, max(wall_ms(), self.table.now_ms)))
                self._schedule()
        elif isinstance(message, ActorSystemConventionUpdate):
            self._convention(message)
        elif isinstance(message, MembersQuery):
            self.send(sender, Members(tuple(self.table.members.values())))
        elif isinstance(message, WhichNode):
            self.send(sender, NodeChoice(choose_host_node(self.table, message.hosts_on)))
        elif isinstance(message, ActorExitRequest):
            self._fence_members()

    def _fence_members(self) -> None:
        """The leader stops: fence every member, whose actors belong to this engine. A
        restarted leader rebuilds every conversation from the journal; members restart and
        join again (the heartbeats they stop hearing are the fallback if this is lost)."""
        assert self.config is not None and self.table is not None
        for node, beater in sorted(self.beaters.items()):
            record = self.table.members.get(node)
            if node != self.config.node and record is not None:
                self.send(beater, Fenced(node, record.incarnation))

    def _now(self) -> int:
        assert self.config is not None and self.table is not None
        return self.table.now_ms if self.config.virtual else max(wall_ms(), self.table.now_ms)

    def _start(self, config: StartMembership) -> None:
        if self.config is not None:
            # The engine was booted again (a new TopicMonitor; the heartbeat actor of this node
            # ended with the engine's processes): report to the new one, watch this node again.
            # The table, the node and its incarnation stay.
            self.config = replace(self.config, monitor=config.monitor, agents=config.agents)
            self._watch(self.config.node, self.config.incarnation, self.config.capacity)
            assert self.table is not None
            for member in live(self.table):  # the new ones place on the nodes alive now
                self._report(NodeUp(member.name, member.incarnation, member.capacity))
            return
        self.config = config
        set_actor_title(self, None)  # cx: membership-actor, in ps and top
        self.table = empty(config.detector, config.now_ms)
        self.notifyOnSystemRegistrationChanges(True)
        if config.members_file is not None:
            self.admins = read_members(config.members_file)
            for node, admin in sorted(self.admins.items()):
                log.info("member_invited", node=node, admin=admin)
                try:
                    self.preRegisterRemoteSystem(admin, {})
                except AttributeError:  # a system base without conventions (simpleSystemBase)
                    log.warning("member_not_invited", node=node, reason="base has no conventions")
        self._watch(config.node, config.incarnation, config.capacity)
        if not config.virtual:
            self._schedule()

    def _schedule(self) -> None:
        assert self.config is not None
        self.token += 1
        self.wakeupAfter(self.config.detector.interval_ms / 1000, payload=self.token)

    def _watch(self, node: str, incarnation: int, capacity: Capacity) -> None:
        """Start a heartbeat actor on ``node`` (that incarnation) reporting here."""
        assert self.config is not None
        beater = self.createActor(
            HeartbeatActor, targetActorRequirements=node_requirements(node, incarnation)
        )
        self.beaters[node] = beater
        detector = self.config.detector
        # A member that hears nothing from here for as long as it would take this leader to
        # declare it dead stops: either it was declared dead, or this leader is gone.
        leader = node == self.config.node
        give_up = 0 if leader else detector.dead_after
        # a member's gateways find the engine through its NodeRoots (the leader's by name)
        roots = None if leader else Roots(self.config.monitor, self.config.agents)
        self.send(
            beater,
            StartHeartbeat(
                node, incarnation, capacity, self.myAddress, detector.interval_ms, give_up, roots
            ),
        )

    def _convention(self, update: ActorSystemConventionUpdate) -> None:
        capabilities = update.remoteCapabilities or {}
        node = capabilities.get(NODE_CAPABILITY)
        incarnation = capabilities.get(INCARNATION_CAPABILITY)
        if not isinstance(node, str) or not isinstance(incarnation, int):
            log.warning("convention_member_unnamed", capabilities=repr(capabilities)[:200])
            return
        if not update.remoteAdded:
            log.info("convention_member_left", node=node, incarnation=incarnation)
            return  # the failure detector decides, not the convention's slow bookkeeping
        admin = capabilities.get(ADMIN_CAPABILITY)
        if isinstance(admin, str) and self.admins.get(node) != admin:
            self.admins[node] = admin
            if self.config is not None and self.config.members_file is not None:
                write_members(self.config.members_file, self.admins)
        capacity = capacity_of(capabilities)
        log.info("convention_member_joined", node=node, incarnation=incarnation)
        self._watch(node, incarnation, capacity)

    def _heard(self, beat: Heartbeat, sender: Any) -> None:
        assert self.table is not None
        table, changes = heard(self.table, beat.node, beat.incarnation, beat.capacity, self._now())
        self._apply(table, changes)
        if any(c.change is Change.FENCED for c in changes):
            self.send(sender, Fenced(beat.node, beat.incarnation))
        elif reachable(table, beat.node):
            self.beaters[beat.node] = sender
            self.send(sender, HeartbeatAck(beat.node, beat.incarnation))

    def _apply(self, table: Membership, changes: tuple[NodeChange, ...]) -> None:
        assert self.config is not None
        self.table = table
        for change in changes:
            log.info(
                "node_" + change.change.name.lower(),
                node=change.node,
                incarnation=change.incarnation,
            )
            report: NodeUp | NodeDown | None = None
            if change.change is Change.UP:
                member = table.members.get(change.node)
                capacity = member.capacity if member is not None else Capacity()
                report = NodeUp(change.node, change.incarnation, capacity)
            elif change.change is Change.DOWN:
                report = NodeDown(change.node, change.incarnation)
            if report is not None:
                self._report(report)

    def _report(self, report: NodeUp | NodeDown) -> None:
        """To the TopicMonitor (it places conversation hosts and archivists) and the
        AgentSupervisor (agent hosts)."""
        assert self.config is not None
        for target in (self.config.monitor, self.config.agents):
            if target is not None:
                self.send(target, report)
