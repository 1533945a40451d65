"""The AgentSupervisor: logs agents in and out and places them on agent hosts (its children)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog

from actors.agent import agent_entity_id
from actors.base import EngineActor
from actors.host import Host
from actors.messages import (
    AgentGone,
    AgentJoin,
    AgentLogin,
    AgentPresence,
    AgentsLost,
    Deliver,
    HostInit,
    Reattach,
    Ref,
    Rewired,
    Subscribe,
    Unsubscribe,
)

log = structlog.get_logger("cx.agents")
MAX_AGENT_CONVERSATIONS = 100


@dataclass(slots=True)
class _AgentHost:
    address: Any
    agents: int = 0


class AgentSupervisor(EngineActor):
    def __init__(self) -> None:
        super().__init__()
        self.hosts: list[_AgentHost] = []
        self.placement: dict[str, _AgentHost] = {}
        # Conversations rebuilt from the journal whose agents have not logged in again yet:
        # they count against the agent's limit once it is back.
        self.awaiting: dict[str, list[Reattach]] = {}

    def on_deliver(self, item: Deliver, sender: Any) -> None:
        payload, reply_to = item.payload, item.reply_to
        if isinstance(payload, AgentLogin):
            problem = _login_problem(payload)
            if problem is not None:
                self.refuse(
                    reply_to,
                    "bad_argument",
                    f"agent_login refused for {payload.agent_id!r}: {problem}",
                )
                return
            if payload.agent_id in self.placement:
                self.refuse(
                    reply_to, "illegal_transition", f"agent {payload.agent_id} is already logged in"
                )
                return
            host = self._place()
            host.agents += 1
            self.placement[payload.agent_id] = host
            target = Ref(host.address, agent_entity_id(payload.agent_id))
            self.post(target, payload, reply_to)
            for reattach in self.awaiting.pop(payload.agent_id, []):
                self.post(target, reattach)
            # introduces the agent (NOT_READY) to the Router
            self.post(target, AgentPresence(payload.agent_id, "NOT_READY"))
            return
        if isinstance(payload, Reattach):
            self._reattach(payload)
            return
        agent_id = getattr(payload, "agent_id", None)
        if isinstance(payload, Subscribe | Unsubscribe):
            agent_id = payload.subscription.removeprefix("agent:")
        if (
            not isinstance(payload, AgentPresence | AgentJoin | Subscribe | Unsubscribe)
            or agent_id is None
        ):
            self.refuse(
                reply_to, "bad_argument", f"AgentSupervisor cannot handle {type(payload).__name__}"
            )
            return
        placed = self.placement.get(agent_id)
        if placed is None:
            self.refuse(reply_to, "unknown_id", f"agent {agent_id} is not logged in")
            return
        if isinstance(payload, AgentPresence) and payload.action == "LOGOUT":
            del self.placement[agent_id]
            placed.agents -= 1
        self.post(Ref(placed.address, agent_entity_id(agent_id)), payload, reply_to)

    def on_rewired(self, reroute: bool) -> None:
        for host in self.hosts:  # the Router or the Bot moved: every agent host must know
            self.send(host.address, Rewired(self.wired(), reroute))

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
            del self.placement[agent_id]
            self.post(Ref(self.wired().router, ""), AgentGone(agent_id))
        log.error("agent_host_exited", agents=len(agents))
        if agents:
            self.send(self.wired().monitor, AgentsLost(agents))

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

    def _place(self) -> _AgentHost:
        per_host = self.wired().settings.placement.per_host
        for host in self.hosts:
            if host.agents < per_host:
                return host
        address = self.createActor(Host)
        self.send(
            address, HostInit(f"agents-{len(self.hosts) + 1}", "agents", self.wired(), self.now())
        )
        host = _AgentHost(address)
        self.hosts.append(host)
        return host


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
