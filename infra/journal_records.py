"""The journal's record format: every record kind, its fields, and how one is built and read.

A record is a msgpack map; ``"k"`` names its kind and ``"c"`` the conversation it belongs to
(every record has both; the frame reader refuses a map without a string ``"c"``):

- ``open``: ``{"k", "c", "room", "customer", "dir", "t", "policy", "first"}``: a conversation
  was created at ``t`` (ms) by the command ``first``, under ``policy`` (or was moved here from
  another host: its history starts again);
- ``cmd``: ``{"k", "c", "t", "cmd", "ev"}``: a command the conversation applied at ``t`` and
  the events it published (each as :func:`infra.codec.encode_event` writes it);
- ``closed``: ``{"k", "c"}``: the conversation is archived and needs nothing from here;
- ``compacted``: ``{"k", "c": "", "through": N}``: opens a compacted segment; the segments
  numbered up to ``N`` are superseded by it.

Commands, events and policies inside a record are in the plain-data forms of
:mod:`infra.codec`. The format's version is :data:`FORMAT_VERSION`, written in every segment's
header (:mod:`infra.journal_segment`): a change that an older reader would misread takes a new
version, and a segment of another version is refused. A reader skips a record of a kind it
does not know. Reading a record (:func:`parse_open`, :func:`parse_command`, ...) checks it
and raises :class:`RecordError` naming the kind, the conversation and the field that is wrong.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from domain.commands import StartSession
from domain.conversation import ConversationMachine
from domain.effects import Effect, Publish
from domain.enums import Direction
from domain.policy import Policy
from domain.records import Event
from infra.codec import (
    CodecError,
    decode_command,
    decode_event,
    decode_policy,
    encode_command,
    encode_event,
    encode_policy,
)

#: The version of the record and frame format, in every segment's header.
FORMAT_VERSION = 1

Record = dict[str, Any]


class RecordKind(StrEnum):
    OPEN = "open"
    COMMAND = "cmd"
    CLOSED = "closed"
    COMPACTED = "compacted"


_KINDS = {kind.value: kind for kind in RecordKind}


class RecordError(CodecError):
    """A journal record that does not read as its kind says: ``field`` is what is wrong."""

    def __init__(self, kind: str, conversation_id: str, field: str, problem: str) -> None:
        self.record_kind, self.conversation_id, self.field, self.problem = (
            kind,
            conversation_id,
            field,
            problem,
        )
        of = f" of {conversation_id}" if conversation_id else ""
        super().__init__(f"{kind} record{of}: field {field!r} {problem}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.record_kind, self.conversation_id, self.field, self.problem))


@dataclass(frozen=True, slots=True)
class OpenRecord:
    conversation_id: str
    room_id: str
    customer_id: str
    direction: Direction
    at: int
    policy: Policy
    first: StartSession


@dataclass(frozen=True, slots=True)
class CommandRecord:
    conversation_id: str
    at: int
    command: Any


# ---------------------------------------------------------------------- building


def open_record(machine: ConversationMachine, first: StartSession, now: int) -> Record:
    return {
        "k": RecordKind.OPEN.value,
        "c": machine.id,
        "room": machine.room_id,
        "customer": machine.customer_id,
        "dir": machine.direction.value,
        "t": now,
        "policy": encode_policy(machine.policy),
        "first": encode_command(first),
    }


def command_record(conversation_id: str, command: Any, now: int, effects: list[Effect]) -> Record:
    return {
        "k": RecordKind.COMMAND.value,
        "c": conversation_id,
        "t": now,
        "cmd": encode_command(command),
        "ev": [encode_event(e.event) for e in effects if isinstance(e, Publish)],
    }


def closed_record(conversation_id: str) -> Record:
    return {"k": RecordKind.CLOSED.value, "c": conversation_id}


def compacted_record(through: int) -> Record:
    return {"k": RecordKind.COMPACTED.value, "c": "", "through": through}


# ---------------------------------------------------------------------- reading


def is_record(value: Any) -> bool:
    """Whether a decoded frame has a record's shape (a map naming its conversation)."""
    return isinstance(value, dict) and isinstance(value.get("c"), str)


