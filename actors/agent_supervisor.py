"""The AgentSupervisor: logs agents in and out and places them on agent hosts (its children).

Every request it forwards to an agent host is answered through it (F8 in docs/RELIABILITY.md):
it keeps the caller's address until the answer passes, so that when the host dies first it can
tell the caller ``unavailable`` at once instead of leaving it to wait for its timeout.

Agent hosts go to the live nodes that offer them (``NodeUp``; only with ``storage.postgres``,
as conversation hosts), the least loaded by weight. When a node is declared dead
(``NodeDown``) each agent host it held is rebuilt on a live node: its agents stay logged in,
registered again on the new host from what this actor knows of them (their login and the
presence they last asked for), and their conversations attach them again (docs/DECISIONS.md,
"Agent hosts and archivists on the nodes"). An agent host that exits on a live node logs its
agents out (their desks log in again).
"""

from __future__ import annotations

import itertools
import zlib
from dataclasses import dataclass, replace
from typing import Any

import structlog

from actors.base import EngineActor
from actors.host import Host
from actors.messages import (
    AgentGone,
    AgentJoin,
    AgentLogin,
    AgentPresence,
    AgentQuery,
    AgentsLost,
    Deliver,
    Failure,
    HostInit,
    Reattach,
    Ref,
    Reload,
    Reply,
    ReplyTo,
    Rewired,
    RoomDelivery,
    RoomPosted,
    Subscribe,
    Unsubscribe,
)
from actors.messages.nodes import NodeDown, NodeUp
from actors.nodes import create_on_node
from actors.placement import Nodes
from domain.errors import ErrorKind
from domain.ids import agent_entity_id, parse_subscription
from domain.limits import MAX_AGENT_CONVERSATIONS
from domain.membership import Work

log = structlog.get_logger("cx.agents")
#: Forwarded requests kept waiting for their answer: beyond this the oldest is answered
#: ``unavailable`` and forgotten (far above what gateways keep in flight: one call each).
MAX_FORWARDED = 10_000
#: A forwarded request still unanswered after this long is forgotten without an answer: its
#: caller gave up long ago (gateways wait 30 s). E.g. a join whose conversation's host died
#: with the subscribe request; the agent's repeated join is a new request.
FORWARDED_TTL_MS = 120_000
_PRESENCE_OPS = {"READY": "agent_ready", "NOT_READY": "agent_not_ready", "LOGOUT": "agent_logout"}


@dataclass(slots=True)
class _AgentHost:
    address: Any
    agents: int = 0
    #: Which of ``placement.agent_hosts`` hosts this is (None: filled up to ``per_host``).
    slot: int | None = None
    #: The node it was placed on by name; None: this node, before any node was known.
    node: str | None = None


def agent_host_slot(agent_id: str, agent_hosts: int) -> int:
    """The agent host, of ``agent_hosts``, that ``agent_id`` lives on: a hash of the id that
    is the same in every process and every run (CRC-32, unlike Python's salted ``hash``)."""
    return zlib.crc32(agent_id.encode("utf-8")) % agent_hosts


@dataclass(slots=True)
class ForwardedRequest:
    """A request forwarded to an agent host, not answered yet."""

    caller: ReplyTo
    host: _AgentHost
    agent_id: str
    payload: Any
    at: int


