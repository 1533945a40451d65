"""The driver's state, its agenda and its access to the engine.

:class:`DriverBase` holds what the driver knows, the agenda (a heap of ``(virtual time ms,
sequence, action, a, b)``; ties are broken by the order items were scheduled), the one
``random.Random`` every draw comes from, and the two ways it touches the engine: an action
(``_call``; a refusal re-reads the conversation) and an incremental read of a conversation's
events (``_poll``), with a *watch* on the agenda at the deadline of every timer it knows is
running. The parts of the driver build on it in one line: customers, agents, then the reading
of what the engine did (:mod:`runtime.simulation.observer`), combined in
:class:`runtime.simulation.driver.Driver`.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from random import Random
from typing import Any, Protocol

from infra.config import Settings
from infra.timefmt import seconds_to_ms
from runtime.gateway import Gateway, GatewayError
from runtime.simulation.faults import FaultInjector
from runtime.simulation.model import Distribution, Scenario
from runtime.simulation.people import BOT_QUESTIONS, SimAgent, SimConversation

#: progress(now_ms, end_ms, conversations started, conversations open)
Progress = Callable[[int, int, int, int], None]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
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


class EventReader(Protocol):
    """Given every event the driver reads (:class:`~runtime.simulation.stream.EventStream`)."""

    def read(self, c: SimConversation, events: list[dict[str, Any]]) -> None: ...


class DriverBase:
    """The driver's state, agenda and engine access; see the module docstring."""

    def __init__(
        self,
        scenario: Scenario,
        gw: Gateway,
        *,
        progress: Progress | None = None,
        stream: EventReader | None = None,
    ) -> None:
        self.scenario = scenario
        self.gw = gw
        #: given every event the driver reads (the summary is made from them)
        self.stream = stream
        self.settings: Settings = gw.settings
        self.rng = Random(scenario.seed)
        #: with common random numbers, the arrival times' own stream: the same customers
        #: arrive whatever the agents do
        self.arrival_rng = (
            Random(f"{scenario.seed}:arrivals") if scenario.common_random_numbers else self.rng
        )
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
            q for q in BOT_QUESTIONS if not words & set(q.lower().strip(".?!").split())
        ) or ("Hello?",)
        self._channel_names = [name for name, _ in scenario.channels]
        self._channel_weights = list(itertools.accumulate(w for _, w in scenario.channels))
        self._queue_names = [name for name, _ in scenario.customers.queues]
        self._queue_weights = list(itertools.accumulate(w for _, w in scenario.customers.queues))
        self._hold_max = self.settings.timers.hold_max_seconds
        self.rooms: dict[str, str] = {}  # conversation -> its room
        self.acknowledged: Counter[str] = Counter()  # customer messages acknowledged, by cid
        self.faults = FaultInjector(scenario, gw, self.at, self.base) if scenario.faults else None

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

    def _paced(self, c: SimConversation, delay: Distribution) -> int:
        """A delay of a chat with an agent: its even share of the handling time drawn at the
        answer (``agents[].handling_time``), else a draw of ``delay``."""
        return c.pace_ms if c.pace_ms is not None else delay.draw_ms(self.rng)

    def _show(self, progress: Progress) -> None:
        elapsed, total = self.now - self.base, self.end_ms - self.base
        progress(elapsed, total, self.stats.conversations, len(self._open))

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
            if self.stream is not None:
                self.stream.read(conversation, events)
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

    # -------------------------------------------------------------- provided by the later parts

    def _absorb(self, c: SimConversation, events: list[dict[str, Any]]) -> None:
        """Learn from a conversation's new events (:class:`~runtime.simulation.observer.EngineObserver`)."""
        raise NotImplementedError

    def _agent_turn(self, c: SimConversation) -> None:
        """The customer wrote: its agent answers (:class:`~runtime.simulation.agents.AgentActions`)."""
        raise NotImplementedError
