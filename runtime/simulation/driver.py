"""The discrete-event driver: simulated customers and agents acting on the embedded engine.

The driver sits outside the engine and uses only the gateway. It keeps an agenda, a heap of
``(virtual time ms, sequence, action)``; before each action it moves the engine's virtual clock
to the action's time with ``gw.advance`` (so the engine's own timers fire in order on the way),
then acts (a customer writes, an agent replies, ...). Every draw comes from one
``random.Random(seed)``, the agenda breaks ties by the order items were scheduled, and nothing
iterates a set: the same scenario and seed always make the same calls.

What the engine does by itself (routing, the bot, timers) the driver learns by reading events,
incrementally (``gw.events(cid, after_seq=...)``), only where something can have happened:

* after each of its own actions on a conversation;
* at the deadline of every timer it knows is running in a conversation (the ``_STARTED`` and
  ``_STOPPED`` events tell it which, and when): a *watch* on the agenda;
* when an agent may have been routed a waiting conversation (it became READY, or one of its
  conversations released it): the waiting conversations it serves, in the Router's order
  (priority, then request age), until one shows that agent or is still waiting.

Everything the driver learns from the engine, it also reacts to: an agent who got a
conversation answers after its reply time, a customer whose session ended by inactivity is
gone, an agent the engine removed for an expired SLA gets READY again after a while, etc.
"""

from __future__ import annotations

import heapq
import itertools
from bisect import bisect_left, insort
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from random import Random
from typing import Any

from infra.config import Settings
from infra.timefmt import seconds_to_ms
from runtime.gateway import Gateway, GatewayError
from runtime.simulation.scenario import AgentGroup, Scenario

#: progress(now_ms, end_ms, conversations started, conversations open)
Progress = Callable[[int, int, int, int], None]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PRESENT = ("PRIMARY", "ASSISTANT")
_GONE_STATES = ("CLOSING", "CLOSED")

# customer phases
BOT, WAITING, WITH_AGENT, NO_AGENT, LEFT = "BOT", "WAITING", "WITH_AGENT", "NO_AGENT", "LEFT"

_BOT_QUESTIONS = (
    "Hi, where is my order?",
    "What are your opening hours?",
    "How do I reset my password?",
    "Can I change my delivery address?",
    "Do you ship abroad?",
    "My invoice looks wrong.",
    "How long does a refund take?",
)
_CUSTOMER_LINES = (
    "Thanks. The order number is 4711.",
    "It was delivered to the wrong address.",
    "Yes, that is right.",
    "Could you check again please?",
    "I paid with my credit card.",
    "It arrived damaged.",
    "OK, what happens next?",
)
_AGENT_LINES = (
    "Hello, thanks for waiting. Let me look into it.",
    "I have found your order.",
    "I have updated it for you.",
    "Is there anything else I can do?",
    "One moment while I check.",
)
_IDENTIFIERS = {
    "WEB": "visitor-{n}",
    "APP": "app-user-{n}",
    "EMAIL": "customer{n}@example.com",
}


def _identifier(channel: str, number: int) -> str:
    pattern = _IDENTIFIERS.get(channel)
    if pattern is not None:
        return pattern.format(n=number)
    return f"+1555{number:07d}"


_parse_cache: dict[str, int] = {}


def timestamp_ms(text: str) -> int:
    """Milliseconds since the epoch of an engine timestamp (``1970-01-01T00:05:00.000Z``)."""
    value = _parse_cache.get(text)
    if value is None:
        moment = datetime.fromisoformat(text)
        value = (moment - _EPOCH) // _MS
        if len(_parse_cache) > 4096:
            _parse_cache.clear()
        _parse_cache[text] = value
    return value


_MS = datetime(1970, 1, 1, 0, 0, 0, 1000, tzinfo=UTC) - _EPOCH


# ------------------------------------------------------------------------------ simulated people


