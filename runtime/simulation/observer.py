"""What the engine did by itself, read from the events: the driver's picture kept up to date.

Routing, the bot and the timers act inside the engine; the driver learns of them only from the
events it reads, and reacts (a customer waits or gives up, an agent answers an offer, wrap-up is
applied, ...). When an agent may have been routed a waiting conversation (it became READY, or
one of its conversations released it), the driver reads the waiting conversations it serves in
the Router's order (priority, then request age) until one shows that agent or is still waiting.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable
from typing import Any

from domain.events import EventName
from infra.timefmt import seconds_to_ms
from runtime.simulation.agents import AgentActions
from runtime.simulation.driver_base import timestamp_ms
from runtime.simulation.people import (
    BOT,
    GONE_STATES,
    LEFT,
    NO_AGENT,
    PRESENT,
    WAITING,
    WITH_AGENT,
    SimAgent,
    SimConversation,
)

#: The SLA timers the driver watches: the events that start one, and those that end one.
_SLA_STARTED = {
    EventName.AGENT_SLA_STARTED: "AGENT_SLA",
    EventName.CUSTOMER_SLA_STARTED: "CUSTOMER_SLA",
}
_SLA_ENDED = {
    EventName.AGENT_SLA_STOPPED: "AGENT_SLA",
    EventName.AGENT_SLA_EXPIRED: "AGENT_SLA",
    EventName.CUSTOMER_SLA_STOPPED: "CUSTOMER_SLA",
    EventName.CUSTOMER_SLA_EXPIRED: "CUSTOMER_SLA",
}


class EngineObserver(AgentActions):
    """Reads the engine's events into the driver's picture; see the module docstring."""

    def _absorb(self, c: SimConversation, events: list[dict[str, Any]]) -> None:
        for event in events:
            name = event["name"]
            handler = _HANDLERS.get(name)
            if handler is not None:
                handler(self, c, event)
            elif name in _SLA_STARTED:
                kind = _SLA_STARTED[name]
                subject = event["channel_session_id"] or ""
                start = timestamp_ms(event["timestamp"])
                c.timers[(kind, subject)] = start + seconds_to_ms(event["data"]["seconds"])
            elif name in _SLA_ENDED:
                kind = _SLA_ENDED[name]
                c.timers.pop((kind, event["channel_session_id"] or ""), None)
                if name == EventName.AGENT_SLA_EXPIRED:  # its re-request excludes these agents
                    removed = tuple(a for a, role in c.agents.items() if role in PRESENT)
                    c.sla_removed = (timestamp_ms(event["timestamp"]), removed)

    def _on_session_started(self, c: SimConversation, event: dict[str, Any]) -> None:
        sid = event["channel_session_id"]
        c.sessions[sid] = True
        if not c.channel:
            c.channel = str(event["data"].get("channel", ""))
        if event["data"].get("channel") == "VOICE":
            c.voice[sid] = None

    def _on_session_ended(self, c: SimConversation, event: dict[str, Any]) -> None:
        sid = event["channel_session_id"]
        c.sessions[sid] = False
        c.timers.pop(("CUSTOMER_SLA", sid), None)
        if c.done or any(c.sessions.values()):
            return
        # the customer is gone: present agents leave (with wrap-up on they are in WRAP_UP)
        c.phase = LEFT
        c.turn_token += 1
        self._not_waiting(c)

    def _on_state(self, c: SimConversation, event: dict[str, Any]) -> None:
        target = event["data"]["to"]
        c.state = target
        if target != "ON_HOLD" and c.on_hold:  # leaving ON_HOLD stops the hold timer
            c.on_hold = False
            c.timers.pop(("HOLD", ""), None)
        if target in GONE_STATES:
            self._finished(c)
        elif target == "CUSTOMER_LEFT":
            for agent_id, role in c.agents.items():
                if role in PRESENT:
                    agent = self.agents.get(agent_id)
                    if agent is not None:
                        self.after(
                            self._paced(c, agent.group.leave_after), self._agent_leave, agent, c
                        )

    def _on_consult_requested(self, c: SimConversation, event: dict[str, Any]) -> None:
        c.consulting = str(event["data"]["agent_id"])
        c.consult_pending = True

    def _on_consult_concluded(self, c: SimConversation, event: dict[str, Any]) -> None:
        c.consulting = None

    def _consult_requested(self, c: SimConversation, queue: str, at: int) -> None:
        """A consult's request: routed like any other, but the customer does not wait."""
        c.consult_pending = False
        self._not_waiting(c)
        c.excluded = (c.consulting,) if c.consulting is not None else ()
        c.request = (queue, at, next(self._request_order))
        insort(self._waiting.setdefault(queue, []), (at, c.request[2], c.cid))
        c.timers[("TTL", "")] = at + self._timer_ms["TTL"]

    def _on_agent_requested(self, c: SimConversation, event: dict[str, Any]) -> None:
        queue = event["data"]["queue"]
        at = timestamp_ms(event["timestamp"])
        if c.consult_pending:
            self._consult_requested(c, queue, at)
            return
        c.sla_queue = queue
        removed = c.sla_removed
        c.excluded = removed[1] if removed is not None and removed[0] == at else ()
        c.sla_removed = None
        self._not_waiting(c)
        c.request = (queue, at, next(self._request_order))
        insort(self._waiting.setdefault(queue, []), (at, c.request[2], c.cid))
        c.timers[("TTL", "")] = at + self._timer_ms["TTL"]
        if c.phase != LEFT:
            if c.phase == WITH_AGENT:  # re-routed after an agent SLA expiry
                c.turn_token += 1
            c.phase = WAITING
            c.abandon_token += 1
            patience = self.scenario.customers.patience
            if patience is not None:
                give_up = at + patience.draw_ms(c.rng or self.rng)
                self.at(max(give_up, self.now), self._abandon, c, c.abandon_token)

    def _on_agent_offered(self, c: SimConversation, event: dict[str, Any]) -> None:
        agent_id = event["data"].get("agent_id")
        self._not_waiting(c, keep_ttl=True)
        at = timestamp_ms(event["timestamp"])
        c.timers[("ACCEPT", "")] = at + self._timer_ms["ACCEPT"]
        agent = self.agents.get(agent_id) if agent_id is not None else None
        if agent is None:
            return
        c.offers[agent.id] = None
        agent.conversations[c.cid] = None
        delay = agent.group.accept_time.draw_ms(self.rng)
        self.at(max(at + delay, self.now), self._agent_accept, agent, c)

    def _on_rona(self, c: SimConversation, event: dict[str, Any]) -> None:
        c.timers.pop(("ACCEPT", ""), None)
        agent_id = event["data"].get("agent_id")
        if c.request is not None:  # back to the queue, keeping its age
            queue, at, order = c.request
            insort(self._waiting.setdefault(queue, []), (at, order, c.cid))
        agent = self.agents.get(agent_id) if agent_id is not None else None
        if agent is not None:
            c.offers.pop(agent.id, None)
            agent.conversations.pop(c.cid, None)
            self._made_not_ready(agent)

    def _on_no_agent(self, c: SimConversation, event: dict[str, Any]) -> None:
        self._not_waiting(c)
        c.request = None
        if event["data"].get("consult"):
            c.consulting = None
            return
        if c.phase == WAITING:
            c.phase = NO_AGENT
            c.abandon_token += 1
            c.turn_token += 1
            self.after(
                self.scenario.customers.think_time.draw_ms(self.rng),
                self._customer_turn,
                c,
                c.turn_token,
            )

    def _on_agent_subscribed(self, c: SimConversation, event: dict[str, Any]) -> None:
        data = event["data"]
        agent_id, role = data["agent_id"], data["role"]
        c.agents[agent_id] = role
        c.offers.pop(agent_id, None)
        if role not in PRESENT:
            return
        self._not_waiting(c)
        c.request = None
        c.excluded = ()
        agent = self.agents.get(agent_id)
        if agent is not None:
            agent.conversations[c.cid] = None
        if c.phase in (BOT, WAITING, NO_AGENT) and role == "PRIMARY" and agent is not None:
            c.phase = WITH_AGENT
            c.abandon_token += 1
            c.turn_token += 1
            at = timestamp_ms(event["timestamp"])
            if at < self.now:  # learned late (a measure of the driver's fidelity)
                self.stats.late_assignments += 1
                self.stats.late_ms = max(self.stats.late_ms, self.now - at)
            handling = agent.group.handling_time
            if handling is not None:  # first reply, n x (answer, reply), the end, leaving
                work = handling.draw_ms(c.rng or self.rng)  # the customer's: same in any variant
                c.pace_ms = round(work / (2 * c.exchanges_left + 3))
            delay = self._paced(c, agent.group.reply_time)
            self.at(max(at + delay, self.now), self._agent_reply, c, c.turn_token)

    def _on_agent_unsubscribed(self, c: SimConversation, event: dict[str, Any]) -> None:
        data = event["data"]
        agent_id, reason = data["agent_id"], data["reason"]
        if agent_id == c.consulting or c.agents.get(agent_id) == "ASSISTANT":
            c.consulting = None  # the consult is over with either agent gone
        c.agents.pop(agent_id, None)
        c.timers.pop(("WRAP_UP", agent_id), None)
        agent = self.agents.get(agent_id)
        if agent is None:
            return
        agent.conversations.pop(c.cid, None)
        if reason == "SLA_EXPIRED":
            self._made_not_ready(agent)
        elif reason != "AGENT_LOGOUT":
            self._freed(agent)

    def _on_role_changed(self, c: SimConversation, event: dict[str, Any]) -> None:
        data = event["data"]
        participant, role = data["participant_id"], data["to"]
        if participant not in c.agents:
            return
        c.agents[participant] = role
        if role != "WRAP_UP":
            return
        at = timestamp_ms(event["timestamp"])
        c.timers[("WRAP_UP", participant)] = at + self._timer_ms["WRAP_UP"]
        agent = self.agents.get(participant)
        if agent is None or self.rng.random() < agent.group.wrap_up_forget:
            return  # lets the wrap-up timer expire
        delay = self._paced(c, agent.group.wrap_up_time)
        self.at(max(at + delay, self.now), self._apply_wrap_up, agent, c)

    def _on_paused(self, c: SimConversation, event: dict[str, Any]) -> None:
        c.on_hold = True
        at = timestamp_ms(event["timestamp"])
        c.timers[("HOLD", "")] = at + seconds_to_ms(event["data"]["seconds"])

    def _on_resumed(self, c: SimConversation, event: dict[str, Any]) -> None:
        c.on_hold = False
        c.timers.pop(("HOLD", ""), None)

    def _not_waiting(self, c: SimConversation, *, keep_ttl: bool = False) -> None:
        if not keep_ttl:
            c.timers.pop(("TTL", ""), None)
            c.timers.pop(("ACCEPT", ""), None)
        if c.request is None:
            return
        queue, at, order = c.request
        waiting = self._waiting.get(queue)
        if waiting is not None:
            entry = (at, order, c.cid)
            index = _find(waiting, entry)
            if index is not None:
                del waiting[index]

    def _finished(self, c: SimConversation) -> None:
        if c.done:
            return
        c.done = True
        c.phase = LEFT
        c.timers.clear()
        c.watch_at = None
        self._not_waiting(c)
        c.request = None
        self._open.pop(c.cid, None)
        for agent_id in list(c.agents) + list(c.offers):
            agent = self.agents.get(agent_id)
            if agent is not None and agent.conversations.pop(c.cid, 0) is None:
                self._freed(agent)
        c.agents.clear()
        c.offers.clear()

    # -------------------------------------------------------------- routing discovery

    def _freed(self, agent: SimAgent) -> None:
        if agent.shift_over and not agent.conversations:
            self.after(0, self._agent_logout, agent)
        elif agent.can_take():
            self._discover_queue[agent.id] = None

    def _run_discoveries(self) -> None:
        while self._discover_queue:
            agent_id = next(iter(self._discover_queue))
            del self._discover_queue[agent_id]
            self._discover(self.agents[agent_id])

    def _candidates(self, agent: SimAgent) -> list[tuple[int, int, int, str]]:
        ranked: list[tuple[int, int, int, str]] = []
        for queue in agent.queues:
            waiting = self._waiting.get(queue)
            if waiting:
                priority = -self.settings.queue_priority(queue)
                ranked.extend((priority, at, order, cid) for at, order, cid in waiting)
        if len(agent.queues) > 1:
            ranked.sort()
        return ranked

    def _discover(self, agent: SimAgent) -> None:
        """Which waiting conversation (if any) the Router gave ``agent``: the best-ranked one
        in its queues that does not exclude it; look at them in that order."""
        while agent.can_take():
            load = len(agent.conversations)
            progressed = False
            for _, _, _, cid in self._candidates(agent):
                conversation = self._open.get(cid)
                if conversation is None or agent.id in conversation.excluded:
                    continue
                self.stats.discoveries += 1
                self._poll(conversation)
                if len(agent.conversations) > load:
                    progressed = True
                    break
                if conversation.request is not None and conversation.phase == WAITING:
                    return  # the best request is still waiting: the agent got nothing
            if not progressed:
                return

    def _made_not_ready(self, agent: SimAgent) -> None:
        if not agent.ready:
            return
        agent.ready = False
        self.after(agent.group.recover.draw_ms(self.rng), self._agent_recover, agent)


