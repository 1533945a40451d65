"""Test helper for the pure conversation state machine (not a test module).

:class:`Driver` wraps one :class:`ConversationMachine` with a virtual clock and a fake alarm
heap, the way a host would: every ``ArmAlarm`` is kept and delivered back as ``TimerFired`` when
the clock reaches it. The driver does *not* honour ``DisarmTimer`` or drop stale alarms: ignoring
those is the machine's job, so every alarm is delivered.

The builder functions bring a fresh machine into each state of docs/STATES.md, and
:func:`fingerprint` captures all of a machine's internal state for "nothing changed" checks.
"""

from __future__ import annotations

import copy
import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from domain.commands import (
    AgentLeave,
    ArchiveCommitted,
    Command,
    EndConversation,
    EndSession,
    Hold,
    StartSession,
    SubscribeAgent,
    TimerFired,
)
from domain.conversation import ConversationMachine
from domain.effects import ArchiveConversation, ArmAlarm, Effect, Publish
from domain.enums import Channel, State
from domain.errors import Refused
from domain.policy import Policy
from domain.records import Event
from domain.timers import RunningTimer, TimerKey

CONVERSATION_ID = "conv-1"
ROOM_ID = "room-1"
CUSTOMER_ID = "cust-1"
#: The first channel session of every built conversation.
FIRST_SESSION = "s1"
#: The agent the builders subscribe.
AGENT = "a1"
#: Virtual time between two builder steps (shorter than every default timer).
STEP_MS = 1_000


def published(effects: Iterable[Effect]) -> list[Event]:
    """The events published by ``effects``, in order."""
    return [e.event for e in effects if isinstance(e, Publish)]


def names(effects: Iterable[Effect]) -> list[str]:
    """The names of the events published by ``effects``, in order."""
    return [e.name for e in published(effects)]


def of_type(effects: Iterable[Effect], kind: type[Any]) -> list[Any]:
    """The effects of one type, in order."""
    return [e for e in effects if isinstance(e, kind)]


@dataclass
class Step:
    """One call into the machine: a command (or the opening), what it did, and when."""

    command: Command
    now: int
    state_before: State | None
    state_after: State | None
    effects: list[Effect]
    timers_before: dict[TimerKey, RunningTimer] = field(default_factory=dict)

    @property
    def events(self) -> list[Event]:
        return published(self.effects)


@dataclass(order=True)
class _Alarm:
    at: int
    order: int
    alarm: ArmAlarm = field(compare=False)


class Driver:
    """One conversation machine on a virtual clock with a fake alarm heap."""

    def __init__(
        self,
        policy: Policy | None = None,
        *,
        first: StartSession | None = None,
        now: int = 0,
    ) -> None:
        self.policy = policy if policy is not None else Policy()
        self.now = now
        self.events: list[Event] = []  # every published event, in publication order
        self.steps: list[Step] = []  # every accepted call, in order
        self.archive: ArchiveConversation | None = None  # the latest archive write asked for
        self._heap: list[_Alarm] = []
        self._armed = 0
        first = first if first is not None else StartSession(FIRST_SESSION, Channel.WEB, "web-1")
        self.machine, effects = ConversationMachine.open(
            conversation_id=CONVERSATION_ID,
            room_id=ROOM_ID,
            customer_id=CUSTOMER_ID,
            first=first,
            policy=self.policy,
            now=now,
        )
        self._absorb(first, None, effects)

    # ------------------------------------------------------------------ driving

    @property
    def state(self) -> State | None:
        return self.machine.state

    def handle(self, command: Command) -> list[Effect]:
        """Hand ``command`` to the machine at the current time; a refusal propagates."""
        before = self.machine.state
        timers = self.machine.running_timers()
        effects = self.machine.handle(command, self.now)
        self._absorb(command, before, effects, timers)
        return effects

    def try_handle(self, command: Command) -> list[Effect] | Refused:
        """Like :meth:`handle`, but a refusal is returned instead of raised."""
        try:
            return self.handle(command)
        except Refused as refused:
            return refused

    def advance(self, ms: int) -> list[Effect]:
        """Move the clock by ``ms``, delivering every due alarm at its own time, in order.

        Alarms due at the same instant are delivered in the order they were armed, including
        alarms armed while delivering. Returns the effects of all deliveries.
        """
        assert ms >= 0
        target = self.now + ms
        effects: list[Effect] = []
        while self._heap and self._heap[0].at <= target:
            due = heapq.heappop(self._heap)
            self.now = max(self.now, due.at)
            alarm = due.alarm
            effects += self.handle(TimerFired(alarm.key, alarm.token, alarm.percent))
        self.now = target
        return effects

    def alarms(self) -> list[ArmAlarm]:
        """Every alarm not yet delivered (live or stale), in delivery order."""
        return [a.alarm for a in sorted(self._heap)]

    def _absorb(
        self,
        command: Command,
        before: State | None,
        effects: list[Effect],
        timers: dict[TimerKey, RunningTimer] | None = None,
    ) -> None:
        step = Step(command, self.now, before, self.machine.state, list(effects), timers or {})
        self.steps.append(step)
        for effect in effects:
            if isinstance(effect, Publish):
                self.events.append(effect.event)
            elif isinstance(effect, ArmAlarm):
                self._armed += 1
                heapq.heappush(self._heap, _Alarm(effect.at, self._armed, effect))
            elif isinstance(effect, ArchiveConversation):
                self.archive = effect

    # ------------------------------------------------------------------ reading

    def names(self) -> list[str]:
        return [e.name for e in self.events]

    def seqs(self) -> list[int]:
        return [e.seq for e in self.events]


