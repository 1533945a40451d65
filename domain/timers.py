"""Timer identities. A timer is state of the conversation; the host only keeps the alarms.

Every start draws a new token; an alarm whose token is not the running one is stale and is
ignored. That is how timers are "cancelled" on top of Thespian's uncancellable wakeups.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class TimerKind(StrEnum):
    AGENT_SLA = "AGENT_SLA"
    CUSTOMER_SLA = "CUSTOMER_SLA"  # customer inactivity, one per non-voice channel session
    HOLD = "HOLD"
    WRAP_UP = "WRAP_UP"  # one per agent in role WRAP_UP


@dataclass(frozen=True, slots=True, order=True)
class TimerKey:
    kind: TimerKind
    subject: str = ""  # the channel session id (CUSTOMER_SLA) or agent id (WRAP_UP)


#: Timer kinds that publish ``<KIND>_STARTED/_STOPPED/_THRESHOLD/_EXPIRED`` events.
OBSERVABLE_KINDS: frozenset[TimerKind] = frozenset({TimerKind.AGENT_SLA, TimerKind.CUSTOMER_SLA})


@dataclass(slots=True)
class RunningTimer:
    token: int
    started_at: int
    deadline: int
    fired: tuple[int, ...] = ()  # thresholds (percent) already reached
