"""The Archivist's part for rooms: what a :data:`~actors.messages.rooms.RoomWork` does to the
archive and what it answers, each checked before anything is written.

- ``CreateRoom``: stores the room with its members; the same room again answers the same (a
  re-sent request), another room of that id is ``id_taken`` (the gateway draws another).
- ``PostToRoom``: only in a TEAM room (``bad_argument`` otherwise), only by one of its members
  (``bad_argument``); kept with the next number, once per message id.
- ``RoomQuery``: a customer's rooms, an agent's rooms, a room's members, a room's history (a
  TEAM room's messages; a customer room's archived conversations). A room that does not exist
  is ``unknown_id``.
"""

from __future__ import annotations

from typing import Any

from actors.messages.rooms import CreateRoom, PostToRoom, RoomPosted, RoomQuery, RoomWork
from actors.snapshots import event_dict
from domain.enums import EventType, ParticipantType, RoomType
from domain.errors import ErrorKind, error_for
from domain.events import EventName
from domain.records import Emitter, Event
from infra.archive_rows import RoomRecord
from infra.archive_store import ArchiveStore


def room_dict(room: RoomRecord, members: list[str]) -> dict[str, Any]:
    return {
        "room_id": room.id,
        "type": room.type.value,
        "mode": room.mode.value,
        "customer_id": room.customer_id or None,
        "members": members,
        "created_at": room.created_at,
    }


def room_answer(archive: ArchiveStore, work: RoomWork, now: int) -> Any:
    """Carry out ``work``; its answer. Raises the CxError of the refusal (nothing written) or StorageError."""
    if isinstance(work, CreateRoom):
        return _create(archive, work, now)
    if isinstance(work, PostToRoom):
        return _post(archive, work, now)
    return _query(archive, work)


def _create(archive: ArchiveStore, work: CreateRoom, now: int) -> dict[str, Any]:
    existing = archive.room(work.room_id)
    if existing is not None:
        same = (existing.type, existing.mode, existing.customer_id) == (
            work.type,
            work.mode,
            work.customer_id,
        )
        members = archive.room_members(work.room_id)
        if same and members == list(work.members):
            return room_dict(existing, members)
        raise error_for(ErrorKind.ID_TAKEN, f"room id {work.room_id} is taken")
    room = RoomRecord(work.room_id, work.type, work.mode, work.customer_id, now)
    archive.store_room(room, work.members)
    return room_dict(room, list(work.members))


def _post(archive: ArchiveStore, work: PostToRoom, now: int) -> dict[str, Any]:
    room = _existing(archive, work.room_id)
    if room.type is not RoomType.TEAM:
        raise error_for(
            ErrorKind.BAD_ARGUMENT,
            f"room_message refused in room {room.id}: it is a {room.type.value} room;"
            " only TEAM rooms take messages from their members",
        )
    if work.agent_id not in archive.room_members(room.id):
        raise error_for(
            ErrorKind.BAD_ARGUMENT,
            f"room_message refused in room {room.id}: agent {work.agent_id} is not a member",
        )
    seq = archive.post_to_room(room.id, work.message_id, work.agent_id, work.text, now)
    return {"room_id": room.id, "seq": seq, "message_id": work.message_id}


def room_posted(archive: ArchiveStore, work: PostToRoom, seq: int, now: int) -> RoomPosted:
    """What the room's members are pushed of a message kept as ``seq``: a ROOM_MESSAGE in the
    shape of a conversation's event (its ``seq`` the room's, its conversation id ``''``)."""
    data = {
        "room_id": work.room_id,
        "message_id": work.message_id,
        "agent_id": work.agent_id,
        "text": work.text,
    }
    author = Emitter(work.agent_id, ParticipantType.AGENT)
    kind = EventType.MESSAGE
    event = Event("", work.room_id, seq, EventName.ROOM_MESSAGE, kind, now, author, None, data)
    return RoomPosted(tuple(archive.room_members(work.room_id)), event_dict(event))


def _query(archive: ArchiveStore, work: RoomQuery) -> Any:
    if work.what == "customer":
        rooms = archive.rooms_of_customer(work.key)
        return [room_dict(r, archive.room_members(r.id)) for r in sorted(rooms, key=_by_id)]
    if work.what == "member":
        return [room_dict(r, archive.room_members(r.id)) for r in archive.rooms_of_member(work.key)]
    room = _existing(archive, work.key)
    if work.what == "members":
        return archive.room_members(room.id)
    if room.type is RoomType.TEAM:
        return [
            {
                "seq": m.seq,
                "message_id": m.message_id,
                "agent_id": m.author_id,
                "text": m.text,
                "timestamp": m.timestamp,
            }
            for m in archive.room_messages(room.id)
        ]
    return [
        {
            "conversation_id": c.id,
            "direction": c.direction.value,
            "state": c.state.value,
            "created_at": c.created_at,
            "ended_at": c.ended_at,
        }
        for c in archive.room_conversations(room.id)
    ]


def _existing(archive: ArchiveStore, room_id: str) -> RoomRecord:
    room = archive.room(room_id)
    if room is None:
        raise error_for(ErrorKind.UNKNOWN_ID, f"room {room_id} does not exist")
    return room


def _by_id(room: RoomRecord) -> str:
    return room.id
