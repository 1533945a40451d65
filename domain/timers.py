"""Timer identities. A timer is state of the conversation; the host only keeps the alarms.

Every start draws a new token; an alarm whose token is not the running one is stale and is
ignored. That is how timers are "cancelled" on top of Thespian's uncancellable wakeups.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from domain.events import EventName


class TimerKind(StrEnum):
    AGENT_SLA = "AGENT_SLA"
    CUSTOMER_SLA = "CUSTOMER_SLA"  # customer inactivity, one per non-voice channel session
    HOLD = "HOLD"
    WRAP_UP = "WRAP_UP"  # one per agent in role WRAP_UP


@dataclass(frozen=True, slots=True, order=True)
class TimerKey:
    kind: TimerKind
    subject: str = ""  # the channel session id (CUSTOMER_SLA) or agent id (WRAP_UP)


@dataclass(frozen=True, slots=True)
class TimerEvents:
    started: EventName
    stopped: EventName
    threshold: EventName
    expired: EventName


#: The events of the timer kinds that publish them.
TIMER_EVENTS: Mapping[TimerKind, TimerEvents] = {
    TimerKind.AGENT_SLA: TimerEvents(
        EventName.AGENT_SLA_STARTED,
        EventName.AGENT_SLA_STOPPED,
        EventName.AGENT_SLA_THRESHOLD,
        EventName.AGENT_SLA_EXPIRED,
    ),
    TimerKind.CUSTOMER_SLA: TimerEvents(
        EventName.CUSTOMER_SLA_STARTED,
        EventName.CUSTOMER_SLA_STOPPED,
        EventName.CUSTOMER_SLA_THRESHOLD,
        EventName.CUSTOMER_SLA_EXPIRED,
    ),
}
#: Timer kinds that publish ``<KIND>_STARTED/_STOPPED/_THRESHOLD/_EXPIRED`` events.
OBSERVABLE_KINDS: frozenset[TimerKind] = frozenset(TIMER_EVENTS)


@dataclass(slots=True)
class RunningTimer:
    token: int
    started_at: int
    deadline: int
    fired: tuple[int, ...] = ()  # thresholds (percent) already reached

    def copy(self) -> RunningTimer:
        return RunningTimer(self.token, self.started_at, self.deadline, self.fired)