def _find(items: list[tuple[int, int, str]], entry: tuple[int, int, str]) -> int | None:
    index = bisect_left(items, entry)
    if index < len(items) and items[index] == entry:
        return index
    return None


_HANDLERS: dict[str, Callable[[EngineObserver, SimConversation, dict[str, Any]], None]] = {
    EventName.CHANNEL_SESSION_STARTED: EngineObserver._on_session_started,
    EventName.CHANNEL_SESSION_ENDED: EngineObserver._on_session_ended,
    EventName.TOPIC_STATE_CHANGED: EngineObserver._on_state,
    EventName.AGENT_REQUESTED: EngineObserver._on_agent_requested,
    EventName.AGENT_OFFERED: EngineObserver._on_agent_offered,
    EventName.RONA: EngineObserver._on_rona,
    EventName.NO_AGENT_AVAILABLE: EngineObserver._on_no_agent,
    EventName.AGENT_SUBSCRIBED: EngineObserver._on_agent_subscribed,
    EventName.AGENT_UNSUBSCRIBED: EngineObserver._on_agent_unsubscribed,
    EventName.PARTICIPANT_ROLE_CHANGED: EngineObserver._on_role_changed,
    EventName.CONSULT_REQUESTED: EngineObserver._on_consult_requested,
    EventName.CONSULT_CONCLUDED: EngineObserver._on_consult_concluded,
    EventName.CONVERSATION_PAUSED: EngineObserver._on_paused,
    EventName.CONVERSATION_RESUMED: EngineObserver._on_resumed,
}
