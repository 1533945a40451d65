"""Between gateways, conversation hosts, the Archivist and the TopicMonitor: sessions, locations,
restores, states, archive writes and status."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from actors.messages.envelope import Ref
from domain.commands import StartSession
from domain.enums import Channel, Direction
from domain.pickling import pickle_by_field_names
from domain.records import ConversationRecord, Event, Payload


@dataclass(frozen=True, slots=True)
class OpenSession:
    """Get-or-create the room's live conversation and start a channel session on it.

    The caller proposes every id the operation may need, so that ids are drawn where the
    randomness lives (the gateway) and a simulation stays deterministic.
    """

    customer_id: str
    channel: Channel
    identifier: str
    room_id: str | None
    data: Payload
    session_id: str
    new_conversation_id: str
    new_room_id: str
    #: OUTBOUND: an agent contacts the customer (a new conversation is opened OUTBOUND).
    direction: Direction = Direction.INBOUND


@dataclass(frozen=True, slots=True)
class Locate:
    """Where is a conversation (by conversation or channel session id)?"""

    conversation_id: str | None = None
    session_id: str | None = None


@dataclass(frozen=True, slots=True)
class Location:
    conversation_id: str
    host: Any | None  # None: archived
    state: str


@dataclass(frozen=True, slots=True)
class ArchivedQuery:
    """Read an archived conversation: kind is conversation, events or history."""

    kind: str
    id: str
    after_seq: int = 0


@dataclass(frozen=True, slots=True)
class ForgetCustomer:
    """Delete everything the archive holds of a customer (refused while one of their
    conversations is live); answered with how many rows of each kind went."""

    customer_id: str


@dataclass(frozen=True, slots=True)
class ArchivedActivity:
    conversation_id: str
    name: str
    data: Payload


@dataclass(frozen=True, slots=True)
class StatusQuery:
    pass


@dataclass(frozen=True, slots=True)
class OpenConversation:
    conversation_id: str
    room_id: str
    customer_id: str
    first: StartSession
    direction: Direction = Direction.INBOUND
    advisors: tuple[str, ...] = ()  # a private room's advisors: its requests go to them


@dataclass(frozen=True, slots=True)
class RestoreConversation:
    """Rebuild a conversation from its journal records on this host."""

    opened: dict[str, Any]
    commands: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class Restored:
    conversation_id: str
    ok: bool
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BootStatus:
    """Answered by the TopicMonitor: what it restored at boot."""

    call_id: str


@dataclass(frozen=True, slots=True)
class JoinSession:
    """Start another channel session on a live conversation; bounced if it is closing."""

    start: StartSession
    origin: OpenSession


@dataclass(frozen=True, slots=True)
class Bounced:
    """The conversation a session was sent to is closing: the room needs a new one."""

    origin: OpenSession
    conversation_id: str


@dataclass(frozen=True, slots=True)
class StateReport:
    conversation_id: str
    room_id: str
    state: str
    sessions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ArchiveRequest:
    """A closing conversation to its Archivist (``Wiring.archivist_of``): store this snapshot
    and its events; answered ``ArchiveDone`` or ``ArchiveFailed`` to ``conversation``."""

    record: ConversationRecord
    events: tuple[Event, ...]
    conversation: Ref


@dataclass(frozen=True, slots=True)
class ArchiveLateRequest:
    conversation_id: str
    events: tuple[Event, ...]


@dataclass(frozen=True, slots=True)
class ArchiveDone:
    through_seq: int


@dataclass(frozen=True, slots=True)
class ArchiveFailed:
    problem: str


@dataclass(frozen=True, slots=True)
class ArchiveOutcome:
    """An Archivist to the TopicMonitor: a closing conversation's archive transaction committed
    (``archived``) or was refused for good (``problem``). The events stay with the Archivist."""

    conversation_id: str
    archived: bool
    problem: str = ""


@dataclass(frozen=True, slots=True)
class Status:
    conversations: dict[str, int] = field(default_factory=dict)
    agents: dict[str, int] = field(default_factory=dict)
    queues: dict[str, int] = field(default_factory=dict)
    storage: dict[str, int] = field(default_factory=dict)  # {"failing_journals": hosts}


@dataclass(frozen=True, slots=True)
class NotApplied:
    """A host tells the TopicMonitor that a session it was sent was not opened or joined
    (its journal could not be written): the session id is free again, and a conversation
    that was being opened by it does not exist."""

    conversation_id: str
    session_id: str
    opening: bool


@dataclass(frozen=True, slots=True)
class StorageHealth:
    """A conversation host's journal stopped (``problem``) or resumed (``None``) taking writes."""

    host_id: str
    problem: str | None


@dataclass(frozen=True, slots=True)
class StoreIdentity:
    """A customer's first contact: store the identity, and the new room when ``room_id`` is
    set, in one transaction. One attempt: answered ``unavailable`` if the archive refuses."""

    customer_id: str
    channel: str
    identifier: str
    room_id: str | None
    room_created_at: int


@dataclass(frozen=True, slots=True)
class ArchiveOpened:
    """The Archivist to the TopicMonitor: it has opened the archive (creating the file and its
    schema on new storage), so the monitor may open its reading connection; ``problem`` if the
    archive could not be opened."""

    problem: str | None


@dataclass(frozen=True, slots=True)
class ArchiveNext:
    """The Archivist to itself: go on with the archive writes still waiting (a long backlog is
    written a slice at a time, so that other requests are served in between)."""


pickle_by_field_names(globals())  # after every class above: see domain.pickling
