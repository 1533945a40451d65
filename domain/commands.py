"""Inputs of the conversation state machine.

Each command is a frozen, slotted dataclass at module top level: they are also the payloads
that travel between actors (Thespian pickles them between processes).

:data:`COMMANDS` is the registry: every command by its class name, the spelling the journal
stores. What is kept per command elsewhere (the states that accept it, its handler, its stored
form) is keyed by these classes and covers all of them (``tests/test_definitions.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, get_args

from domain.enums import (
    Channel,
    ConsultOutcome,
    EndedBy,
    ResumeReason,
    Role,
    SessionEndReason,
    UnsubscribeReason,
)
from domain.pickling import pickle_by_field_names
from domain.records import Emitter, Payload
from domain.timers import TimerKey


@dataclass(frozen=True, slots=True)
class StartSession:
    session_id: str
    channel: Channel
    identifier: str
    data: Payload = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CustomerMessage:
    session_id: str
    text: str
    message_id: str


@dataclass(frozen=True, slots=True)
class EndSession:
    session_id: str
    reason: SessionEndReason = SessionEndReason.CUSTOMER


@dataclass(frozen=True, slots=True)
class RequestAgent:
    queue: str
    by: Emitter


@dataclass(frozen=True, slots=True)
class SubscribeAgent:
    """An agent joins: routed (``request_id`` names the request it answers) or directly.

    ``role`` None means "PRIMARY if no PRIMARY is present, else ASSISTANT".
    """

    agent_id: str
    role: Role | None = None
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class AgentMessage:
    """``channel_session_id``: the customer's live channel session the answer goes out on
    (None: every channel session of the conversation, as before)."""

    agent_id: str
    text: str
    message_id: str
    channel_session_id: str | None = None


@dataclass(frozen=True, slots=True)
class BotMessage:
    text: str
    message_id: str


@dataclass(frozen=True, slots=True)
class BotNotification:
    text: str


@dataclass(frozen=True, slots=True)
class Hold:
    agent_id: str
    seconds: float


@dataclass(frozen=True, slots=True)
class Resume:
    agent_id: str
    reason: ResumeReason = ResumeReason.AGENT


@dataclass(frozen=True, slots=True)
class AgentLeave:
    """An agent leaves (LEFT, DIRECT_TRANSFER) or is removed (AGENT_LOGOUT, ...)."""

    agent_id: str
    reason: UnsubscribeReason = UnsubscribeReason.LEFT


@dataclass(frozen=True, slots=True)
class Transfer:
    """The PRIMARY agent hands the conversation on: to the agent ``to_agent_id`` or to
    ``queue`` (exactly one of them), with a note for whoever takes it."""

    agent_id: str
    queue: str | None = None
    to_agent_id: str | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class Consult:
    """A present agent asks ``to_agent_id`` or an agent of ``queue`` (exactly one) to join
    as ASSISTANT, with a note for whoever takes it."""

    agent_id: str
    queue: str | None = None
    to_agent_id: str | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class ConcludeConsult:
    """The consulting agent ends its consult: TRANSFER, CONFERENCE or END."""

    agent_id: str
    outcome: ConsultOutcome


@dataclass(frozen=True, slots=True)
class Whisper:
    """An agent or a WHISPER supervisor writes to the other agents and supervisors of the
    conversation; the customer never receives it."""

    agent_id: str
    text: str
    message_id: str


@dataclass(frozen=True, slots=True)
class BargeIn:
    """A supervisor (SILENT_MONITOR or WHISPER) takes part as an agent: ASSISTANT, or
    PRIMARY when no agent is PRIMARY."""

    agent_id: str


@dataclass(frozen=True, slots=True)
class Typing:
    """The customer on channel session ``session_id`` or the agent ``agent_id`` (exactly one)
    is typing: pushed to the others at once, never journaled or archived."""

    agent_id: str | None = None
    session_id: str | None = None


@dataclass(frozen=True, slots=True)
class ReadReceipt:
    """The customer on ``session_id`` or the agent ``agent_id`` (exactly one) has read the
    conversation's events up to ``seq``."""

    seq: int
    agent_id: str | None = None
    session_id: str | None = None


@dataclass(frozen=True, slots=True)
class ApplyWrapUp:
    agent_id: str
    codes: tuple[str, ...]
    note: str = ""


@dataclass(frozen=True, slots=True)
class SetData:
    key: str
    value: str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class EndConversation:
    by: EndedBy = EndedBy.OPERATOR


@dataclass(frozen=True, slots=True)
class AddActivity:
    name: str
    data: Payload
    emitter: Emitter


@dataclass(frozen=True, slots=True)
class TimerFired:
    key: TimerKey
    token: int
    percent: int  # 100 is the expiry; below it a threshold


@dataclass(frozen=True, slots=True)
class RoutingUpdate:
    """What the Router reports about a request: AGENT_OFFERED, RONA, NO_AGENT_AVAILABLE, or
    QUEUE_POSITION with its ``position`` and ``estimated_wait_seconds``."""

    name: str
    request_id: str
    queue: str
    agent_id: str | None = None
    position: int | None = None
    estimated_wait_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class ArchiveCommitted:
    """The TopicMonitor committed the archive transaction up to ``through_seq``: -> CLOSED."""

    through_seq: int


Command = (
    StartSession
    | CustomerMessage
    | EndSession
    | RequestAgent
    | SubscribeAgent
    | AgentMessage
    | BotMessage
    | BotNotification
    | Hold
    | Resume
    | AgentLeave
    | Transfer
    | Consult
    | ConcludeConsult
    | Whisper
    | BargeIn
    | Typing
    | ReadReceipt
    | ApplyWrapUp
    | SetData
    | EndConversation
    | AddActivity
    | TimerFired
    | RoutingUpdate
    | ArchiveCommitted
)

#: Every command class by its name (the name the journal stores), in the order of ``Command``.
COMMANDS: Final[Mapping[str, type[Command]]] = MappingProxyType(
    {cls.__name__: cls for cls in get_args(Command)}
)


pickle_by_field_names(globals())  # after every class above: see domain.pickling
