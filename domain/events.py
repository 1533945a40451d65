"""The event catalogue: every engine event name and its type (docs/EVENTS.md describes each)."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from domain.enums import EventType


class EventName(StrEnum):
    """The name of every event the engine itself publishes.

    Activities that applications add (``add_activity``) carry names of their own, which may not
    be one of these.
    """

    CHANNEL_SESSION_STARTED = "CHANNEL_SESSION_STARTED"
    CHANNEL_SESSION_ENDED = "CHANNEL_SESSION_ENDED"
    CUSTOMER_MESSAGE = "CUSTOMER_MESSAGE"
    AGENT_MESSAGE = "AGENT_MESSAGE"
    BOT_MESSAGE = "BOT_MESSAGE"
    BOT_NOTIFICATION = "BOT_NOTIFICATION"
    BOT_SUBSCRIBED = "BOT_SUBSCRIBED"
    BOT_UNSUBSCRIBED = "BOT_UNSUBSCRIBED"
    AGENT_SUBSCRIBED = "AGENT_SUBSCRIBED"
    AGENT_UNSUBSCRIBED = "AGENT_UNSUBSCRIBED"
    PARTICIPANT_ROLE_CHANGED = "PARTICIPANT_ROLE_CHANGED"
    AGENT_REQUESTED = "AGENT_REQUESTED"
    AGENT_OFFERED = "AGENT_OFFERED"
    RONA = "RONA"
    NO_AGENT_AVAILABLE = "NO_AGENT_AVAILABLE"
    QUEUE_POSITION = "QUEUE_POSITION"
    AGENT_OFFER_WITHDRAWN = "AGENT_OFFER_WITHDRAWN"
    CONVERSATION_TRANSFERRED = "CONVERSATION_TRANSFERRED"
    CONSULT_REQUESTED = "CONSULT_REQUESTED"
    CONSULT_CONCLUDED = "CONSULT_CONCLUDED"
    WHISPER_MESSAGE = "WHISPER_MESSAGE"
    SUPERVISOR_BARGED_IN = "SUPERVISOR_BARGED_IN"
    READ_RECEIPT = "READ_RECEIPT"
    TYPING = "TYPING"  # pushed only: never journaled, archived or numbered
    CONVERSATION_PAUSED = "CONVERSATION_PAUSED"
    CONVERSATION_RESUMED = "CONVERSATION_RESUMED"
    WRAPUP_APPLIED = "WRAPUP_APPLIED"
    CONVERSATION_DATA_CHANGED = "CONVERSATION_DATA_CHANGED"
    TOPIC_STATE_CHANGED = "TOPIC_STATE_CHANGED"
    END_CONVERSATION = "END_CONVERSATION"
    AGENT_SLA_STARTED = "AGENT_SLA_STARTED"
    AGENT_SLA_STOPPED = "AGENT_SLA_STOPPED"
    AGENT_SLA_THRESHOLD = "AGENT_SLA_THRESHOLD"
    AGENT_SLA_EXPIRED = "AGENT_SLA_EXPIRED"
    CUSTOMER_SLA_STARTED = "CUSTOMER_SLA_STARTED"
    CUSTOMER_SLA_STOPPED = "CUSTOMER_SLA_STOPPED"
    CUSTOMER_SLA_THRESHOLD = "CUSTOMER_SLA_THRESHOLD"
    CUSTOMER_SLA_EXPIRED = "CUSTOMER_SLA_EXPIRED"
    ROOM_MESSAGE = "ROOM_MESSAGE"  # a TEAM room's, not a conversation's: numbered per room


EVENT_TYPES: Mapping[str, EventType] = {
    str(name): EventType.NOTIFICATION for name in EventName
} | {
    EventName.CUSTOMER_MESSAGE: EventType.MESSAGE,
    EventName.AGENT_MESSAGE: EventType.MESSAGE,
    EventName.BOT_MESSAGE: EventType.MESSAGE,
    EventName.WHISPER_MESSAGE: EventType.MESSAGE,
    EventName.ROOM_MESSAGE: EventType.MESSAGE,
    EventName.WRAPUP_APPLIED: EventType.ACTIVITY,
}

#: Names an ``add_activity`` may not use: they would be mistaken for the engine's own events.
RESERVED_NAMES: frozenset[str] = frozenset(EventName)

#: The mark (``data["audience"]``) of an event for the agents and supervisors of a
#: conversation only: a whisper, a supervisor's read receipt. No channel session is pushed it.
AUDIENCE_KEY = "audience"
AGENTS_AUDIENCE = "AGENTS"


def for_customer(data: Mapping[str, object]) -> bool:
    """Whether an event with this ``data`` may reach the customer's channel sessions."""
    return data.get(AUDIENCE_KEY) != AGENTS_AUDIENCE


def closes_conversation(event: Mapping[str, Any]) -> bool:
    """Whether ``event`` (as ``events`` gives it) is the conversation's change to CLOSED: it
    and the events published with it are the conversation's last."""
    data = event.get("data") or {}
    return bool(event.get("name") == EventName.TOPIC_STATE_CHANGED and data.get("to") == "CLOSED")
