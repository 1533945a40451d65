"""Outputs of the conversation state machine: what its actor shell must carry out.

The effects are complete: the shell performs them in order and decides nothing itself (it
never reads an event's name). A command's effects list its ``Publish`` effects first, then
where those events go (``DeliverEvents``, ``TellBot``, ``ReportState``), then the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.enums import Role, State, UnsubscribeReason
from domain.records import ConversationRecord, Emitter, Event
from domain.timers import TimerKey


@dataclass(frozen=True, slots=True)
class Publish:
    """Journal the event, then fan it out to every subscriber."""

    event: Event


@dataclass(frozen=True, slots=True)
class DeliverEvents:
    """Send the command's published events to these channel sessions and every subscribed
    agent. ``final``: they are the conversation's last events (it is CLOSED); they also go to
    ``agent_ids``, every agent that took part, and end each subscription's stream."""

    session_ids: tuple[str, ...]
    agent_ids: tuple[str, ...] = ()
    final: bool = False


@dataclass(frozen=True, slots=True)
class TellAgent:
    """Send ``events`` to an agent that is not subscribed: an offer made to it, or taken
    back (RONA, withdrawal). A subscribed agent gets every event through ``DeliverEvents``."""

    agent_id: str
    events: tuple[Event, ...]
    offer_open: bool  # whether the agent holds an offer of the conversation after these


@dataclass(frozen=True, slots=True)
class Signal:
    """A transient notice (TYPING): pushed at once to these channel sessions and to every
    subscribed agent but its emitter; it has no seq and is never journaled or archived, so a
    command whose effects are only signals is not journaled."""

    name: str
    emitter: Emitter
    channel_session_id: str | None
    at: int
    session_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TellBot:
    """Send the bot the events it reacts to, with what it knows of the conversation."""

    events: tuple[Event, ...]
    role: Role
    agent_requested: bool


@dataclass(frozen=True, slots=True)
class ReportState:
    """Tell the TopicMonitor the conversation's state changed to ``state``."""

    state: State


@dataclass(frozen=True, slots=True)
class ArmAlarm:
    """DeliverEvents ``TimerFired(key, token, percent)`` at ``at`` (ms); 100 percent is the expiry."""

    key: TimerKey
    token: int
    at: int
    percent: int


@dataclass(frozen=True, slots=True)
class DisarmTimer:
    """The timer stopped: its pending alarms may be dropped (they would be ignored anyway)."""

    key: TimerKey


@dataclass(frozen=True, slots=True)
class RouteRequest:
    request_id: str
    queue: str
    excluded: tuple[str, ...] = ()  # agents the request must not go to
    #: the agents it may go to, none other (a transfer to a named agent, a private room's
    #: advisors); empty: any agent of the queue
    agents: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CancelRoute:
    request_id: str
    queue: str  # the request's queue: its Router


@dataclass(frozen=True, slots=True)
class ReleaseAgent:
    """The agent is no longer subscribed: its capacity for this conversation is free."""

    agent_id: str
    reason: UnsubscribeReason


@dataclass(frozen=True, slots=True)
class CountAgent:
    """A supervisor barged in: the conversation now takes one of the agent's slots."""

    agent_id: str


@dataclass(frozen=True, slots=True)
class ArchiveConversation:
    """At CLOSING: write the conversation as it will be when CLOSED, with every event.

    ``closing_events`` already carry their sequence numbers; they follow the published ones
    and are published themselves once the archive transaction has committed. The shell adds
    the events it has published (its journal) to the transaction.
    """

    record: ConversationRecord
    closing_events: tuple[Event, ...]


@dataclass(frozen=True, slots=True)
class ArchiveLate:
    """Events that reached a closing conversation after its archive was written: append them."""

    events: tuple[Event, ...]


Effect = (
    Publish
    | DeliverEvents
    | TellAgent
    | Signal
    | TellBot
    | ReportState
    | ArmAlarm
    | DisarmTimer
    | RouteRequest
    | CancelRoute
    | ReleaseAgent
    | CountAgent
    | ArchiveConversation
    | ArchiveLate
)


def journaled(effects: list[Effect]) -> bool:
    """Whether the command that returned ``effects`` is journaled: it did something beyond
    transient signals (a command with no effects, or only signals, changed nothing that a
    rebuilt conversation must have)."""
    return any(not isinstance(effect, Signal) for effect in effects)
