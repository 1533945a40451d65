"""To and from a conversation entity: commands, queries, subscriptions, deliveries and alarms."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from actors.messages.envelope import Failure, Ref, ReplyTo
from domain.commands import Command
from domain.enums import Role
from domain.pickling import pickle_by_field_names
from domain.records import Event


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
    per trigger and subscriber, not one per event). ``final``: the conversation's last
    events (it is CLOSED): the last of them ends the subscriber's stream of it."""

    events: tuple[Event, ...]
    conversation: Ref
    final: bool = False
    offer_open: bool | None = None  # to an agent offered it: whether the offer still stands


@dataclass(frozen=True, slots=True)
class SignalDelivery:
    """A transient notice (TYPING) for a channel session or an agent to push to its
    subscriber at once: ``event`` as the gateway returns it, its ``seq`` None."""

    conversation_id: str
    event: dict[str, Any]


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
    the events follow each other (a channel session's: seq - 1, but after a whisper it left
    out). ``final``: the last event
    this subscription is pushed of this conversation (it is CLOSED)."""

    subscription: str
    conversation_id: str
    event: dict[str, Any]
    previous: int | None = None
    final: bool = False


@dataclass(frozen=True, slots=True)
class Alarm:
    """A timer alarm of an entity, delivered by its host's heap."""

    key: Hashable  # a TimerKey of the state machine, or an entity's own key
    token: int
    percent: int


pickle_by_field_names(globals())  # after every class above: see domain.pickling
