"""Messages between the engine's Thespian actors.

Every message is a frozen, slotted dataclass at module top level, because Thespian pickles
messages between processes. Hosted entities (conversations, channel sessions, agents) are
addressed by a :class:`Ref`: the Thespian address of the actor that hosts them plus the
entity's id. Whatever one actor sends another while handling one message travels as one
:class:`Batch`, which is what keeps the per-event cost low between processes.

Time travels with messages: each :class:`Batch` carries the sender's clock. Under a virtual
clock a receiver moves its clock forward to it, so that effects caused at time t are stamped t
wherever they land.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from domain.commands import Command, StartSession
from domain.enums import Channel, Role, UnsubscribeReason
from domain.errors import ErrorKind
from domain.pickling import pickle_by_field_names
from domain.records import ConversationRecord, Event, Payload


@dataclass(frozen=True, slots=True)
class Ref:
    """Where an entity lives: the hosting actor's address and the entity's id."""

    address: Any  # a Thespian ActorAddress
    entity: str


@dataclass(frozen=True, slots=True)
class ReplyTo:
    """Where the answer to a call goes: the caller's address and its call id."""

    address: Any
    call_id: str


@dataclass(frozen=True, slots=True)
class Deliver:
    """One payload for one entity (or for the receiving actor itself when entity is "")."""

    entity: str
    payload: Any
    reply_to: ReplyTo | None = None


@dataclass(frozen=True, slots=True, repr=False)
class Batch:
    now: int
    items: tuple[Deliver, ...]

    def __repr__(self) -> str:
        # Thespian formats every message it sends or receives for its DEBUG log, whether or
        # not DEBUG is on; a dataclass repr would walk every item (7-23 % of a process's CPU)
        return f"Batch(now={self.now}, {len(self.items)} items)"


# ---------------------------------------------------------------- answers


@dataclass(frozen=True, slots=True)
class Reply:
    call_id: str
    value: Any = None


@dataclass(frozen=True, slots=True)
class Failure:
    """A refusal or error; the gateway raises ``domain.errors.error_for(kind, message)``."""

    call_id: str
    kind: ErrorKind
    message: str


# ---------------------------------------------------------------- bootstrap


@dataclass(frozen=True, slots=True)
class Wiring:
    """Sent to every long-lived actor once at boot: settings and each other's addresses."""

    settings: Any  # infra.config.Settings
    monitor: Any
    router: Any
    bot: Any
    agents: Any
    virtual: bool
    now: int
    clock: Any = None  # virtual clock: the gateway driving it (see ClockDriver)


@dataclass(frozen=True, slots=True)
class Rewired:
    """The Router or the Bot was restarted at a new address: use this wiring from now on.

    ``reroute``: a new Router, which knows nothing: conversations re-send their pending agent
    request, agents report their availability again. One message, so that nothing is sent to
    the new Router before its address is known (a fresh address may be held back by Thespian
    until the actor exists, while a message without one would overtake it)."""

    wiring: Wiring
    reroute: bool = False


@dataclass(frozen=True, slots=True)
class Reroute:
    """A new Router knows nothing: conversations re-send their pending agent request, agents
    report their availability again."""


@dataclass(frozen=True, slots=True)
class AgentsLost:
    """These agents' host died: conversations they were in ask for them again (Reattach)."""

    agent_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Directory:
    """Answered by the TopicMonitor with the current addresses of the Router and the Bot."""

    call_id: str


@dataclass(frozen=True, slots=True)
class HostInit:
    host_id: str
    kind: str  # "conversations" or "agents"
    wiring: Wiring
    now: int


# ---------------------------------------------------------------- virtual clock


@dataclass(frozen=True, slots=True)
class WatchHosts:
    """A gateway asks to be told when a conversation host dies (it caches hosts' addresses:
    a send to a dead one would block in Thespian for half a minute)."""

    address: Any


@dataclass(frozen=True, slots=True)
class HostLost:
    address: Any


@dataclass(frozen=True, slots=True)
class ClockDriver:
    """Virtual clock only: the gateway that drives the clock; timer owners report to it."""

    address: Any


@dataclass(frozen=True, slots=True)
class AlarmAt:
    """Virtual clock only: a timer owner's earliest alarm changed (None: it has none)."""

    owner: Any
    at: int | None


@dataclass(frozen=True, slots=True)
class FireAlarms:
    """Virtual clock only: move the clock to ``now`` and fire every alarm due by then."""

    now: int


@dataclass(frozen=True, slots=True)
class ListTimerOwners:
    """Answered by the TopicMonitor with the Router and every conversation host."""

    call_id: str


@dataclass(frozen=True, slots=True)
class WhoAmI:
    """Answered with :class:`Reply` whose value is the asker's address (how a gateway learns
    the address that forwarded answers must go to)."""

    call_id: str


@dataclass(frozen=True, slots=True)
class Ping:
    """Answered with ``Reply({"pid": ..., "actor": ...})``: which process runs an actor."""

    call_id: str


@dataclass(frozen=True, slots=True)
class Drain:
    """Does nothing: lets a caller run a simpleSystemBase until it is quiescent."""


# ---------------------------------------------------------------- gateway -> TopicMonitor


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
class ArchivedActivity:
    conversation_id: str
    name: str
    data: Payload


