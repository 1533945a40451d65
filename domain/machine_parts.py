"""The parts a conversation machine is made of: its sessions, participants, and the plan that
one command builds before anything of it is committed."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from operator import itemgetter

from domain.effects import Effect
from domain.enums import (
    PRESENT_ROLES,
    Channel,
    EventType,
    ParticipantState,
    ParticipantType,
    Role,
    SessionEndReason,
    SessionState,
    State,
)
from domain.records import Emitter, Payload
from domain.timers import TimerKey


class Bucket(int, Enum):
    """Where an event of a command goes in its published order (stable within a bucket)."""

    OWN = 0
    STATE = 1
    PARTICIPANT = 2
    FOLLOW = 3
    TIMER_STOPPED = 4
    TIMER_STARTED = 5


bucket_of = itemgetter(0)  # a planned event's Bucket (an int)


@dataclass(slots=True)
class Session:
    id: str
    channel: Channel
    identifier: str
    state: SessionState
    started_at: int
    data: Payload
    end_reason: SessionEndReason | None = None
    ended_at: int | None = None

    @property
    def live(self) -> bool:
        return self.state is SessionState.STARTED

    def copy(self) -> Session:
        return Session(
            self.id,
            self.channel,
            self.identifier,
            self.state,
            self.started_at,
            self.data,
            self.end_reason,
            self.ended_at,
        )


@dataclass(slots=True)
class Participant:
    id: str
    type: ParticipantType
    role: Role
    joined_at: int
    state: ParticipantState = ParticipantState.SUBSCRIBED
    left_at: int | None = None

    def copy(self) -> Participant:
        return Participant(self.id, self.type, self.role, self.joined_at, self.state, self.left_at)

    @property
    def subscribed(self) -> bool:
        return self.state is ParticipantState.SUBSCRIBED

    @property
    def present(self) -> bool:
        return self.subscribed and self.type is ParticipantType.AGENT and self.role in PRESENT_ROLES

    @property
    def wrapping_up(self) -> bool:
        return self.subscribed and self.role is Role.WRAP_UP


PlannedEvent = tuple[Bucket, str, Emitter, str | None, Payload, EventType | None]


@dataclass(slots=True)
class CommandPlan:
    """What one command accumulates (on the machine's working copy) before it is finished
    into effects: its events, timer starts and stops, other effects, and what the shell
    must be told (state changes, sessions that ended)."""

    now: int
    events: list[PlannedEvent] = field(default_factory=list)
    timers: dict[TimerKey, int | None] = field(default_factory=dict)  # duration, or None: stop
    effects: list[Effect] = field(default_factory=list)
    entered: list[State] = field(default_factory=list)
    ended_sessions: list[str] = field(default_factory=list)
    notify: list[tuple[str, str]] = field(default_factory=list)  # (agent id, event name)
