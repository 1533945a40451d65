"""Archive rows to domain records and back: conversations, events and JSON payloads.

Payloads (``data`` columns) are JSON objects, so that plain SQL reads them (SQLite's
``json_extract``, PostgreSQL's ``->>``): written as JSON text (SQLite stores it as text,
PostgreSQL as ``jsonb``), read back strictly. A payload that is not a JSON object, too big, or
undecodable raises :class:`PayloadError` (the archive reports it as a fault of the storage); a
payload that JSON cannot hold (a non-finite float, a value that is not JSON) is refused with
:class:`PayloadError` before anything is written.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from domain.enums import (
    Channel,
    Direction,
    EventType,
    ParticipantState,
    ParticipantType,
    Role,
    RoomMode,
    RoomType,
    SessionEndReason,
    SessionState,
    State,
)
from domain.errors import CxError
from domain.records import (
    ConversationRecord,
    Emitter,
    Event,
    ParticipantRecord,
    Payload,
    SessionRecord,
)
from infra.timefmt import wall_ms

#: Largest payload we agree to decode; a bigger one is a corrupt or hostile row, not data.
MAX_PAYLOAD_BYTES = 16 * 1024 * 1024


class StoredRow(Protocol):
    """A stored row read by column name: SQLite's ``sqlite3.Row`` or a psycopg ``dict_row``."""

    def __getitem__(self, key: str, /) -> Any: ...


class PayloadError(CxError, ValueError):
    """A stored payload that does not decode to a map."""


@dataclass(frozen=True, slots=True)
class RoomRecord:
    id: str
    type: RoomType
    mode: RoomMode
    customer_id: str
    created_at: int


def room_record(row: StoredRow) -> RoomRecord:
    return RoomRecord(
        id=row["id"],
        type=RoomType(row["type"]),
        mode=RoomMode(row["mode"]),
        customer_id=row["customer_id"],
        created_at=row["created_at"],
    )


def conversation_record(
    row: StoredRow, participants: Sequence[StoredRow], sessions: Sequence[StoredRow]
) -> ConversationRecord:
    conversation_id: str = row["id"]
    return ConversationRecord(
        id=conversation_id,
        room_id=row["room_id"],
        customer_id=row["customer_id"],
        state=State(row["state"]),
        direction=Direction(row["direction"]),
        created_at=row["created_at"],
        ended_at=row["ended_at"],
        participants=tuple(
            ParticipantRecord(
                id=p["id"],
                type=ParticipantType(p["type"]),
                role=Role(p["role"]),
                state=ParticipantState(p["state"]),
                joined_at=p["joined_at"],
                left_at=p["left_at"],
            )
            for p in participants
        ),
        channel_sessions=tuple(
            SessionRecord(
                id=s["id"],
                conversation_id=conversation_id,
                channel=Channel(s["channel"]),
                identifier=s["identifier"],
                state=SessionState(s["state"]),
                end_reason=(None if s["end_reason"] is None else SessionEndReason(s["end_reason"])),
                started_at=s["started_at"],
                ended_at=s["ended_at"],
                data=unpack(s["data"], conversation_id),
            )
            for s in sessions
        ),
        data=unpack(row["data"], conversation_id),
        seq=row["seq"],
    )


def event_record(row: StoredRow) -> Event:
    """An event from its row joined with its conversation's ``room_id``."""
    return Event(
        conversation_id=row["conversation_id"],
        room_id=row["room_id"],
        seq=row["seq"],
        name=row["name"],
        type=EventType(row["type"]),
        timestamp=row["timestamp"],
        emitter=Emitter(row["emitter_id"], _emitter_type(row["emitter_type"])),
        channel_session_id=row["channel_session_id"],
        data=unpack(row["data"], row["conversation_id"]),
    )


def check_events(conversation_id: str, room_id: str, events: Sequence[Event]) -> None:
    # The room is stored once per conversation, so an event of another room would be lost.
    for event in events:
        if event.conversation_id != conversation_id or event.room_id != room_id:
            raise ValueError(
                f"event {event.id} of room {event.room_id} does not belong to conversation"
                f" {conversation_id} of room {room_id}"
            )


@dataclass(frozen=True, slots=True)
class ConversationRows:
    """A conversation snapshot as the rows both archives store, checked and encoded before
    any transaction begins (a payload that cannot be encoded fails before any lock)."""

    conversation: tuple[Any, ...]
    sessions: list[tuple[Any, ...]]
    participants: list[tuple[Any, ...]]
    events: list[tuple[Any, ...]]


