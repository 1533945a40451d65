"""Between the TopicMonitor and its room desks (``placement.room_desks`` > 1), and the
notice that tells gateways where the desks are."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from actors.messages.monitor import ForgetCustomer, OpenConversation, StoreIdentity


@dataclass(frozen=True, slots=True)
class PlaceConversation:
    """A desk opened a new conversation for a room: the monitor places it on a host, registers
    it and sends it ``opening`` (with the caller's ``ReplyTo`` this came with)."""

    customer_id: str
    session_id: str
    opening: OpenConversation


@dataclass(frozen=True, slots=True)
class SessionJoined:
    """A desk sent a channel session to its room's live conversation: the monitor can locate it."""

    conversation_id: str
    session_id: str


@dataclass(frozen=True, slots=True)
class DeskEntry:
    """The monitor to a desk: a live conversation of one of its customers, where it is now
    (placed, restored, moved off a dead host, or a new desk's table being rebuilt)."""

    conversation_id: str
    room_id: str
    customer_id: str
    state: str
    sessions: tuple[str, ...]
    host: Any
    host_id: str


@dataclass(frozen=True, slots=True)
class DeskArchive:
    """A desk's archive write, for the monitor to send to its Archivist (answered to the desk)."""

    customer_id: str
    write: StoreIdentity | ForgetCustomer


@dataclass(frozen=True, slots=True)
class DesksMoved:
    """The monitor to gateways that watch hosts: a desk was restarted; these are the desks now."""

    desks: tuple[Any, ...]
