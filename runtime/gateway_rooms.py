"""Outbound contacts and rooms: the part of :class:`runtime.gateway.Gateway`'s public API by
which an agent contacts a customer first and people use rooms beyond a customer's
contact-center room.

- :meth:`Rooms.start_outbound`: an agent opens a channel session to a customer, in the
  customer's contact-center room or a room named; the room's live conversation takes the
  session (one live conversation per room), else a new one is opened with direction
  OUTBOUND; the agent joins it (PRIMARY when no agent is, else ASSISTANT) unless it is in
  already. Nothing goes through the queue.
- :meth:`Rooms.create_room`: a PRIVATE room of a customer, whose advisors get its agent
  requests without the queue, or a TEAM room of agents and supervisors, without a customer.
- :meth:`Rooms.rooms`, :meth:`Rooms.room_members`, :meth:`Rooms.room_history`,
  :meth:`Rooms.room_message`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from actors.messages import AgentQuery, CreateRoom, OpenSession, PostToRoom, RoomQuery
from domain.enums import Channel, Direction, RoomMode, RoomType
from domain.errors import IdTaken
from domain.limits import MAX_EXTERNAL_ID, MAX_ID
from runtime.gateway_args import enum as _enum
from runtime.gateway_args import message_text as _message_text
from runtime.gateway_args import payload as _payload
from runtime.gateway_args import text as _text
from runtime.gateway_core import EngineLink
from runtime.gateway_types import BadArgumentError, GatewayError, IllegalTransitionError, SessionRef
from runtime.ids import IdSource

#: The rooms :meth:`Rooms.create_room` makes, by the ``kind`` it is given.
ROOM_KINDS: dict[str, tuple[RoomType, RoomMode]] = {
    "PRIVATE": (RoomType.CUSTOMER, RoomMode.PRIVATE),
    "TEAM": (RoomType.TEAM, RoomMode.PRIVATE),
}
#: Members a room may have.
MAX_MEMBERS = 64
#: Attempts at drawing an unused id.
_DRAWS = 16


class Rooms:
    engine: EngineLink
    _ids: IdSource

    def start_outbound(
        self,
        agent_id: str,
        customer_id: str,
        channel: str,
        identifier: str,
        *,
        room_id: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> SessionRef:
        """The agent contacts the customer on ``channel`` at ``identifier``: a new channel
        session on the live conversation of the room (the customer's contact-center room, or
        ``room_id``), or a new conversation with direction OUTBOUND; the agent joins it unless
        it is in already. Refused (nothing opened) if the agent is not logged in or is at
        its limit of conversations."""
        _text("agent_id", agent_id)
        held: dict[str, Any] = self.engine.engine("agents", AgentQuery(agent_id))
        if held["free"] <= 0:
            raise IllegalTransitionError(
                f"start_outbound refused for agent {agent_id}: it is at its limit of"
                " conversations; nothing was opened"
            )
        ref = self._open_session(
            customer_id, channel, identifier, room_id, data, Direction.OUTBOUND
        )
        participants = self.conversation(ref.conversation_id)["participants"]
        subscribed = {p["id"]: p["role"] for p in participants if p["state"] == "SUBSCRIBED"}
        if agent_id not in subscribed:
            primary = any(
                p["type"] == "AGENT" and subscribed.get(p["id"]) == "PRIMARY" for p in participants
            )
            self.agent_join(
                agent_id, ref.conversation_id, role="ASSISTANT" if primary else "PRIMARY"
            )
        return ref

    def create_room(
        self,
        kind: str,
        members: Iterable[str],
        *,
        customer_id: str | None = None,
    ) -> dict[str, Any]:
        """A ``PRIVATE`` room of ``customer_id``, whose ``members`` are its advisors (its
        agent requests go to them, without the queue), or a ``TEAM`` room (no customer)
        whose members write to each other. ``{room_id, type, mode, customer_id, members,
        created_at}``."""
        room_type, mode = _enum_room(kind)
        names = _members(members)
        if room_type is RoomType.TEAM and customer_id is not None:
            raise BadArgumentError("create_room refused: a TEAM room has no customer_id")
        if room_type is RoomType.CUSTOMER:
            if customer_id is None:
                raise BadArgumentError("create_room refused: a PRIVATE room needs a customer_id")
            _text("customer_id", customer_id, limit=MAX_ID)
        for _ in range(_DRAWS):
            request = CreateRoom(
                self._ids.new("room"), room_type, mode, customer_id or "", tuple(names)
            )
            try:
                created: dict[str, Any] = self.engine.engine("monitor", request)
            except IdTaken:
                continue
            return created
        raise GatewayError(f"could not draw an unused id in {_DRAWS} attempts")

    def rooms(
        self, *, customer_id: str | None = None, agent_id: str | None = None
    ) -> list[dict[str, Any]]:
        """The rooms of the customer ``customer_id`` (its contact-center room and private
        rooms), or those the agent ``agent_id`` is a member of (exactly one of the two), each
        as :meth:`create_room` returns it, by id."""
        if (customer_id is None) == (agent_id is None):
            raise BadArgumentError("rooms refused: give exactly one of customer_id and agent_id")
        if customer_id is not None:
            _text("customer_id", customer_id, limit=MAX_ID)
            query = RoomQuery("customer", customer_id)
        else:
            assert agent_id is not None
            _text("agent_id", agent_id)
            query = RoomQuery("member", agent_id)
        listed: list[dict[str, Any]] = self.engine.engine("monitor", query)
        return listed

    def room_members(self, room_id: str) -> list[str]:
        """The room's members (advisors of a private room), in the order they were named."""
        _text("room_id", room_id, limit=MAX_ID)
        members: list[str] = self.engine.engine("monitor", RoomQuery("members", room_id))
        return members

    def room_history(self, room_id: str) -> list[dict[str, Any]]:
        """A TEAM room's messages in order (``{seq, message_id, agent_id, text,
        timestamp}``); a customer room's archived conversations (``{conversation_id,
        direction, state, created_at, ended_at}``, oldest first)."""
        _text("room_id", room_id, limit=MAX_ID)
        history: list[dict[str, Any]] = self.engine.engine("monitor", RoomQuery("history", room_id))
        return history

    def room_message(
        self, agent_id: str, room_id: str, text: str, *, message_id: str | None = None
    ) -> dict[str, Any]:
        """A member writes in a TEAM room; the message is kept for good. ``{room_id, seq,
        message_id}``; the same ``message_id`` again is kept once."""
        _text("agent_id", agent_id)
        _text("room_id", room_id, limit=MAX_ID)
        _message_text(text)
        if message_id is not None:
            _text("message_id", message_id, limit=MAX_EXTERNAL_ID)
        mid = message_id if message_id is not None else self._ids.new("msg")
        posted: dict[str, Any] = self.engine.engine(
            "monitor", PostToRoom(room_id, agent_id, text, mid)
        )
        return posted

    def _open_session(
        self,
        customer_id: str,
        channel: str,
        identifier: str,
        room_id: str | None,
        data: Mapping[str, Any] | None,
        direction: Direction,
    ) -> SessionRef:
        _text("customer_id", customer_id, limit=MAX_ID)
        _text("identifier", identifier, limit=MAX_EXTERNAL_ID)
        if room_id is not None:
            _text("room_id", room_id, limit=MAX_ID)
        kind = _enum(Channel, "channel", channel)
        payload = _payload("data", data)
        for _ in range(_DRAWS):
            request = OpenSession(
                customer_id,
                kind,
                identifier,
                room_id,
                payload,
                self._ids.new("cs"),
                self._ids.new("conv"),
                self._ids.new("room"),
                direction,
            )
            try:
                value = self.engine.engine("monitor", request, customer=customer_id)
            except IdTaken:
                continue
            ref = SessionRef(**value)
            self.engine.locations.put_session(ref.channel_session_id, ref.conversation_id)
            return ref
        raise GatewayError(f"could not draw an unused id in {_DRAWS} attempts")

    # provided by Gateway and its Queries

    def conversation(self, conversation_id: str) -> dict[str, Any]:
        raise NotImplementedError

    def agent_join(self, agent_id: str, conversation_id: str, *, role: str = "PRIMARY") -> None:
        raise NotImplementedError


def _enum_room(kind: object) -> tuple[RoomType, RoomMode]:
    if not isinstance(kind, str) or kind.upper() not in ROOM_KINDS:
        raise BadArgumentError(
            f"create_room refused: kind must be one of {', '.join(ROOM_KINDS)}, got {kind!r:.40}"
        )
    return ROOM_KINDS[kind.upper()]


def _members(members: object) -> list[str]:
    if isinstance(members, str) or not isinstance(members, Iterable):
        raise BadArgumentError("create_room refused: members must be a list of agent ids")
    names = list(members)
    for name in names:
        _text("members", name)
    if not 0 < len(names) <= MAX_MEMBERS or len(set(names)) != len(names):
        raise BadArgumentError(
            f"create_room refused: members must be 1 to {MAX_MEMBERS} distinct agent ids"
        )
    return names