class SimAgent:
    __slots__ = (
        "busy_since",
        "conversations",
        "group",
        "id",
        "logged_in",
        "login_ms",
        "logout_ms",
        "on_break",
        "queues",
        "ready",
        "shift_over",
    )

    def __init__(self, agent_id: str, group: AgentGroup) -> None:
        self.id = agent_id
        self.group = group
        self.queues = group.queues
        self.logged_in = False
        self.ready = False
        self.on_break = False
        self.shift_over = False
        self.conversations: dict[str, None] = {}  # counted against the limit (incl. offers)
        self.login_ms: int | None = None
        self.logout_ms: int | None = None
        self.busy_since = 0

    def can_take(self) -> bool:
        return (
            self.logged_in
            and self.ready
            and not self.on_break
            and not self.shift_over
            and len(self.conversations) < self.group.max_conversations
        )


class SimConversation:
    __slots__ = (
        "abandon_token",
        "agents",
        "bot_left",
        "channel",
        "cid",
        "customer_id",
        "done",
        "exchanges_left",
        "excluded",
        "hold_planned",
        "needs_agent",
        "offers",
        "on_hold",
        "ordinal",
        "phase",
        "queue",
        "request",
        "retried",
        "second_channel",
        "seq",
        "sessions",
        "silent",
        "sla_queue",
        "sla_removed",
        "state",
        "timers",
        "turn_token",
        "voice",
        "watch_at",
    )

    def __init__(self, cid: str, ordinal: int, customer_id: str) -> None:
        self.cid = cid
        self.ordinal = ordinal
        self.customer_id = customer_id
        self.channel = ""
        self.seq = 0
        self.state = "CREATED"
        self.done = False
        self.sessions: dict[str, bool] = {}  # session id -> live
        self.voice: dict[str, None] = {}  # voice session ids
        self.agents: dict[str, str] = {}  # agent id -> role
        self.offers: dict[str, None] = {}
        self.timers: dict[tuple[str, str], int] = {}  # (kind, subject) -> deadline ms
        self.watch_at: int | None = None
        self.request: tuple[str, int, int] | None = None  # (queue, requested at, order)
        self.excluded: tuple[str, ...] = ()  # agents the pending request may not go to
        self.sla_removed: tuple[int, tuple[str, ...]] | None = None
        self.on_hold = False
        self.phase = BOT
        self.turn_token = 0
        self.abandon_token = 0
        # the customer's plan
        self.needs_agent = False
        self.bot_left = 0
        self.exchanges_left = 0
        self.silent = False
        self.queue = "default"
        self.sla_queue = "default"
        self.second_channel = False
        self.retried = False
        self.hold_planned = False

    def live_sessions(self) -> list[str]:
        return [sid for sid, live in self.sessions.items() if live]


@dataclass(slots=True)
class DriverStats:
    actions: int = 0
    polls: int = 0
    refused: int = 0
    watches: int = 0
    discoveries: int = 0
    conversations: int = 0
    late_assignments: int = 0  # assignments the driver learned of after they happened
    late_ms: int = 0  # the latest it learned of one
    refusals: dict[str, int] = field(default_factory=dict)  # by gateway method
    examples: list[str] = field(default_factory=list)  # the first few refusals, for diagnosis


# ------------------------------------------------------------------------------ the driver


