"""Plain dict views of records, as the gateway returns them (ISO-8601 UTC timestamps)."""

from __future__ import annotations

from typing import Any

from domain.effects import Signal
from domain.enums import EventType
from domain.records import ConversationRecord, Event
from infra.timefmt import iso


def event_dict(event: Event) -> dict[str, Any]:
    emitter = event.emitter
    return {
        "seq": event.seq,
        "name": event.name,
        "type": str(event.type),
        "timestamp": iso(event.timestamp),
        "emitter": {"id": emitter.id, "type": str(emitter.type)},
        "channel_session_id": event.channel_session_id,
        "data": dict(event.data),
    }


def signal_dict(signal: Signal) -> dict[str, Any]:
    """A transient notice as the gateway returns it: an event's shape with ``seq`` None."""
    return {
        "seq": None,
        "name": signal.name,
        "type": str(EventType.NOTIFICATION),
        "timestamp": iso(signal.at),
        "emitter": {"id": signal.emitter.id, "type": str(signal.emitter.type)},
        "channel_session_id": signal.channel_session_id,
        "data": {},
    }


def record_dict(record: ConversationRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "room_id": record.room_id,
        "customer_id": record.customer_id,
        "state": str(record.state),
        "direction": str(record.direction),
        "created_at": iso(record.created_at),
        "ended_at": iso(record.ended_at),
        "participants": [
            {
                "id": p.id,
                "type": str(p.type),
                "role": str(p.role),
                "state": str(p.state),
                "joined_at": iso(p.joined_at),
                "left_at": iso(p.left_at),
            }
            for p in record.participants
        ],
        "channel_sessions": [
            {
                "id": s.id,
                "channel": str(s.channel),
                "identifier": s.identifier,
                "state": str(s.state),
                "end_reason": None if s.end_reason is None else str(s.end_reason),
                "started_at": iso(s.started_at),
                "ended_at": iso(s.ended_at),
            }
            for s in record.channel_sessions
        ],
        "data": dict(record.data),
        "seq": record.seq,
    }