#: A conversation's snapshot as the archive stores it: its record and its events.
Snapshot = tuple[ConversationRecord, Sequence[Event]]


def rows_of_conversation(record: ConversationRecord, events: Sequence[Event]) -> ConversationRows:
    """The rows of ``store_conversation``; ``ValueError`` for a session or event of another
    conversation."""
    for session in record.channel_sessions:
        if session.conversation_id != record.id:
            raise ValueError(
                f"channel session {session.id} belongs to conversation"
                f" {session.conversation_id}, not {record.id}"
            )
    check_events(record.id, record.room_id, events)
    return ConversationRows(
        conversation=(
            record.id, record.room_id, record.customer_id, record.state.value,
            record.direction.value, record.created_at, record.ended_at, pack(record.data),
            record.seq, wall_ms(),
        ),
        sessions=[
            (s.id, s.conversation_id, position, s.channel.value, s.identifier, s.state.value,
             None if s.end_reason is None else s.end_reason.value,
             s.started_at, s.ended_at, pack(s.data))
            for position, s in enumerate(record.channel_sessions)
        ],
        participants=[
            (record.id, p.id, position, p.type.value, p.role.value, p.state.value,
             p.joined_at, p.left_at)
            for position, p in enumerate(record.participants)
        ],
        events=rows_of_events(events),
    )  # fmt: skip


def rows_of_events(events: Sequence[Event]) -> list[tuple[Any, ...]]:
    return [
        (e.conversation_id, e.seq, e.name, str(e.type), e.timestamp, e.emitter.id,
         str(e.emitter.type), e.channel_session_id, pack(e.data))
        for e in events
    ]  # fmt: skip


def _emitter_type(value: str) -> ParticipantType | str:
    try:
        return ParticipantType(value)
    except ValueError:
        return value  # "SYSTEM": the engine itself


#: The one key of the JSON object that stands for a byte string (base64), e.g. an attachment's
#: raw content: JSON has no bytes. A payload holding a map of exactly this key is refused.
BYTES_KEY = "$bytes"


def json_default(value: object) -> object:
    """``json.dumps``'s ``default`` for payloads: read-only maps as dicts, bytes as
    ``{"$bytes": base64}``; anything else is not a payload value (``TypeError``)."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, bytes):
        return {BYTES_KEY: base64.b64encode(value).decode("ascii")}
    raise TypeError(f"cannot archive a value of type {type(value).__name__}")


#: Types that hold nothing to check (tested first: ``isinstance`` of an ABC costs more).
_PLAIN = frozenset({str, int, float, bool, type(None)})


def _check_reserved(value: object) -> None:
    if type(value) in _PLAIN:
        return
    if isinstance(value, Mapping):
        if list(value) == [BYTES_KEY]:
            raise PayloadError(f"a map of the one key {BYTES_KEY!r} is reserved for bytes")
        for item in value.values():
            _check_reserved(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_reserved(item)


def _bytes_of(value: dict[str, Any]) -> object:
    if len(value) == 1 and isinstance(value.get(BYTES_KEY), str):
        return base64.b64decode(value[BYTES_KEY], validate=True)
    return value


#: One encoder for every payload (``json.dumps`` with these options builds one per call).
_ENCODER = json.JSONEncoder(
    default=json_default, allow_nan=False, ensure_ascii=False, separators=(",", ":")
)


def pack(payload: Payload) -> str:
    """A payload as JSON text (``PayloadError`` for what JSON cannot hold)."""
    _check_reserved(payload)
    try:
        return _ENCODER.encode(dict(payload))
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"payload cannot be archived as JSON: {exc}") from exc


def unpack(stored: object, conversation_id: str) -> dict[str, Any]:
    """A stored payload: JSON text (both backends give ``data`` as text)."""
    if not isinstance(stored, str):
        raise PayloadError(f"conversation {conversation_id}: payload is not JSON text")
    if len(stored) > MAX_PAYLOAD_BYTES:
        raise PayloadError(f"conversation {conversation_id}: payload of {len(stored)} characters")
    try:
        value = json.loads(stored, object_hook=_bytes_of)
    except (ValueError, binascii.Error) as exc:
        raise PayloadError(f"conversation {conversation_id}: corrupt payload: {exc}") from exc
    if not isinstance(value, dict):
        raise PayloadError(f"conversation {conversation_id}: payload is not an object")
    return value
