"""Rooms beyond each customer's contact-center room, written once for both backends.

A customer may have PRIVATE rooms beside the contact-center room: each has named agent
members (its advisors, in the order they were named) who get its conversations directly. A
TEAM room has no customer (``customer_id`` is ``''``): its members, the agents and
supervisors of a team, write to each other, and every message is kept (``room_messages``,
numbered per room from 1, never deleted by the retention sweep).

:class:`ArchiveRooms` extends :class:`~infra.archive_upkeep.ArchiveUpkeep`; the statements
use ``?`` placeholders and SQL that SQLite and PostgreSQL both accept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from infra.archive_rows import RoomRecord, room_record
from infra.archive_upkeep import ArchiveUpkeep

#: A TEAM room's ``customer_id``: it has no customer.
NO_CUSTOMER = ""


@dataclass(frozen=True, slots=True)
class RoomMessage:
    """One message written in a TEAM room."""

    room_id: str
    seq: int
    message_id: str
    author_id: str
    text: str
    timestamp: int


class ArchiveRooms(ArchiveUpkeep):
    """Rooms with members, and the messages of TEAM rooms."""

    def store_room(self, room: RoomRecord, members: Sequence[str]) -> None:
        """Store a room with its members (in order), in one transaction; storing the same id
        again does nothing."""
        statements: list[tuple[str, Sequence[object]]] = [
            (
                "INSERT INTO rooms (id, type, mode, customer_id, created_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                (room.id, room.type.value, room.mode.value, room.customer_id, room.created_at),
            )
        ]
        statements += [
            (
                "INSERT INTO room_members (room_id, agent_id, position) VALUES (?, ?, ?)"
                " ON CONFLICT (room_id, agent_id) DO NOTHING",
                (room.id, agent_id, position),
            )
            for position, agent_id in enumerate(members)
        ]
        self._run_writes(statements)

    def room_members(self, room_id: str) -> list[str]:
        """The room's members, in the order they were named."""
        rows = self._rows(
            "SELECT agent_id FROM room_members WHERE room_id = ? ORDER BY position", (room_id,)
        )
        return [str(row["agent_id"]) for row in rows]

    def rooms_of_member(self, agent_id: str) -> list[RoomRecord]:
        """The rooms the agent is a member of, by id."""
        rows = self._rows(
            "SELECT r.* FROM rooms r JOIN room_members m ON m.room_id = r.id"
            " WHERE m.agent_id = ? ORDER BY r.id",
            (agent_id,),
        )
        return [room_record(row) for row in rows]

    def post_to_room(
        self, room_id: str, message_id: str, author_id: str, text: str, timestamp: int
    ) -> int:
        """Keep a message of the room (the next number); a message id the room has already
        kept is not kept again. Its number."""
        self._run_writes(
            [
                (
                    "INSERT INTO room_messages"
                    " (room_id, seq, message_id, author_id, text, timestamp)"
                    " SELECT ?, COALESCE(MAX(seq), 0) + 1, ?, ?, ?, ? FROM room_messages"
                    " WHERE room_id = ? ON CONFLICT (room_id, message_id) DO NOTHING",
                    (room_id, message_id, author_id, text, timestamp, room_id),
                )
            ]
        )
        rows = self._rows(
            "SELECT seq FROM room_messages WHERE room_id = ? AND message_id = ?",
            (room_id, message_id),
        )
        return int(rows[0]["seq"])

    def room_messages(self, room_id: str) -> list[RoomMessage]:
        """The room's messages, in order."""
        rows = self._rows(
            "SELECT * FROM room_messages WHERE room_id = ? ORDER BY seq", (room_id,)
        )
        return [
            RoomMessage(
                str(row["room_id"]),
                int(row["seq"]),
                str(row["message_id"]),
                str(row["author_id"]),
                str(row["text"]),
                int(row["timestamp"]),
            )
            for row in rows
        ]
