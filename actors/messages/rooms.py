"""Rooms from a gateway, through the TopicMonitor to the Archivist of the room: creating a
private or team room, writing in a team room, and reading rooms, members and history."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domain.enums import RoomMode, RoomType
from domain.pickling import pickle_by_field_names


@dataclass(frozen=True, slots=True)
class CreateRoom:
    """A PRIVATE customer room with its advisors, or a TEAM room with its members (in order);
    ``customer_id`` is ``''`` for a TEAM room."""

    room_id: str
    type: RoomType
    mode: RoomMode
    customer_id: str
    members: tuple[str, ...]

    @property
    def key(self) -> str:
        return self.room_id


@dataclass(frozen=True, slots=True)
class PostToRoom:
    """A member writes in a TEAM room; the message is kept with the room's history."""

    room_id: str
    agent_id: str
    text: str
    message_id: str

    @property
    def key(self) -> str:
        return self.room_id


@dataclass(frozen=True, slots=True)
class RoomQuery:
    """``what``: ``customer`` (the customer ``key``'s rooms), ``member`` (the rooms agent
    ``key`` is a member of), ``members`` or ``history`` (of room ``key``)."""

    what: str
    key: str


RoomWork = CreateRoom | PostToRoom | RoomQuery


@dataclass(frozen=True, slots=True)
class RoomPosted:
    """A message was kept in a TEAM room: the AgentSupervisor hands ``event`` (a ROOM_MESSAGE,
    as the gateway returns events) to each of the ``members`` logged in."""

    members: tuple[str, ...]
    event: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RoomDelivery:
    """A TEAM room's message for a member's agent: pushed to its desk if one is subscribed."""

    event: dict[str, Any]


pickle_by_field_names(globals())  # after every class above: see domain.pickling
