"""The one table of state changes, and the Mermaid diagram generated from it.

A handler of the state machine names the *trigger* it caused (the last agent left, the last
customer session ended, ...); the table says where that leads from the current state. A trigger
with no row for the current state leaves the state as it is. The guards read the conversation
after the trigger's own change has been applied.
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
    BotMessage,
    BotNotification,
    Command,
    CustomerMessage,
    EndConversation,
    EndSession,
    Hold,
    RequestAgent,
    Resume,
    RoutingUpdate,
    SetData,
    StartSession,
    SubscribeAgent,
    TimerFired,
)
from domain.enums import OPEN_STATES, State


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


class Situation(Protocol):
    """What guards may read: the conversation after the trigger's own change."""

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


def _from(*states: State | None) -> frozenset[State | None]:
    return frozenset(states)


_OPEN: frozenset[State | None] = frozenset(OPEN_STATES)

#: Specific rows come before the "any open" row, and the first row that matches wins.
TRANSITIONS: tuple[Transition, ...] = (
    Transition(_from(None), Trigger.FIRST_SESSION, State.CREATED),
    Transition(_from(State.CREATED, State.INACTIVE), Trigger.AGENT_ARRIVED, State.ACTIVE),
    Transition(_from(State.ACTIVE), Trigger.HOLD, State.ON_HOLD),
    Transition(_from(State.ON_HOLD), Trigger.RESUME, State.ACTIVE),
    Transition(_from(State.ACTIVE, State.ON_HOLD), Trigger.LAST_AGENT_LEFT, State.INACTIVE),
    Transition(_from(State.CUSTOMER_LEFT), Trigger.LAST_AGENT_LEFT, State.CLOSING),
    Transition(
        _from(State.ACTIVE, State.ON_HOLD), Trigger.LAST_CUSTOMER_LEFT, State.WRAP_UP, WRAP_UP_ON
    ),
    Transition(
        _from(State.ACTIVE, State.ON_HOLD),
        Trigger.LAST_CUSTOMER_LEFT,
        State.CUSTOMER_LEFT,
        WRAP_UP_OFF,
    ),
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


def target_of(state: State | None, trigger: Trigger, situation: Situation) -> State | None:
    """The state ``trigger`` leads to from ``state``, or None when it changes nothing."""
    for row in TRANSITIONS:
        if state in row.sources and row.trigger is trigger and row.guard.holds(situation):
            return row.target
    return None


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


#: The states in which each command is accepted at all (its own checks come after). Anything
#: else is refused with IllegalTransition and changes nothing. Timer alarms and routing reports
#: are accepted everywhere because a stale one is ignored rather than refused.
_ALL: frozenset[State] = frozenset(State)
ACCEPTED_IN: Mapping[type[Command], frozenset[State]] = {
    StartSession: OPEN_STATES,
    CustomerMessage: OPEN_STATES,
    EndSession: OPEN_STATES,
    RequestAgent: frozenset({State.CREATED, State.INACTIVE}),
    SubscribeAgent: frozenset({State.CREATED, State.INACTIVE, State.ACTIVE, State.ON_HOLD}),
    AgentMessage: frozenset({State.ACTIVE, State.ON_HOLD, State.INACTIVE, State.CUSTOMER_LEFT}),
    BotMessage: OPEN_STATES,
    BotNotification: OPEN_STATES,
    Hold: frozenset({State.ACTIVE}),
    Resume: frozenset({State.ON_HOLD}),
    AgentLeave: OPEN_STATES,
    ApplyWrapUp: OPEN_STATES,
    SetData: OPEN_STATES,
    EndConversation: OPEN_STATES,
    AddActivity: OPEN_STATES | {State.CLOSING},
    TimerFired: _ALL,
    RoutingUpdate: _ALL,
    ArchiveCommitted: frozenset({State.CLOSING}),
}
#: Supervisors (SILENT_MONITOR, WHISPER) may join in any open state: they change nothing.
SUPERVISOR_ACCEPTED_IN: frozenset[State] = OPEN_STATES
