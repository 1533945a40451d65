"""The event catalogue: every engine event name and its type."""

from __future__ import annotations

from collections.abc import Mapping

from domain.enums import EventType

_N = EventType.NOTIFICATION
EVENT_TYPES: Mapping[str, EventType] = {
    "CHANNEL_SESSION_STARTED": _N,
    "CHANNEL_SESSION_ENDED": _N,
    "CUSTOMER_MESSAGE": EventType.MESSAGE,
    "AGENT_MESSAGE": EventType.MESSAGE,
    "BOT_MESSAGE": EventType.MESSAGE,
    "BOT_NOTIFICATION": _N,
    "BOT_SUBSCRIBED": _N,
    "BOT_UNSUBSCRIBED": _N,
    "AGENT_SUBSCRIBED": _N,
    "AGENT_UNSUBSCRIBED": _N,
    "PARTICIPANT_ROLE_CHANGED": _N,
    "AGENT_REQUESTED": _N,
    "AGENT_OFFERED": _N,
    "RONA": _N,
    "NO_AGENT_AVAILABLE": _N,
    "CONVERSATION_PAUSED": _N,
    "CONVERSATION_RESUMED": _N,
    "WRAPUP_APPLIED": EventType.ACTIVITY,
    "CONVERSATION_DATA_CHANGED": _N,
    "TOPIC_STATE_CHANGED": _N,
    "END_CONVERSATION": _N,
    **{
        f"{kind}_{suffix}": _N
        for kind in ("AGENT_SLA", "CUSTOMER_SLA")
        for suffix in ("STARTED", "STOPPED", "THRESHOLD", "EXPIRED")
    },
}

#: Names an ``add_activity`` may not use: they would be mistaken for the engine's own events.
RESERVED_NAMES: frozenset[str] = frozenset(EVENT_TYPES)
