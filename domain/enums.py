"""The vocabulary of the domain: states, roles, channels, reasons.

Names follow the vocabulary of contact-center products, so that people who know contact centers
feel at home (docs/STATES.md and docs/EVENTS.md use them). Every enum is a ``StrEnum`` so that
values travel through msgpack, SQLite and JSON as their plain names.
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    CREATED = "CREATED"
    ACTIVE = "ACTIVE"
    ON_HOLD = "ON_HOLD"
    CUSTOMER_LEFT = "CUSTOMER_LEFT"
    WRAP_UP = "WRAP_UP"
    INACTIVE = "INACTIVE"
    CLOSING = "CLOSING"
    CLOSED = "CLOSED"


OPEN_STATES: frozenset[State] = frozenset(State) - {State.CLOSING, State.CLOSED}


class Channel(StrEnum):
    WEB = "WEB"
    WHATSAPP = "WHATSAPP"
    SMS = "SMS"
    EMAIL = "EMAIL"
    VOICE = "VOICE"
    APP = "APP"
    FACEBOOK = "FACEBOOK"
    INSTAGRAM = "INSTAGRAM"
    TELEGRAM = "TELEGRAM"
    VIBER = "VIBER"


class SessionState(StrEnum):
    STARTED = "STARTED"
    ENDED = "ENDED"


class SessionEndReason(StrEnum):
    CUSTOMER = "CUSTOMER"
    INACTIVITY = "INACTIVITY"
    NETWORK = "NETWORK"
    AGENT = "AGENT"
    FORCE_CLOSED = "FORCE_CLOSED"


class ParticipantType(StrEnum):
    CUSTOMER = "CUSTOMER"
    AGENT = "AGENT"
    BOT = "BOT"
    APP = "APP"
    MONITOR = "MONITOR"


class Role(StrEnum):
    PRIMARY = "PRIMARY"
    ASSISTANT = "ASSISTANT"
    CUSTOMER = "CUSTOMER"
    SILENT_MONITOR = "SILENT_MONITOR"
    WHISPER = "WHISPER"
    WRAP_UP = "WRAP_UP"


#: Roles that make an agent "present" with the customer.
PRESENT_ROLES: frozenset[Role] = frozenset({Role.PRIMARY, Role.ASSISTANT})
#: Supervisor roles: they never change the state or any timer.
SUPERVISOR_ROLES: frozenset[Role] = frozenset({Role.SILENT_MONITOR, Role.WHISPER})


class ParticipantState(StrEnum):
    SUBSCRIBED = "SUBSCRIBED"
    UNSUBSCRIBED = "UNSUBSCRIBED"


class Direction(StrEnum):
    INBOUND = "INBOUND"
    OUTBOUND = "OUTBOUND"


class EventType(StrEnum):
    MESSAGE = "MESSAGE"
    ACTIVITY = "ACTIVITY"
    NOTIFICATION = "NOTIFICATION"
    SUGGESTION = "SUGGESTION"


class ThresholdAction(StrEnum):
    NOTIFY_CUSTOMER = "NOTIFY_CUSTOMER"
    NOTIFY_AGENT = "NOTIFY_AGENT"
    NONE = "NONE"


class UnsubscribeReason(StrEnum):
    LEFT = "LEFT"
    DIRECT_TRANSFER = "DIRECT_TRANSFER"
    SLA_EXPIRED = "SLA_EXPIRED"
    AGENT_LOGOUT = "AGENT_LOGOUT"
    FORCE_CLOSED = "FORCE_CLOSED"
    WRAP_UP_APPLIED = "WRAP_UP_APPLIED"
    WRAP_UP_EXPIRED = "WRAP_UP_EXPIRED"
    CONVERSATION_CLOSED = "CONVERSATION_CLOSED"
    CONSULT_TRANSFER = "CONSULT_TRANSFER"
    CONSULT_ENDED = "CONSULT_ENDED"


#: Reasons an agent may give when it leaves by its own action (``agent_leave``).
VOLUNTARY_LEAVE_REASONS: frozenset[UnsubscribeReason] = frozenset(
    {UnsubscribeReason.LEFT, UnsubscribeReason.DIRECT_TRANSFER}
)


class ConsultOutcome(StrEnum):
    """How a consult ends: the consulted agent takes over, both stay, or the consulted goes."""

    TRANSFER = "TRANSFER"
    CONFERENCE = "CONFERENCE"
    END = "END"


class ResumeReason(StrEnum):
    AGENT = "AGENT"
    HOLD_EXPIRED = "HOLD_EXPIRED"
    AGENT_MESSAGE = "AGENT_MESSAGE"


class EndedBy(StrEnum):
    BOT = "BOT"
    AGENT = "AGENT"
    OPERATOR = "OPERATOR"


class RoomType(StrEnum):
    CUSTOMER = "CUSTOMER"
    TEAM = "TEAM"


class RoomMode(StrEnum):
    CONTACT_CENTER = "CONTACT_CENTER"
    PRIVATE = "PRIVATE"


class Presence(StrEnum):
    READY = "READY"
    NOT_READY = "NOT_READY"
