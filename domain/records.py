"""Plain records of the domain: events, channel sessions, participants, conversation snapshots.

These are the values that leave the state machine: they are published to subscribers, written
to the journal and the archive, and returned by the gateway. They are frozen so that a value
handed to a subscriber can never be changed behind the state machine's back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from domain.enums import (
    Channel,
    Direction,
    EventType,
    ParticipantState,
    ParticipantType,
    Role,
    SessionEndReason,
    SessionState,
    State,
)
from domain.events import EventName
from domain.ids import event_id
from domain.pickling import pickle_by_field_names

#: JSON-like payload of an event or of channel data (str keys; str, int, float, bool, None,
#: lists and maps of those).
Payload = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Emitter:
    id: str
    type: ParticipantType | str  # str for "SYSTEM", the engine itself (timers, routing)


SYSTEM = Emitter("system", "SYSTEM")


@dataclass(frozen=True, slots=True)
class Event:
    """One published event. ``seq`` is per conversation: 1, 2, 3, ... with no gaps."""

    conversation_id: str
    room_id: str
    seq: int
    name: str
    type: EventType
    timestamp: int  # ms since the epoch
    emitter: Emitter
    channel_session_id: str | None
    data: Payload = field(default_factory=dict)

    @property
    def id(self) -> str:
        # Unique by construction: a conversation id is unique and seq never repeats in it.
        return event_id(self.conversation_id, self.seq)

    def message_id_from(self, channel_session_id: str) -> str | None:
        """The provider's message id if this is a customer message sent on that channel
        session (what the session de-duplicates by), else None."""
        if self.name != EventName.CUSTOMER_MESSAGE or self.channel_session_id != channel_session_id:
            return None
        return str(self.data["message_id"])


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: str
    conversation_id: str
    channel: Channel
    identifier: str
    state: SessionState
    end_reason: SessionEndReason | None
    started_at: int
    ended_at: int | None
    data: Payload = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ParticipantRecord:
    id: str
    type: ParticipantType
    role: Role
    state: ParticipantState
    joined_at: int
    left_at: int | None


@dataclass(frozen=True, slots=True)
class ConversationRecord:
    """A snapshot of a conversation: what the archive stores and ``conversation()`` returns."""

    id: str
    room_id: str
    customer_id: str
    state: State
    direction: Direction
    created_at: int
    ended_at: int | None
    participants: tuple[ParticipantRecord, ...]
    channel_sessions: tuple[SessionRecord, ...]
    data: Payload
    seq: int


pickle_by_field_names(globals())  # after every class above: see domain.pickling