def fingerprint(machine: ConversationMachine) -> dict[str, Any]:
    """A deep copy of all of ``machine``'s attributes, to compare with ``==`` later.

    The policy is shared rather than copied (it is frozen, and its read-only mapping proxies
    cannot be deep-copied); it is still part of the fingerprint and compared by value.
    """
    return copy.deepcopy(machine.__dict__, {id(machine.policy): machine.policy})


# ---------------------------------------------------------------------- builders


def _policy(policy: Policy | None, **overrides: Any) -> Policy:
    return replace(policy if policy is not None else Policy(), **overrides)


def _step(driver: Driver, command: Command, expected: State) -> Driver:
    driver.advance(STEP_MS)
    driver.handle(command)
    assert driver.state is expected, (command, driver.state)
    return driver


def created(policy: Policy | None = None) -> Driver:
    """CREATED: one WEB session ``s1``, the bot PRIMARY (if enabled), no agent."""
    driver = Driver(policy)
    assert driver.state is State.CREATED
    return driver


def active(policy: Policy | None = None) -> Driver:
    """ACTIVE: ``s1`` and agent ``a1`` PRIMARY (joined directly)."""
    return _step(created(policy), SubscribeAgent(AGENT), State.ACTIVE)


def on_hold(policy: Policy | None = None) -> Driver:
    """ON_HOLD: :func:`active`, then ``a1`` holds for 30 s."""
    return _step(active(policy), Hold(AGENT, 30), State.ON_HOLD)


def customer_left(policy: Policy | None = None) -> Driver:
    """CUSTOMER_LEFT (wrap-up off): :func:`active`, then ``s1`` ends."""
    driver = active(_policy(policy, wrap_up_enabled=False))
    return _step(driver, EndSession(FIRST_SESSION), State.CUSTOMER_LEFT)


def wrap_up(policy: Policy | None = None) -> Driver:
    """WRAP_UP (wrap-up on): :func:`active`, then ``s1`` ends; ``a1`` is in role WRAP_UP."""
    driver = active(_policy(policy, wrap_up_enabled=True))
    return _step(driver, EndSession(FIRST_SESSION), State.WRAP_UP)


def inactive(policy: Policy | None = None) -> Driver:
    """INACTIVE with no agent subscribed (wrap-up off): :func:`active`, then ``a1`` leaves."""
    driver = active(_policy(policy, wrap_up_enabled=False))
    return _step(driver, AgentLeave(AGENT), State.INACTIVE)


def inactive_wrapping_up(policy: Policy | None = None) -> Driver:
    """INACTIVE with ``a1`` in role WRAP_UP (wrap-up on): :func:`active`, then ``a1`` leaves."""
    driver = active(_policy(policy, wrap_up_enabled=True))
    return _step(driver, AgentLeave(AGENT), State.INACTIVE)


def closing(policy: Policy | None = None) -> Driver:
    """CLOSING, archive asked for and not committed: :func:`active`, then END_CONVERSATION."""
    return _step(active(policy), EndConversation(), State.CLOSING)


def closed(policy: Policy | None = None) -> Driver:
    """CLOSED: :func:`closing`, then the archive commits everything."""
    driver = closing(policy)
    return _step(driver, ArchiveCommitted(driver.machine.seq), State.CLOSED)


#: A builder for every state (INACTIVE twice: with and without an agent in WRAP_UP).
BUILDERS: dict[str, Callable[..., Driver]] = {
    "CREATED": created,
    "ACTIVE": active,
    "ON_HOLD": on_hold,
    "CUSTOMER_LEFT": customer_left,
    "WRAP_UP": wrap_up,
    "INACTIVE": inactive,
    "INACTIVE_WRAPPING_UP": inactive_wrapping_up,
    "CLOSING": closing,
    "CLOSED": closed,
}