@dataclass(frozen=True, slots=True)
class StatusQuery:
    pass


# ---------------------------------------------------------------- TopicMonitor <-> hosts


@dataclass(frozen=True, slots=True)
class OpenConversation:
    conversation_id: str
    room_id: str
    customer_id: str
    first: StartSession


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


# ---------------------------------------------------------------- conversation entity


@dataclass(frozen=True, slots=True)
class Apply:
    """A state machine command for a conversation (from a gateway, bot, agent or router)."""

    command: Command


@dataclass(frozen=True, slots=True)
class SnapshotQuery:
    pass


@dataclass(frozen=True, slots=True)
class EventsQuery:
    after_seq: int = 0


@dataclass(frozen=True, slots=True)
class SubscribeRequest:
    """An Agent entity asks the conversation to subscribe it."""

    agent_id: str
    role: Role | None
    request_id: str | None
    agent: Ref
    origin: ReplyTo | None


@dataclass(frozen=True, slots=True)
class SubscribeOutcome:
    conversation_id: str
    conversation: Ref
    request_id: str | None
    counted: bool  # counts against the agent's limit (not a supervisor)
    failure: Failure | None
    origin: ReplyTo | None


@dataclass(frozen=True, slots=True)
class EventDelivery:
    """Fan-out to a subscriber: the events one command published, in seq order (one message
    per trigger and subscriber, not one per event)."""

    events: tuple[Event, ...]
    conversation: Ref


@dataclass(frozen=True, slots=True)
class BotDelivery:
    """An event for the bot, with what the bot needs to know of its conversation, so that the
    Bot actor keeps no state per conversation (a restarted Bot loses nothing). ``events``: those
    of one command that the bot reacts to, in seq order."""

    events: tuple[Event, ...]
    conversation: Ref
    bot_role: Role | None
    agent_requested: bool


@dataclass(frozen=True, slots=True)
class Subscribe:
    """A gateway wants the outbound events of a channel session or an agent pushed to it.

    For a channel session the conversation first replays its events after ``after_seq`` and
    then pushes every new one, in order, with no gap and no repeat."""

    subscription: str  # "session:<id>" or "agent:<id>"
    subscriber: Any  # the gateway's address
    after_seq: int = 0


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    subscription: str


@dataclass(frozen=True, slots=True)
class AttachSubscriber:
    """Conversation -> its channel session: push these events, then every new one."""

    subscription: str
    subscriber: Any
    replay: tuple[Event, ...]


@dataclass(frozen=True, slots=True)
class Pushed:
    """One outbound event for a subscribed gateway (the event as the gateway returns it).

    ``previous``: the seq of the event pushed before it on this subscription for this
    conversation (0: none), so that the gateway can put them in order and see a gap; None where
    the events follow each other (a channel session's: seq - 1)."""

    subscription: str
    conversation_id: str
    event: dict[str, Any]
    previous: int | None = None


@dataclass(frozen=True, slots=True)
class Alarm:
    """A timer alarm of an entity, delivered by its host's heap."""

    key: Hashable  # a TimerKey of the state machine, or an entity's own key
    token: int
    percent: int


# ---------------------------------------------------------------- agents


@dataclass(frozen=True, slots=True)
class AgentLogin:
    agent_id: str
    queues: tuple[str, ...]
    max_conversations: int


@dataclass(frozen=True, slots=True)
class AgentPresence:
    """agent_ready / agent_not_ready / agent_logout from a gateway."""

    agent_id: str
    action: str  # READY, NOT_READY, LOGOUT


@dataclass(frozen=True, slots=True)
class AgentJoin:
    agent_id: str
    conversation: Ref
    role: Role | None


@dataclass(frozen=True, slots=True)
class Released:
    """The conversation unsubscribed the agent."""

    conversation_id: str
    reason: UnsubscribeReason


@dataclass(frozen=True, slots=True)
class AgentAvailable:
    agent_id: str
    ready: bool
    free: int
    queues: tuple[str, ...]
    agent: Ref


@dataclass(frozen=True, slots=True)
class AgentGone:
    agent_id: str


@dataclass(frozen=True, slots=True)
class Assignment:
    """The Router gives a request to an agent (offer=False: subscribe now)."""

    request_id: str
    conversation: Ref
    queue: str
    offer: bool


@dataclass(frozen=True, slots=True)
class Reattach:
    """A conversation rebuilt from its journal asks for its agents again."""

    conversation: Ref
    counted: tuple[str, ...]  # agents whose limit this conversation counts against
    monitors: tuple[str, ...] = ()  # supervisors (not counted)


@dataclass(frozen=True, slots=True)
class AgentRef:
    """An agent entity tells a rebuilt conversation where it is now."""

    agent_id: str
    agent: Ref


# ---------------------------------------------------------------- router


@dataclass(frozen=True, slots=True)
class EnqueueRequest:
    request_id: str
    conversation: Ref
    queue: str
    excluded: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CancelRequest:
    request_id: str


@dataclass(frozen=True, slots=True)
class RoutingOutcome:
    """An agent entity tells the Router how an assignment ended."""

    request_id: str
    agent_id: str
    accepted: bool
    refused: bool = False  # declined because the conversation would not have this agent


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


# ---------------------------------------------------------------- TopicMonitor <-> Archivist


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
