"""The lifecycle table: every rule of a conversation's states, as data the machine looks up.

The table has four parts, all keyed by state or by (state, trigger):

- :data:`TRANSITIONS`: rows ``(sources, trigger, target, guard, actions)``. A handler names the
  *trigger* its command caused (the last agent left, the last customer session ended, ...);
  :func:`transition_for` returns the first row whose sources hold the current state, whose
  trigger matches and whose guard holds, and raises :class:`MissingTransition` when there is
  none: a trigger fired in a state the table has no row for is a defect, never a silent "no
  change". Guards read the conversation after the trigger's own change. ``actions`` are
  carried out after the new state's entry actions.
- :data:`LIFECYCLE`: one :class:`StateRules` per state: the commands it accepts at all (the
  command's own checks come after), whether supervisors may join, and its entry and exit
  :class:`Action` s.
- :data:`TIMER_RULES`: per timer kind, the states it may run in and what else must hold; at
  the end of every command, timers whose rule fails are stopped and starts whose rule fails
  are dropped.
- :func:`mermaid`: the README's state diagram, generated from :data:`TRANSITIONS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from domain.commands import (
    AddActivity,
    AgentLeave,
    AgentMessage,
    ApplyWrapUp,
    ArchiveCommitted,
    BargeIn,
    BotMessage,
    BotNotification,
    Command,
    ConcludeConsult,
    Consult,
    CustomerMessage,
    EndConversation,
    EndSession,
    Hold,
    ReadReceipt,
    RequestAgent,
    Resume,
    RoutingUpdate,
    SetData,
    StartSession,
    SubscribeAgent,
    TimerFired,
    Transfer,
    Typing,
    Whisper,
)
from domain.enums import OPEN_STATES, State
from domain.errors import CxError
from domain.timers import TimerKey, TimerKind


class Trigger(StrEnum):
    FIRST_SESSION = "FIRST_SESSION"
    AGENT_ARRIVED = "AGENT_ARRIVED"
    HOLD = "HOLD"
    RESUME = "RESUME"
    LAST_AGENT_LEFT = "LAST_AGENT_LEFT"
    LAST_CUSTOMER_LEFT = "LAST_CUSTOMER_LEFT"
    CUSTOMER_RETURNED = "CUSTOMER_RETURNED"
    WRAP_UP_DONE = "WRAP_UP_DONE"
    END_CONVERSATION = "END_CONVERSATION"
    ARCHIVED = "ARCHIVED"


class Action(StrEnum):
    """What entering or leaving a state (or taking a row) does, in the order listed."""

    CLOSE_OUT = "end the live sessions, unsubscribe every agent, withdraw the agent request"
    BOT_PRIMARY = "the bot becomes PRIMARY"
    BOT_ASSISTANT = "the bot becomes ASSISTANT"
    WRAP_UP_AGENTS = "every present agent goes to WRAP_UP"
    STOP_HOLD = "stop the hold timer"
    UNSUBSCRIBE_BOT = "the bot is unsubscribed"


class MissingTransition(CxError, LookupError):
    """A trigger fired in a state the lifecycle table has no row for: a defect of the engine
    (the command that fired it changes nothing)."""

    def __init__(self, state: State | None, trigger: Trigger) -> None:
        self.state = state
        self.trigger = trigger
        super().__init__(f"the lifecycle table has no row for {trigger} in state {state}")


class Situation(Protocol):
    """What guards and timer rules may read: the conversation after the trigger's change."""

    @property
    def wrap_up_enabled(self) -> bool: ...
    @property
    def agents_wrapping_up(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Guard:
    label: str
    holds: Callable[[Situation], bool]


ALWAYS = Guard("", lambda s: True)
WRAP_UP_ON = Guard("wrap-up on", lambda s: s.wrap_up_enabled)
WRAP_UP_OFF = Guard("wrap-up off", lambda s: not s.wrap_up_enabled)
AGENTS_WRAPPING_UP = Guard("agents in WRAP_UP", lambda s: s.agents_wrapping_up)
NO_AGENT_LEFT = Guard("no agent subscribed", lambda s: not s.agents_wrapping_up)


@dataclass(frozen=True, slots=True)
class Transition:
    sources: frozenset[State | None]
    trigger: Trigger
    target: State
    guard: Guard = ALWAYS
    actions: tuple[Action, ...] = ()


def _from(*states: State | None) -> frozenset[State | None]:
    return frozenset(states)


_OPEN: frozenset[State | None] = frozenset(OPEN_STATES)
_ACTIVE_OR_HOLD = _from(State.ACTIVE, State.ON_HOLD)

#: Specific rows come before the "any open" row, and the first row that matches wins.
TRANSITIONS: tuple[Transition, ...] = (
    Transition(_from(None), Trigger.FIRST_SESSION, State.CREATED),
    Transition(
        _from(State.CREATED, State.INACTIVE),
        Trigger.AGENT_ARRIVED,
        State.ACTIVE,
        actions=(Action.BOT_ASSISTANT,),
    ),
    Transition(_from(State.ACTIVE), Trigger.HOLD, State.ON_HOLD),
    Transition(_from(State.ON_HOLD), Trigger.RESUME, State.ACTIVE),
    Transition(_ACTIVE_OR_HOLD, Trigger.LAST_AGENT_LEFT, State.INACTIVE),
    Transition(_from(State.CUSTOMER_LEFT), Trigger.LAST_AGENT_LEFT, State.CLOSING),
    Transition(_ACTIVE_OR_HOLD, Trigger.LAST_CUSTOMER_LEFT, State.WRAP_UP, WRAP_UP_ON),
    Transition(_ACTIVE_OR_HOLD, Trigger.LAST_CUSTOMER_LEFT, State.CUSTOMER_LEFT, WRAP_UP_OFF),
    Transition(
        _from(State.INACTIVE), Trigger.LAST_CUSTOMER_LEFT, State.WRAP_UP, AGENTS_WRAPPING_UP
    ),
    Transition(_from(State.INACTIVE), Trigger.LAST_CUSTOMER_LEFT, State.CLOSING, NO_AGENT_LEFT),
    Transition(_from(State.CREATED), Trigger.LAST_CUSTOMER_LEFT, State.CLOSING),
    Transition(_from(State.CUSTOMER_LEFT), Trigger.CUSTOMER_RETURNED, State.ACTIVE),
    Transition(_from(State.WRAP_UP), Trigger.CUSTOMER_RETURNED, State.INACTIVE),
    Transition(_from(State.WRAP_UP), Trigger.WRAP_UP_DONE, State.CLOSING),
    Transition(_OPEN, Trigger.END_CONVERSATION, State.CLOSING),
    Transition(_from(State.CLOSING), Trigger.ARCHIVED, State.CLOSED),
)


def transition_for(state: State | None, trigger: Trigger, situation: Situation) -> Transition:
    """The row ``trigger`` takes from ``state``; raises :class:`MissingTransition` if none."""
    for row in TRANSITIONS:
        if state in row.sources and row.trigger is trigger and row.guard.holds(situation):
            return row
    raise MissingTransition(state, trigger)


def target_of(state: State | None, trigger: Trigger, situation: Situation) -> State:
    """The state ``trigger`` leads to from ``state``; raises :class:`MissingTransition`."""
    return transition_for(state, trigger, situation).target


# ---------------------------------------------------------------------- states


@dataclass(frozen=True, slots=True)
class StateRules:
    accepts: frozenset[type[Command]]
    supervisors_join: bool = False
    on_entry: tuple[Action, ...] = ()
    on_exit: tuple[Action, ...] = ()


#: Timer alarms and routing reports are accepted everywhere: a stale one is ignored rather
#: than refused.
_ALWAYS_ACCEPTED: frozenset[type[Command]] = frozenset({TimerFired, RoutingUpdate})
_OPEN_ACCEPTED: frozenset[type[Command]] = _ALWAYS_ACCEPTED | {
    StartSession,
    CustomerMessage,
    EndSession,
    BotMessage,
    BotNotification,
    AgentLeave,
    ApplyWrapUp,
    SetData,
    EndConversation,
    AddActivity,
    Whisper,
    Typing,
    ReadReceipt,
}

#: Every state's rules. A command a state does not accept is refused with IllegalTransition
#: and changes nothing.
LIFECYCLE: Mapping[State, StateRules] = {
    State.CREATED: StateRules(
        _OPEN_ACCEPTED | {RequestAgent, SubscribeAgent, BargeIn}, supervisors_join=True
    ),
    State.ACTIVE: StateRules(
        _OPEN_ACCEPTED
        | {SubscribeAgent, AgentMessage, Hold, Transfer, Consult, ConcludeConsult, BargeIn},
        supervisors_join=True,
    ),
    State.ON_HOLD: StateRules(
        _OPEN_ACCEPTED
        | {SubscribeAgent, AgentMessage, Resume, Transfer, Consult, ConcludeConsult, BargeIn},
        supervisors_join=True,
        on_exit=(Action.STOP_HOLD,),
    ),
    State.INACTIVE: StateRules(
        _OPEN_ACCEPTED | {RequestAgent, SubscribeAgent, AgentMessage, BargeIn},
        supervisors_join=True,
        on_entry=(Action.BOT_PRIMARY,),
    ),
    State.CUSTOMER_LEFT: StateRules(_OPEN_ACCEPTED | {AgentMessage}, supervisors_join=True),
    State.WRAP_UP: StateRules(
        _OPEN_ACCEPTED, supervisors_join=True, on_entry=(Action.WRAP_UP_AGENTS,)
    ),
    State.CLOSING: StateRules(
        _ALWAYS_ACCEPTED | {AddActivity, ArchiveCommitted}, on_entry=(Action.CLOSE_OUT,)
    ),
    State.CLOSED: StateRules(_ALWAYS_ACCEPTED, on_entry=(Action.UNSUBSCRIBE_BOT,)),
}

#: The states in which each command is accepted at all (:data:`LIFECYCLE` read by command).
ACCEPTED_IN: Mapping[type[Command], frozenset[State]] = {
    kind: frozenset(s for s, rules in LIFECYCLE.items() if kind in rules.accepts)
    for kind in sorted(
        {k for rules in LIFECYCLE.values() for k in rules.accepts}, key=lambda k: k.__name__
    )
}
#: Supervisors (SILENT_MONITOR, WHISPER) may join where the state says so: they change nothing.
SUPERVISOR_ACCEPTED_IN: frozenset[State] = frozenset(
    s for s, rules in LIFECYCLE.items() if rules.supervisors_join
)


# ---------------------------------------------------------------------- timers


class TimerSituation(Situation, Protocol):
    @property
    def customer_present(self) -> bool: ...
    @property
    def agents_present(self) -> bool: ...
    @property
    def voice_active(self) -> bool: ...
    def text_session_live(self, session_id: str) -> bool: ...
    def agent_wrapping_up(self, agent_id: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class Condition:
    label: str
    holds: Callable[[TimerSituation, TimerKey], bool]


CUSTOMER_PRESENT = Condition("customer present", lambda s, k: s.customer_present)
AGENT_PRESENT = Condition("agent present", lambda s, k: s.agents_present)
NO_VOICE = Condition("no voice session", lambda s, k: not s.voice_active)
OWN_TEXT_SESSION = Condition(
    "its session started and not voice", lambda s, k: s.text_session_live(k.subject)
)
OWN_AGENT_WRAPPING_UP = Condition(
    "its agent in role WRAP_UP", lambda s, k: s.agent_wrapping_up(k.subject)
)


@dataclass(frozen=True, slots=True)
class TimerRule:
    states: frozenset[State]
    needs: tuple[Condition, ...] = ()


#: Where each timer may run. The customer's inactivity timer does not run ON_HOLD, nor once
#: the customer has left.
TIMER_RULES: Mapping[TimerKind, TimerRule] = {
    TimerKind.AGENT_SLA: TimerRule(
        frozenset({State.ACTIVE}), (AGENT_PRESENT, CUSTOMER_PRESENT, NO_VOICE)
    ),
    TimerKind.CUSTOMER_SLA: TimerRule(
        frozenset({State.CREATED, State.ACTIVE, State.INACTIVE}), (OWN_TEXT_SESSION, NO_VOICE)
    ),
    TimerKind.HOLD: TimerRule(frozenset({State.ON_HOLD})),
    TimerKind.WRAP_UP: TimerRule(OPEN_STATES, (OWN_AGENT_WRAPPING_UP,)),
}


def may_run(key: TimerKey, state: State | None, situation: TimerSituation) -> bool:
    """Whether the timer ``key`` may run in ``state`` (its :data:`TIMER_RULES` row)."""
    rule = TIMER_RULES[key.kind]
    return state in rule.states and all(c.holds(situation, key) for c in rule.needs)


# ---------------------------------------------------------------------- diagram


def mermaid() -> str:
    """The state diagram of the README, generated from :data:`TRANSITIONS`."""
    lines = ["stateDiagram-v2", '    state "any open state" as ANY_OPEN']
    order = [None, *State]
    for row in TRANSITIONS:
        label = row.trigger.value + (f" [{row.guard.label}]" if row.guard.label else "")
        if row.sources == _OPEN:
            lines.append(f"    ANY_OPEN --> {row.target.value} : {label}")
            continue
        for source in sorted(row.sources, key=order.index):
            name = "[*]" if source is None else source.value
            lines.append(f"    {name} --> {row.target.value} : {label}")
    lines.append("    CLOSED --> [*]")
    return "\n".join(lines)