def kind_of(record: Record) -> RecordKind | None:
    """The record's kind; None for a kind this engine does not know (skipped)."""
    kind = record.get("k")
    return _KINDS.get(kind) if isinstance(kind, str) else None


def conversation_of(record: Record) -> str:
    return str(record["c"])


def room_of(opened: Record) -> str:
    """The room of an ``open`` record's conversation."""
    return _text(opened, RecordKind.OPEN, "room", conversation_of(opened))


def customer_of(opened: Record) -> str:
    """The customer of an ``open`` record's conversation."""
    return _text(opened, RecordKind.OPEN, "customer", conversation_of(opened))


def time_of(record: Record) -> int | None:
    """When an ``open`` or ``cmd`` record was written (ms); None for other kinds."""
    at = record.get("t")
    return at if isinstance(at, int) else None


def parse_open(record: Record) -> OpenRecord:
    conversation_id = _text(record, RecordKind.OPEN, "c", "")
    kind = RecordKind.OPEN
    direction = _field(record, kind, conversation_id, "dir")
    if direction not in Direction._value2member_map_:
        raise RecordError(kind, conversation_id, "dir", f"is not a direction: {direction!r:.40}")
    first = _decoded(record, kind, conversation_id, "first", decode_command)
    if not isinstance(first, StartSession):
        raise RecordError(kind, conversation_id, "first", "is not a StartSession")
    return OpenRecord(
        conversation_id,
        _text(record, kind, "room", conversation_id),
        _text(record, kind, "customer", conversation_id),
        Direction(direction),
        _time(record, kind, conversation_id),
        _decoded(record, kind, conversation_id, "policy", decode_policy),
        first,
    )


def parse_command(record: Record) -> CommandRecord:
    kind = RecordKind.COMMAND
    conversation_id = _text(record, kind, "c", "")
    return CommandRecord(
        conversation_id,
        _time(record, kind, conversation_id),
        _decoded(record, kind, conversation_id, "cmd", decode_command),
    )


def journaled_events(record: Record, room_id: str) -> list[Event]:
    """The events a ``cmd`` record says its command published."""
    conversation_id = conversation_of(record)
    events = record.get("ev", [])
    if not isinstance(events, list):
        raise RecordError(RecordKind.COMMAND, conversation_id, "ev", "is not a list")
    return [decode_event(conversation_id, room_id, e) for e in events]


def compacted_through(record: Record) -> int:
    """The last segment a ``compacted`` record supersedes."""
    through = record.get("through", 0)
    if not isinstance(through, int):
        raise RecordError(RecordKind.COMPACTED, "", "through", "is not a segment number")
    return through


def started_sessions(opened: Record, commands: Iterable[Record]) -> list[str]:
    """The channel sessions a conversation's records start, in order."""
    ids = []
    for command in [opened.get("first"), *(r.get("cmd") for r in commands)]:
        if isinstance(command, list) and command and command[0] == StartSession.__name__:
            ids.append(str(command[1].get("session_id")))
    return ids


def _field(record: Record, kind: RecordKind, conversation_id: str, name: str) -> Any:
    if name not in record:
        raise RecordError(kind, conversation_id, name, "is missing")
    return record[name]


def _text(record: Record, kind: RecordKind, name: str, conversation_id: str) -> str:
    value = _field(record, kind, conversation_id, name)
    if not isinstance(value, str):
        raise RecordError(kind, conversation_id, name, f"is not a string: {value!r:.40}")
    return value


def _time(record: Record, kind: RecordKind, conversation_id: str) -> int:
    value = _field(record, kind, conversation_id, "t")
    if not isinstance(value, int) or isinstance(value, bool):
        raise RecordError(kind, conversation_id, "t", f"is not a time in ms: {value!r:.40}")
    return value


def _decoded(record: Record, kind: RecordKind, conversation_id: str, name: str, decode: Any) -> Any:
    try:
        return decode(_field(record, kind, conversation_id, name))
    except RecordError:
        raise
    except CodecError as error:
        raise RecordError(kind, conversation_id, name, f"does not decode: {error}") from None