class Driver:
    """Runs one scenario on one embedded gateway; see the module docstring."""

    def __init__(
        self, scenario: Scenario, gw: Gateway, *, progress: Progress | None = None
    ) -> None:
        self.scenario = scenario
        self.gw = gw
        self.settings: Settings = gw.settings
        self.rng = Random(scenario.seed)
        self.progress = progress
        self.stats = DriverStats()
        self.base = self.now = gw.now_ms  # 0 on empty storage; scenario times count from it
        self.end_ms = self.base + seconds_to_ms(scenario.total_seconds)
        self._tick = seconds_to_ms(scenario.resolution)
        self._agenda: list[tuple[int, int, Callable[[Any, Any], None], Any, Any]] = []
        self._order = itertools.count()
        self._request_order = itertools.count()
        self.conversations: dict[str, SimConversation] = {}  # every one, in creation order
        self._open: dict[str, SimConversation] = {}
        self.agents: dict[str, SimAgent] = {}
        self._waiting: dict[str, list[tuple[int, int, str]]] = {}  # queue -> (at, order, cid)
        self._discover_queue: dict[str, None] = {}
        self._customers = 0
        self._arrivals = 0
        self._timer_ms = {
            "TTL": seconds_to_ms(self.settings.routing.request_ttl_seconds),
            "ACCEPT": seconds_to_ms(self.settings.routing.accept_timeout_seconds),
            "WRAP_UP": seconds_to_ms(self.settings.timers.wrap_up_seconds),
        }
        bot = self.settings.bot
        self._keyword_bot = bot.enabled and bot.class_path is None and bool(bot.agent_keywords)
        keyword = bot.agent_keywords[0] if bot.agent_keywords else "agent"
        self._request_text = f"I would like to talk to an {keyword}, please."
        words = {k.lower() for k in bot.agent_keywords}
        self._bot_questions = tuple(
            q for q in _BOT_QUESTIONS if not words & set(q.lower().strip(".?!").split())
        ) or ("Hello?",)
        self._channel_names = [name for name, _ in scenario.channels]
        self._channel_weights = list(itertools.accumulate(w for _, w in scenario.channels))
        self._queue_names = [name for name, _ in scenario.customers.queues]
        self._queue_weights = list(itertools.accumulate(w for _, w in scenario.customers.queues))
        self._hold_max = self.settings.timers.hold_max_seconds

    # -------------------------------------------------------------- agenda

    def at(
        self, when: int, action: Callable[[Any, Any], None], a: Any = None, b: Any = None
    ) -> None:
        tick = self._tick
        if tick > 1:  # on the grid, never earlier than asked (a watch must not come early)
            when = -(-when // tick) * tick
        heapq.heappush(self._agenda, (when, next(self._order), action, a, b))

    def after(
        self, delay_ms: int, action: Callable[[Any, Any], None], a: Any = None, b: Any = None
    ) -> None:
        self.at(self.now + max(delay_ms, 0), action, a, b)

    def run(self) -> None:
        self._schedule_agents()
        self._schedule_next_arrival(0)
        agenda = self._agenda
        gw = self.gw
        progress = self.progress
        ticks = 0
        while agenda and agenda[0][0] <= self.end_ms:
            when, _, action, a, b = heapq.heappop(agenda)
            if _stale(action, a, b):
                continue  # superseded: no need to move the clock for it
            if when > self.now:
                gw.advance((when - self.now) / 1000)
                self.now = when
                if gw.now_ms != when:  # the driver and the engine must share one clock
                    raise RuntimeError(f"virtual clock at {gw.now_ms} ms, expected {when}")
            action(a, b)
            if self._discover_queue:
                self._run_discoveries()
            ticks += 1
            if progress is not None and ticks % 256 == 0:
                self._show(progress)
        if self.end_ms > self.now:
            gw.advance((self.end_ms - self.now) / 1000)
            self.now = self.end_ms
        # what happened in the last stretch: final polls of everything still open
        for conversation in list(self._open.values()):
            self._poll(conversation)
        self._run_discoveries()
        if progress is not None:
            self._show(progress)

    def _show(self, progress: Progress) -> None:
        elapsed, total = self.now - self.base, self.end_ms - self.base
        progress(elapsed, total, self.stats.conversations, len(self._open))

    # -------------------------------------------------------------- engine access

    def _call(
        self, conversation: SimConversation | None, method: Any, *args: Any, **kw: Any
    ) -> bool:
        """One gateway action; a refusal (the driver's view was stale) re-reads the conversation."""
        self.stats.actions += 1
        try:
            method(*args, **kw)
        except GatewayError as error:
            self._refused(method.__name__, error)
            if conversation is not None and not conversation.done:
                self._poll(conversation)
            return False
        return True

    def _refused(self, what: str, error: GatewayError) -> None:
        stats = self.stats
        stats.refused += 1
        stats.refusals[what] = stats.refusals.get(what, 0) + 1
        if len(stats.examples) < 5:
            stats.examples.append(f"{what}: {error}")

    def _poll(self, conversation: SimConversation) -> None:
        self.stats.polls += 1
        events = self.gw.events(conversation.cid, after_seq=conversation.seq)
        if events:
            conversation.seq = events[-1]["seq"]
            self._absorb(conversation, events)
        if not conversation.done:
            self._rewatch(conversation)

    def _rewatch(self, conversation: SimConversation) -> None:
        timers = conversation.timers
        if not timers:
            conversation.watch_at = None
            return
        due = min(timers.values())
        if due <= self.now:  # knowledge the engine has moved past: forget it rather than loop
            for key in [k for k, v in timers.items() if v <= self.now]:
                del timers[key]
            if not timers:
                conversation.watch_at = None
                return
            due = min(timers.values())
        if conversation.watch_at != due:
            conversation.watch_at = due
            self.at(due, self._watch, conversation, due)

    def _watch(self, conversation: SimConversation, due: int) -> None:
        if conversation.done or conversation.watch_at != due:
            return
        conversation.watch_at = None
        self.stats.watches += 1
        self._poll(conversation)

    # -------------------------------------------------------------- what the engine did

    def _absorb(self, c: SimConversation, events: list[dict[str, Any]]) -> None:
        for event in events:
            name = event["name"]
            handler = _HANDLERS.get(name)
            if handler is not None:
                handler(self, c, event)
            elif name.endswith("_STARTED") and name.startswith(("AGENT_SLA", "CUSTOMER_SLA")):
                kind = "AGENT_SLA" if name[0] == "A" else "CUSTOMER_SLA"
                subject = event["channel_session_id"] or ""
                start = timestamp_ms(event["timestamp"])
                c.timers[(kind, subject)] = start + seconds_to_ms(event["data"]["seconds"])
            elif name.endswith(("_STOPPED", "_EXPIRED")) and name.startswith(
                ("AGENT_SLA", "CUSTOMER_SLA")
            ):
                kind = "AGENT_SLA" if name[0] == "A" else "CUSTOMER_SLA"
                c.timers.pop((kind, event["channel_session_id"] or ""), None)
                if name == "AGENT_SLA_EXPIRED":  # its re-request excludes these agents
                    removed = tuple(a for a, role in c.agents.items() if role in _PRESENT)
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
        if target in _GONE_STATES:
            self._finished(c)
        elif target == "CUSTOMER_LEFT":
            for agent_id, role in c.agents.items():
                if role in _PRESENT:
                    agent = self.agents.get(agent_id)
                    if agent is not None:
                        self.after(
                            agent.group.leave_after.draw_ms(self.rng), self._agent_leave, agent, c
                        )

    def _on_agent_requested(self, c: SimConversation, event: dict[str, Any]) -> None:
        queue = event["data"]["queue"]
        at = timestamp_ms(event["timestamp"])
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
            patience = self.scenario.customers.patience.draw_ms(self.rng)
            self.at(max(at + patience, self.now), self._abandon, c, c.abandon_token)

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
        if role not in _PRESENT:
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
            delay = agent.group.reply_time.draw_ms(self.rng)
            self.at(max(at + delay, self.now), self._agent_reply, c, c.turn_token)

    def _on_agent_unsubscribed(self, c: SimConversation, event: dict[str, Any]) -> None:
        data = event["data"]
        agent_id, reason = data["agent_id"], data["reason"]
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
        delay = agent.group.wrap_up_time.draw_ms(self.rng)
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

    # -------------------------------------------------------------- customers

    def _schedule_next_arrival(self, from_ms: int) -> None:
        arrivals = self.scenario.arrivals
        if arrivals.limit is not None and self._arrivals >= arrivals.limit:
            return
        second = from_ms / 1000
        end = self.scenario.duration
        profile = arrivals.profile
        while second < end:
            rate = arrivals.rate_at(second)
            boundary = next((start for start, _ in profile if start > second), end)
            boundary = min(boundary, end)
            if rate > 0:
                candidate = second + self.rng.expovariate(rate / 3600.0)
                if candidate < boundary:
                    self.at(self.base + round(candidate * 1000), self._arrive)
                    return
            second = boundary

    def _pick(self, names: list[str], cumulative: list[float]) -> str:
        point = self.rng.random() * cumulative[-1]
        for name, edge in zip(names, cumulative, strict=True):
            if point < edge:
                return name
        return names[-1]

    def _arrive(self, _a: Any = None, _b: Any = None) -> None:
        self._arrivals += 1
        self._schedule_next_arrival(self.now - self.base)
        customers = self.scenario.customers
        rng = self.rng
        self._customers += 1
        number = self._customers
        customer_id = f"cust-{number:06d}"
        channel = self._pick(self._channel_names, self._channel_weights)
        needs_agent = rng.random() >= customers.bot_resolves
        bot_left = customers.messages_to_bot.draw(rng)
        exchanges = customers.exchanges.draw(rng)
        silent = rng.random() < customers.silent_leave and channel != "VOICE"
        queue = self._pick(self._queue_names, self._queue_weights)
        second = rng.random() < self.scenario.second_channel
        self.stats.actions += 1
        try:
            ref = self.gw.start_session(customer_id, channel, _identifier(channel, number))
        except GatewayError as error:
            self._refused("start_session", error)
            return
        c = self._register(ref.conversation_id, customer_id)
        c.needs_agent, c.bot_left, c.exchanges_left = needs_agent, bot_left, exchanges
        c.silent, c.queue, c.second_channel = silent, queue, second
        self._poll(c)
        c.turn_token += 1
        self.after(customers.think_time.draw_ms(rng) // 2, self._customer_turn, c, c.turn_token)
        if second:
            self.after(customers.think_time.draw_ms(rng) * 2, self._second_channel, c)

    def _register(self, cid: str, customer_id: str) -> SimConversation:
        c = self.conversations.get(cid)
        if c is None:
            c = SimConversation(cid, len(self.conversations), customer_id)
            self.conversations[cid] = c
            self._open[cid] = c
            self.stats.conversations += 1
        return c

    def _second_channel(self, c: SimConversation, _b: Any = None) -> None:
        if c.done or c.phase == LEFT:
            return
        channels = [n for n in self._channel_names if n != c.channel]
        names = channels or self._channel_names
        weights = list(itertools.accumulate(w for n, w in self.scenario.channels if n in names))
        channel = self._pick(names, weights)
        number = int(c.customer_id.rsplit("-", 1)[1])
        self.stats.actions += 1
        try:
            ref = self.gw.start_session(c.customer_id, channel, _identifier(channel, number) + "-2")
        except GatewayError as error:
            self._refused("start_session", error)
            self._poll(c)
            return
        if ref.conversation_id == c.cid:
            self._poll(c)
            return
        # the conversation had closed meanwhile: the customer started a new one; it leaves
        other = self._register(ref.conversation_id, c.customer_id)
        other.bot_left, other.needs_agent = 1, False
        self._poll(other)
        other.turn_token += 1
        self.after(
            self.scenario.customers.think_time.draw_ms(self.rng),
            self._customer_turn,
            other,
            other.turn_token,
        )

    def _say(self, c: SimConversation, text: str) -> bool:
        live = c.live_sessions()
        if not live:
            return False
        sid = live[-1] if len(live) == 1 else live[self.rng.randrange(len(live))]
        return self._call(c, self.gw.customer_message, sid, text)

    def _customer_turn(self, c: SimConversation, token: int) -> None:
        if c.done or token != c.turn_token or c.phase in (WAITING, LEFT):
            return
        rng = self.rng
        think = self.scenario.customers.think_time
        if c.phase == BOT:
            if c.bot_left > 0:
                c.bot_left -= 1
                if self._say(c, rng.choice(self._bot_questions)):
                    # not read back: the bot's answer only restarts inactivity timers, later
                    c.turn_token += 1
                    self.after(think.draw_ms(rng), self._customer_turn, c, c.turn_token)
                return
            if c.needs_agent:
                self._ask_for_agent(c)
            else:
                self._bot_resolved(c)
        elif c.phase == WITH_AGENT:
            c.exchanges_left -= 1
            if self._say(c, rng.choice(_CUSTOMER_LINES)):
                self._expect_agent_sla(c)
                self._agent_turn(c)
        elif c.phase == NO_AGENT:
            if not c.retried and rng.random() < self.scenario.customers.retry_after_no_agent:
                c.retried = True
                self._ask_for_agent(c)
            else:
                self._leave(c)

    def _expect_agent_sla(self, c: SimConversation) -> None:
        """A customer message with an agent present (re)starts the agent SLA: watch it without
        reading the conversation back. (Timers the driver believes end earlier than they do
        only cost an early look; one it did not know about could be missed.)"""
        if c.on_hold or any(c.sessions.get(sid) for sid in c.voice):
            return
        if not any(role in _PRESENT for role in c.agents.values()):
            return
        deadline = self.now + seconds_to_ms(self.settings.queue_sla_seconds(c.sla_queue))
        c.timers[("AGENT_SLA", "")] = deadline
        self._rewatch(c)

    def _ask_for_agent(self, c: SimConversation) -> None:
        default_queue = self.settings.routing.default_queue
        by_keyword = self._keyword_bot and c.queue == default_queue
        text = self._request_text if by_keyword else "I need some help with my account."
        if not self._say(c, text):
            return
        self._poll(c)
        # no keyword bot (or another queue): the channel asks for the agent itself
        if (
            c.request is None
            and c.phase not in (WITH_AGENT, LEFT)
            and not c.done
            and self._call(c, self.gw.request_agent, c.cid, c.queue)
        ):
            self._poll(c)

    def _bot_resolved(self, c: SimConversation) -> None:
        if self.rng.random() < self.scenario.bot_closes:
            if self._call(c, self.gw.end_conversation, c.cid, by="BOT"):
                self._poll(c)
        else:
            self._leave(c)

    def _leave(self, c: SimConversation, _b: Any = None) -> None:
        """The customer goes: ends its sessions, or (``silent``) just stops answering."""
        if c.done or c.phase == LEFT:
            return
        if c.silent and not c.voice:
            c.phase = LEFT
            c.turn_token += 1
            return
        live = c.live_sessions()
        for index, sid in enumerate(live):
            ok = self._call(c, self.gw.end_session, sid, "CUSTOMER")
            if not ok or index == len(live) - 1:
                break
        if not c.done:
            self._poll(c)

    def _abandon(self, c: SimConversation, token: int) -> None:
        if c.done or token != c.abandon_token or c.phase != WAITING:
            return
        self._poll(c)  # an agent may just have come
        if c.done or token != c.abandon_token or c.phase != WAITING:
            return
        c.silent = False
        self._leave(c)

    # -------------------------------------------------------------- agents

    def _schedule_agents(self) -> None:
        for group in self.scenario.agents:
            for index in range(group.count):
                agent = SimAgent(f"{group.name}-{index + 1:03d}", group)
                self.agents[agent.id] = agent
                start = self.base + seconds_to_ms(group.shift_start)
                self.at(start, self._agent_login, agent)
                if group.shift_end is not None:
                    end = self.base + seconds_to_ms(group.shift_end)
                    self.at(end, self._agent_shift_end, agent)
                if group.break_every is not None:
                    first = group.break_every * (0.5 + self.rng.random())
                    self.at(start + seconds_to_ms(first), self._agent_break, agent)

    def _agent_login(self, agent: SimAgent, _b: Any = None) -> None:
        if agent.shift_over:
            return
        group = agent.group
        if not self._call(
            None,
            self.gw.agent_login,
            agent.id,
            queues=list(group.queues),
            max_conversations=group.max_conversations,
        ):
            return
        agent.logged_in = True
        agent.login_ms = self.now
        if not agent.on_break:
            self._agent_ready(agent)

    def _agent_ready(self, agent: SimAgent) -> None:
        if self._call(None, self.gw.agent_ready, agent.id):
            agent.ready = True
            if agent.can_take():
                self._discover_queue[agent.id] = None

    def _agent_recover(self, agent: SimAgent, _b: Any = None) -> None:
        if agent.logged_in and not agent.ready and not agent.on_break and not agent.shift_over:
            self._agent_ready(agent)

    def _agent_break(self, agent: SimAgent, _b: Any = None) -> None:
        group = agent.group
        if agent.shift_over or group.break_every is None:
            return
        if agent.logged_in:
            self._call(None, self.gw.agent_not_ready, agent.id)
            agent.ready = False
        agent.on_break = True
        self.after(seconds_to_ms(group.break_length), self._agent_break_end, agent)
        self.after(seconds_to_ms(group.break_length + group.break_every), self._agent_break, agent)

    def _agent_break_end(self, agent: SimAgent, _b: Any = None) -> None:
        agent.on_break = False
        if agent.logged_in and not agent.shift_over:
            self._agent_ready(agent)

    def _agent_shift_end(self, agent: SimAgent, _b: Any = None) -> None:
        agent.shift_over = True
        if not agent.logged_in:
            return
        if agent.ready:
            self._call(None, self.gw.agent_not_ready, agent.id)
            agent.ready = False
        if not agent.conversations:
            self._agent_logout(agent)

    def _agent_logout(self, agent: SimAgent, _b: Any = None) -> None:
        if not agent.logged_in or agent.conversations:
            return
        if self._call(None, self.gw.agent_logout, agent.id):
            agent.logged_in = False
            agent.ready = False
            agent.logout_ms = self.now

    def _agent_turn(self, c: SimConversation) -> None:
        """The customer wrote: its primary agent answers after its reply time."""
        primary = next((a for a, role in c.agents.items() if role == "PRIMARY"), None)
        agent = self.agents.get(primary) if primary is not None else None
        c.turn_token += 1
        if agent is None:
            return
        self.after(agent.group.reply_time.draw_ms(self.rng), self._agent_reply, c, c.turn_token)

    def _agent_reply(self, c: SimConversation, token: int) -> None:
        if c.done or token != c.turn_token or c.phase != WITH_AGENT:
            return
        primary = next((a for a, role in c.agents.items() if role == "PRIMARY"), None)
        agent = self.agents.get(primary) if primary is not None else None
        if agent is None:
            return
        group, rng = agent.group, self.rng
        if not c.hold_planned and not c.on_hold and rng.random() < group.hold_probability:
            c.hold_planned = True
            seconds = min(max(round(group.hold_seconds.draw(rng), 3), 1.0), self._hold_max)
            if self._call(c, self.gw.hold, agent.id, c.cid, seconds):
                self._poll(c)
                self.after(group.hold_duration.draw_ms(rng), self._agent_reply, c, token)
                return
        if c.on_hold and rng.random() < 0.5 and self._call(c, self.gw.resume, agent.id, c.cid):
            self._poll(c)
            if c.done or token != c.turn_token:
                return
        if not self._call(c, self.gw.agent_message, agent.id, c.cid, rng.choice(_AGENT_LINES)):
            return
        if c.on_hold:  # the message resumed it: read what changed
            self._poll(c)
            if c.done or c.phase != WITH_AGENT:
                return
        else:  # a PRIMARY agent's message stops the agent SLA (and restarts inactivity, later)
            c.timers.pop(("AGENT_SLA", ""), None)
        c.turn_token += 1
        if c.exchanges_left > 0:
            delay = self.scenario.customers.think_time.draw_ms(rng)
            self.after(delay, self._customer_turn, c, c.turn_token)
        elif rng.random() < group.ends_chat:
            self.after(group.reply_time.draw_ms(rng), self._agent_end_chat, agent, c)
        else:
            self.after(self.scenario.customers.think_time.draw_ms(rng), self._leave, c)

    def _agent_end_chat(self, agent: SimAgent, c: SimConversation) -> None:
        if c.done or c.agents.get(agent.id) not in _PRESENT:
            return
        live = c.live_sessions()
        for sid in live:
            if not self._call(c, self.gw.end_session, sid, "AGENT"):
                break
        if not c.done:
            self._poll(c)

    def _agent_leave(self, agent: SimAgent, c: SimConversation) -> None:
        if c.done or c.agents.get(agent.id) not in _PRESENT:
            return
        if self._call(c, self.gw.agent_leave, agent.id, c.cid):
            self._poll(c)

    def _apply_wrap_up(self, agent: SimAgent, c: SimConversation) -> None:
        if c.done or c.agents.get(agent.id) != "WRAP_UP":
            return
        code = "resolved" if c.exchanges_left <= 0 else "follow-up"
        if self._call(c, self.gw.apply_wrap_up, agent.id, c.cid, [code]):
            self._poll(c)

    def _agent_accept(self, agent: SimAgent, c: SimConversation) -> None:
        if c.done or agent.id not in c.offers:
            return
        if self._call(c, self.gw.agent_join, agent.id, c.cid):
            self._poll(c)

    # -------------------------------------------------------------- results for the summary

    def logged_in_ms(self) -> dict[str, tuple[int, int]]:
        """Each agent's time logged in: (from, to) in ms, ``to`` the end of the run if still in."""
        spans: dict[str, tuple[int, int]] = {}
        for agent in self.agents.values():
            if agent.login_ms is None:
                continue
            end = agent.logout_ms if agent.logout_ms is not None else self.end_ms
            spans[agent.id] = (agent.login_ms, end)
        return spans


def _stale(action: Callable[[Any, Any], None], a: Any, b: Any) -> bool:
    """Whether an agenda item was superseded (its token is old, its conversation is over)."""
    guard = _GUARDS.get(getattr(action, "__func__", None))
    if guard is None:
        return False
    if guard == "watch":
        return bool(a.done or a.watch_at != b)
    if guard == "turn":
        return bool(a.done or b != a.turn_token)
    if guard == "abandon":
        return bool(a.done or b != a.abandon_token)
    return bool(b.done)  # (agent, conversation) actions


def _find(items: list[tuple[int, int, str]], entry: tuple[int, int, str]) -> int | None:
    index = bisect_left(items, entry)
    if index < len(items) and items[index] == entry:
        return index
    return None


_HANDLERS: dict[str, Callable[[Driver, SimConversation, dict[str, Any]], None]] = {
    "CHANNEL_SESSION_STARTED": Driver._on_session_started,
    "CHANNEL_SESSION_ENDED": Driver._on_session_ended,
    "TOPIC_STATE_CHANGED": Driver._on_state,
    "AGENT_REQUESTED": Driver._on_agent_requested,
    "AGENT_OFFERED": Driver._on_agent_offered,
    "RONA": Driver._on_rona,
    "NO_AGENT_AVAILABLE": Driver._on_no_agent,
    "AGENT_SUBSCRIBED": Driver._on_agent_subscribed,
    "AGENT_UNSUBSCRIBED": Driver._on_agent_unsubscribed,
    "PARTICIPANT_ROLE_CHANGED": Driver._on_role_changed,
    "CONVERSATION_PAUSED": Driver._on_paused,
    "CONVERSATION_RESUMED": Driver._on_resumed,
}

_GUARDS: dict[object, str] = {
    Driver._watch: "watch",
    Driver._customer_turn: "turn",
    Driver._agent_reply: "turn",
    Driver._abandon: "abandon",
    Driver._agent_end_chat: "conversation",
    Driver._agent_leave: "conversation",
    Driver._apply_wrap_up: "conversation",
    Driver._agent_accept: "conversation",
}