class AgentSupervisor(EngineActor):
    def __init__(self) -> None:
        super().__init__()
        self.hosts: list[_AgentHost] = []
        self.placement: dict[str, _AgentHost] = {}
        # Conversations rebuilt from the journal whose agents have not logged in again yet:
        # they count against the agent's limit once it is back.
        self.awaiting: dict[str, list[Reattach]] = {}
        # Requests forwarded to agent hosts, by the call id the host answers (oldest first).
        #
        # Why answers come back through here: a host that dies takes the requests it had not
        # answered with it, and only this actor learns of it (ChildActorExited); the caller's
        # gateway watches the conversation's host at best, not the agent's. To answer exactly
        # the unanswered ones, this actor must see the answers pass: one more hop per agent
        # operation (logins, presence, joins, desk subscriptions; agent messages and routing do
        # not come here), no new message type, nothing kept but what is in flight. Announcing
        # agent hosts in HostLost notices instead would only fail connected gateways' calls
        # after their 1 s check (not embedded ones, not precisely those in flight); the host
        # reporting what it answered would cost as many messages and a new message type.
        self.forwarded: dict[str, ForwardedRequest] = {}
        self._forward_ids = itertools.count(1)
        # What an agent host lost with its node is rebuilt from: each logged-in agent's login
        # and the presence (READY / NOT_READY) it last asked for.
        self.logins: dict[str, AgentLogin] = {}
        self.presence: dict[str, str] = {}
        self.nodes = Nodes(Work.AGENT_HOSTS)  # live nodes offering agent hosts
        self._host_seq = 0  # agent hosts started: names them

    def on_deliver(self, item: Deliver, sender: Any) -> None:
        payload, reply_to = item.payload, item.reply_to
        if isinstance(payload, AgentLogin):
            problem = _login_problem(payload)
            if problem is not None:
                self.refuse(
                    reply_to,
                    ErrorKind.BAD_ARGUMENT,
                    f"agent_login refused for {payload.agent_id!r}: {problem}",
                )
                return
            if payload.agent_id in self.placement:
                self.refuse(
                    reply_to,
                    ErrorKind.ILLEGAL_TRANSITION,
                    f"agent {payload.agent_id} is already logged in",
                )
                return
            host = self._place(payload.agent_id)
            host.agents += 1
            self.placement[payload.agent_id] = host
            self.logins[payload.agent_id] = payload
            self.presence[payload.agent_id] = "NOT_READY"
            target = Ref(host.address, agent_entity_id(payload.agent_id))
            self._forward(host, payload.agent_id, payload, reply_to)
            for reattach in self.awaiting.pop(payload.agent_id, []):
                self.post(target, reattach)
            # introduces the agent (NOT_READY) to the Router
            self.post(target, AgentPresence(payload.agent_id, "NOT_READY"))
            return
        if isinstance(payload, Reattach):
            self._reattach(payload)
            return
        if isinstance(payload, RoomPosted):  # to the members logged in; the others read it
            for member in payload.members:
                placed_at = self.placement.get(member)
                if placed_at is not None:
                    target = Ref(placed_at.address, agent_entity_id(member))
                    self.post(target, RoomDelivery(payload.event))
            return
        agent_id = getattr(payload, "agent_id", None)
        if isinstance(payload, Subscribe | Unsubscribe):
            _, agent_id = parse_subscription(payload.subscription)
        if (
            not isinstance(payload, AgentPresence | AgentJoin | AgentQuery | Subscribe | Unsubscribe)
            or agent_id is None
        ):
            self.refuse(
                reply_to,
                ErrorKind.BAD_ARGUMENT,
                f"AgentSupervisor cannot handle {type(payload).__name__}",
            )
            return
        placed = self.placement.get(agent_id)
        if placed is None:
            self.refuse(reply_to, ErrorKind.UNKNOWN_ID, f"agent {agent_id} is not logged in")
            return
        if isinstance(payload, AgentPresence) and payload.action == "LOGOUT":
            self._forget(agent_id)
            placed.agents -= 1
        elif isinstance(payload, AgentPresence):
            self.presence[agent_id] = payload.action
        self._forward(placed, agent_id, payload, reply_to)

    def on_message(self, message: Any, sender: Any) -> None:
        if isinstance(message, Reply | Failure):  # an agent host answers a forwarded request
            forwarded = self.forwarded.pop(message.call_id, None)
            if forwarded is None:  # its host was lost and the caller told so, or it expired
                return
            if isinstance(message, Reply):
                self.reply(forwarded.caller, message.value)
            else:
                self.fail(forwarded.caller, replace(message, call_id=forwarded.caller.call_id))
            return
        if isinstance(message, NodeUp):
            self.nodes.up(message.node, message.capacity)
        elif isinstance(message, NodeDown):
            self.nodes.down(message.node)
            for lost in [h for h in self.hosts if h.node == message.node]:
                self._rebuild(lost)
        else:
            super().on_message(message, sender)

    def _forget(self, agent_id: str) -> None:
        del self.placement[agent_id]
        self.logins.pop(agent_id, None)
        self.presence.pop(agent_id, None)

    def on_rewired(self, reroute: bool) -> None:
        for host in self.hosts:  # the Router moved: every agent host must know
            self.send(host.address, Rewired(self.wired(), reroute))

    def on_reload(self, message: Reload) -> None:
        for host in self.hosts:
            self.send(host.address, message)

    def on_child_exited(self, address: Any) -> None:
        """An agent host died: its agents are logged out (their desks log in again); the
        conversations they were in keep them as participants and count against their limit
        once they are back."""
        lost = next((h for h in self.hosts if h.address == address), None)
        if lost is None or self.wiring is None or self.exiting:
            return
        self.hosts.remove(lost)
        agents = tuple(a for a, h in self.placement.items() if h is lost)
        for agent_id in agents:
            self._forget(agent_id)
            for router in self.wired().every_router():  # it knows not which hold the agent
                self.post(Ref(router, ""), AgentGone(agent_id))
        unanswered = [(k, f) for k, f in self.forwarded.items() if f.host is lost]
        for call_id, forwarded in unanswered:
            del self.forwarded[call_id]
            self.refuse(forwarded.caller, ErrorKind.UNAVAILABLE, _lost_message(forwarded))
        log.error("agent_host_exited", agents=len(agents), unanswered=len(unanswered))
        if agents:
            self.send(self.wired().monitor, AgentsLost(agents))

    def _rebuild(self, lost: _AgentHost) -> None:
        """``lost``'s node was declared dead: a new agent host (the same slot) on a live node
        takes its agents, registered again as logged in with the presence they last asked
        for; requests it had not answered are answered ``unavailable``; the conversations the
        agents were in attach them again (AgentsLost, then Reattach through here)."""
        if self.wiring is None or self.exiting:
            return
        self.hosts.remove(lost)
        host = self._new_host(lost.slot)
        agents = tuple(a for a, h in self.placement.items() if h is lost)
        for agent_id in agents:
            self.placement[agent_id] = host
            host.agents += 1
            target = Ref(host.address, agent_entity_id(agent_id))
            self.post(target, self.logins[agent_id])
            self.post(target, AgentPresence(agent_id, "NOT_READY"))  # introduced to the Router
            if self.presence.get(agent_id) == "READY":
                self.post(target, AgentPresence(agent_id, "READY"))
        unanswered = [(k, f) for k, f in self.forwarded.items() if f.host is lost]
        for call_id, forwarded in unanswered:
            del self.forwarded[call_id]
            self.refuse(
                forwarded.caller,
                ErrorKind.UNAVAILABLE,
                f"{_operation(forwarded.payload)} for agent {forwarded.agent_id}: its agent host"
                " was lost with its node before it answered; the agent is still logged in, and"
                " the request may or may not have been applied: check, or retry",
            )
        log.error(
            "agent_host_rebuilt",
            lost_on=lost.node,
            node=host.node,
            agents=len(agents),
            unanswered=len(unanswered),
        )
        if agents:
            self.send(self.wired().monitor, AgentsLost(agents))

    def _forward(
        self, host: _AgentHost, agent_id: str, payload: Any, reply_to: ReplyTo | None
    ) -> None:
        """Post ``payload`` to the agent's entity on ``host``; its answer comes back here."""
        target = Ref(host.address, agent_entity_id(agent_id))
        if reply_to is None:
            self.post(target, payload)
            return
        now = self.now()
        forwarded = self.forwarded
        while forwarded:  # oldest first: drop what expired, make room beyond the bound
            oldest_id = next(iter(forwarded))
            oldest = forwarded[oldest_id]
            if len(forwarded) < MAX_FORWARDED and now - oldest.at < FORWARDED_TTL_MS:
                break
            del forwarded[oldest_id]
            if now - oldest.at < FORWARDED_TTL_MS:
                self.refuse(
                    oldest.caller,
                    ErrorKind.UNAVAILABLE,
                    f"{_operation(oldest.payload)} for agent {oldest.agent_id}: too many agent"
                    " requests in flight; it may or may not have been applied: check, or retry",
                )
        call_id = f"fwd-{next(self._forward_ids)}"
        forwarded[call_id] = ForwardedRequest(reply_to, host, agent_id, payload, now)
        self.post(target, payload, ReplyTo(self.myAddress, call_id))

    def _reattach(self, request: Reattach) -> None:
        for agent_id in (*request.counted, *request.monitors):
            one = Reattach(
                request.conversation,
                tuple(a for a in request.counted if a == agent_id),
                tuple(a for a in request.monitors if a == agent_id),
            )
            placed = self.placement.get(agent_id)
            if placed is None:
                self.awaiting.setdefault(agent_id, []).append(one)
            else:
                self.post(Ref(placed.address, agent_entity_id(agent_id)), one)

    def _place(self, agent_id: str) -> _AgentHost:
        placement = self.wired().settings.placement
        slot: int | None = None
        if placement.agent_hosts > 1:  # the agent's own host, started on its first agent
            slot = agent_host_slot(agent_id, placement.agent_hosts)
            found = next((h for h in self.hosts if h.slot == slot), None)
            if found is not None:
                return found
        else:
            for host in self.hosts:
                if host.agents < placement.per_host:
                    return host
        return self._new_host(slot)

    def _new_host(self, slot: int | None) -> _AgentHost:
        """Start an agent host on the live node offering agent hosts that has the fewest per
        unit of weight (with ``storage.postgres``; else, or with no node known, here)."""
        node = None
        if self.wired().settings.storage.postgres is not None:
            node = self.nodes.choose(h.node for h in self.hosts)
        address, node = create_on_node(self, Host, node, "agent host")
        self._host_seq += 1
        self.send(address, HostInit(f"agents-{self._host_seq}", "agents", self.wired(), self.now()))
        host = _AgentHost(address, slot=slot, node=node)
        self.hosts.append(host)
        log.info("agent_host_placed", node=node, slot=slot)
        return host


