"""Plain-data forms of the domain values that are written to disk (the journal).

Commands, events and policies become msgpack-friendly lists and maps, and come back only
through an explicit registry of known types: decoding never instantiates anything that is not
listed here, and a malformed value raises :class:`CodecError` naming what was wrong.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from enum import Enum
from types import MappingProxyType
from typing import Any

from domain import commands
from domain.enums import (
    Channel,
    ConsultOutcome,
    EndedBy,
    EventType,
    ParticipantType,
    ResumeReason,
    Role,
    SessionEndReason,
    ThresholdAction,
    UnsubscribeReason,
)
from domain.errors import CxError
from domain.policy import Policy, Threshold
from domain.records import Emitter, Event
from domain.timers import TimerKey, TimerKind


class CodecError(CxError, ValueError):
    """A stored value does not decode to a known domain value."""


_COMMANDS = commands.COMMANDS
# field names per command class, computed once: dataclasses.fields() per call was most of the
# journal's encoding cost
_FIELD_NAMES: dict[type[Any], tuple[str, ...]] = {
    cls: tuple(f.name for f in dataclasses.fields(cls)) for cls in _COMMANDS.values()
}
_SCALARS = frozenset({str, int, float, bool, type(None), bytes})
_REASONS: dict[str, type[Enum]] = {
    "EndSession": SessionEndReason,
    "Resume": ResumeReason,
    "AgentLeave": UnsubscribeReason,
}


def encode_command(command: Any) -> list[Any]:
    names = _FIELD_NAMES.get(type(command))
    if names is None:
        raise CodecError(f"cannot encode {type(command).__name__}")
    fields = {}
    for name in names:
        value = getattr(command, name)
        fields[name] = value if type(value) in _SCALARS else _plain(value)
    return [type(command).__name__, fields]


def decode_command(value: Any) -> Any:
    if not (isinstance(value, list) and len(value) == 2 and isinstance(value[1], dict)):
        raise CodecError(f"a command is [name, fields], got {value!r:.80}")
    name, fields = value
    cls = _COMMANDS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise CodecError(f"unknown command {name!r:.40}")
    known = {f.name for f in dataclasses.fields(cls)}
    if set(fields) - known:
        raise CodecError(f"{name} has unknown fields {sorted(set(fields) - known)}")
    try:
        return cls(**{k: _typed(name, k, v) for k, v in fields.items()})
    except (TypeError, ValueError) as error:
        raise CodecError(f"{name}: {error}") from None


def _typed(command: str, field: str, value: Any) -> Any:
    if value is None:
        return None
    if field == "reason":
        return _REASONS[command](value)
    if field == "by":
        return _emitter(value) if isinstance(value, list) else EndedBy(value)
    if field == "emitter":
        return _emitter(value)
    if field == "key" and command == "TimerFired":
        return TimerKey(TimerKind(value[0]), value[1])
    if field == "codes":
        return tuple(value)
    if field == "channel":
        return Channel(value)
    if field == "role":
        return Role(value)
    if field == "outcome":
        return ConsultOutcome(value)
    return value


def _emitter(value: Any) -> Emitter:
    if not (isinstance(value, list) and len(value) == 2):
        raise CodecError(f"an emitter is [id, type], got {value!r:.80}")
    kind = value[1]
    return Emitter(
        value[0], ParticipantType(kind) if kind in ParticipantType._value2member_map_ else kind
    )


def _plain(value: Any) -> Any:
    if type(value) in _SCALARS:
        return value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Threshold):
        return [value.percent, value.action.value]
    if isinstance(value, Emitter):
        return [value.id, _plain(value.type)]
    if isinstance(value, TimerKey):
        return [value.kind.value, value.subject]
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return _plain_map(value)
    return value


def _plain_map(value: Mapping[Any, Any]) -> dict[Any, Any]:
    return {k: v if type(v) in _SCALARS else _plain(v) for k, v in value.items()}


# ---------------------------------------------------------------------- events


def encode_event(event: Event) -> list[Any]:
    # str() of a StrEnum member is its value; the emitter type may also be a plain str
    emitter = event.emitter
    return [
        event.seq,
        event.name,
        str(event.type),
        event.timestamp,
        [emitter.id, str(emitter.type)],
        event.channel_session_id,
        _plain_map(event.data),
    ]


def decode_event(conversation_id: str, room_id: str, value: Any) -> Event:
    try:
        seq, name, kind, timestamp, emitter, session_id, data = value
        return Event(
            conversation_id,
            room_id,
            seq,
            name,
            EventType(kind),
            timestamp,
            _emitter(emitter),
            session_id,
            data,
        )
    except (TypeError, ValueError) as error:
        raise CodecError(f"bad event of {conversation_id}: {error}") from None


# ---------------------------------------------------------------------- policy


def encode_policy(policy: Policy) -> dict[str, Any]:
    return {f.name: _plain(getattr(policy, f.name)) for f in dataclasses.fields(policy)}


def decode_policy(value: Any) -> Policy:
    if not isinstance(value, dict):
        raise CodecError("a policy is a map")
    fields = dict(value)
    try:
        for name in ("agent_sla_thresholds", "inactivity_thresholds"):
            fields[name] = tuple(Threshold(p, ThresholdAction(a)) for p, a in fields[name])
        for name in ("queue_sla_ms", "channel_inactivity_ms"):
            fields[name] = MappingProxyType(dict(fields[name]))
        advisor = fields.pop("advisor", None)  # records of one advisor, before several
        fields["advisors"] = tuple(fields.get("advisors", () if advisor is None else [advisor]))
        return Policy(**fields)
    except (TypeError, ValueError, KeyError) as error:
        raise CodecError(f"bad policy: {error}") from None