def _operation(payload: Any) -> str:
    """The gateway operation that sent ``payload``, for messages."""
    if isinstance(payload, AgentPresence):
        return _PRESENCE_OPS.get(payload.action, "agent presence")
    if isinstance(payload, AgentLogin):
        return "agent_login"
    if isinstance(payload, AgentJoin):
        return "agent_join"
    if isinstance(payload, Subscribe):
        return "subscribe_agent"
    if isinstance(payload, AgentQuery):
        return "agent_conversations"
    return "unsubscribe"


def _lost_message(forwarded: ForwardedRequest) -> str:
    what, agent_id = _operation(forwarded.payload), forwarded.agent_id
    if what == "agent_login":
        return (
            f"agent_login refused for {agent_id}: the agent host failed before it answered and the"
            " agent is not logged in: log in again"
        )
    if what == "agent_logout":
        return (
            f"agent_logout for agent {agent_id}: its agent host failed before it answered; the"
            " agent is logged out, but may still be a participant of its conversations: leave"
            " them with agent_leave"
        )
    return (
        f"{what} refused for agent {agent_id}: its agent host failed before it answered, and the"
        f" agent is logged out; the request may or may not have been applied: log the agent in"
        f" again (agent_login), then retry {what}"
    )


def _login_problem(login: AgentLogin) -> str | None:
    if not isinstance(login.agent_id, str) or not 0 < len(login.agent_id) <= 64:
        return "agent id must be a non-empty string of at most 64 characters"
    if not login.queues or not all(isinstance(q, str) and 0 < len(q) <= 64 for q in login.queues):
        return "queues must be a non-empty list of queue names"
    if isinstance(login.max_conversations, bool) or not isinstance(login.max_conversations, int):
        return "max_conversations must be an integer"
    if not 1 <= login.max_conversations <= MAX_AGENT_CONVERSATIONS:
        return f"max_conversations must be between 1 and {MAX_AGENT_CONVERSATIONS}"
    return None
