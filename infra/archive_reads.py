"""The archive's reads, written once for both backends.

:class:`ArchiveReads` holds every query of the archive; the SQLite archive
(:class:`infra.archive.Archive`) and the PostgreSQL archive (:class:`infra.archive_pg.PgArchive`)
each give it ``_rows``, which runs one statement and returns its rows by column name. The
statements use ``?`` placeholders and standard SQL only; the PostgreSQL archive turns the
placeholders into its driver's ``%s``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from domain.enums import RoomMode, RoomType
from domain.records import ConversationRecord, Event
from infra.archive_errors import StorageError
from infra.archive_rows import (
    PayloadError,
    RoomRecord,
    StoredRow,
    conversation_record,
    event_record,
    room_record,
)


class ArchiveReads:
    """Every read of the archive, over the backend's ``_rows``."""

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> Sequence[StoredRow]:
        """The rows of one statement; raises StorageError (or a subclass) on a fault."""
        raise NotImplementedError

    def room(self, room_id: str) -> RoomRecord | None:
        rows = self._rows("SELECT * FROM rooms WHERE id = ?", (room_id,))
        return room_record(rows[0]) if rows else None

    def contact_center_room_of(self, customer_id: str) -> RoomRecord | None:
        # By customer_id alone (the plain index; a customer has a few rooms at most), then
        # the kind here: in SQLite the same query with type and mode bound took three times
        # as long.
        for room in self.rooms_of_customer(customer_id):
            if room.type is RoomType.CUSTOMER and room.mode is RoomMode.CONTACT_CENTER:
                return room
        return None

    def rooms_of_customer(self, customer_id: str) -> list[RoomRecord]:
        return [
            room_record(row)
            for row in self._rows("SELECT * FROM rooms WHERE customer_id = ?", (customer_id,))
        ]

    def has_identity(self, customer_id: str, channel: str, identifier: str) -> bool:
        """Whether ``record_customer_identity`` already stored this identity (a read: a
        returning customer's session needs no write)."""
        return bool(
            self._rows(
                "SELECT 1 FROM identities WHERE customer_id = ? AND channel = ? AND identifier = ?",
                (customer_id, str(channel), identifier),
            )
        )

    def has_conversation(self, conversation_id: str) -> bool:
        return bool(self._rows("SELECT 1 FROM conversations WHERE id = ?", (conversation_id,)))

    def conversation_of_session(self, session_id: str) -> str | None:
        rows = self._rows(
            "SELECT conversation_id FROM channel_sessions WHERE id = ?", (session_id,)
        )
        return str(rows[0]["conversation_id"]) if rows else None

    def conversation(self, conversation_id: str) -> ConversationRecord | None:
        rows = self._rows("SELECT * FROM conversations WHERE id = ?", (conversation_id,))
        return self._conversation(rows[0]) if rows else None

    def room_conversations(self, room_id: str) -> list[ConversationRecord]:
        """The room's archived conversations, oldest first (created_at, then id)."""
        rows = self._rows(
            "SELECT * FROM conversations WHERE room_id = ? ORDER BY created_at, id", (room_id,)
        )
        return [self._conversation(row) for row in rows]

    def conversations_between(
        self, start_ms: int, end_ms: int, *, after: tuple[int, str] | None = None, limit: int = 500
    ) -> list[ConversationRecord]:
        """Up to ``limit`` archived conversations created in ``[start_ms, end_ms)``, oldest
        first (created_at, then id); ``after``: only those after this (created_at, id), the
        last of the previous page."""
        since, last_id = after if after is not None else (start_ms, "")
        rows = self._rows(
            "SELECT * FROM conversations WHERE created_at >= ? AND created_at < ?"
            " AND (created_at > ? OR (created_at = ? AND id > ?))"
            " ORDER BY created_at, id LIMIT ?",
            (start_ms, end_ms, since, since, last_id, limit),
        )
        return [self._conversation(row) for row in rows]

    def events(self, conversation_id: str, after_seq: int = 0) -> list[Event]:
        """The conversation's events with seq > ``after_seq``, in seq order."""
        rows = self._rows(
            "SELECT e.*, c.room_id FROM events e JOIN conversations c ON c.id = e.conversation_id"
            " WHERE e.conversation_id = ? AND e.seq > ? ORDER BY e.seq",
            (conversation_id, after_seq),
        )
        try:
            return [event_record(row) for row in rows]
        except PayloadError as exc:
            raise StorageError(str(exc)) from exc

    def last_seq(self, conversation_id: str) -> int:
        """The highest sequence number stored for the conversation; 0 if none."""
        (row,) = self._rows(
            "SELECT (SELECT MAX(seq) FROM events WHERE conversation_id = ?) AS events_seq,"
            " (SELECT seq FROM conversations WHERE id = ?) AS conversation_seq",
            (conversation_id, conversation_id),
        )
        return max(int(row["events_seq"] or 0), int(row["conversation_seq"] or 0))

    def ids_taken(
        self,
        *,
        conversation_id: str | None = None,
        session_id: str | None = None,
        room_id: str | None = None,
    ) -> bool:
        """Whether any of the given ids is already stored (so a fresh id must be drawn)."""
        checks = (
            ("conversations", conversation_id),
            ("channel_sessions", session_id),
            ("rooms", room_id),
        )
        return any(
            self._rows(f"SELECT 1 FROM {table} WHERE id = ?", (value,))
            for table, value in checks
            if value is not None
        )

    def counts(self) -> dict[str, int]:
        return {
            table: int(self._rows(f"SELECT COUNT(*) AS n FROM {table}")[0]["n"])
            for table in ("conversations", "events", "rooms")
        }

    def _conversation(self, row: StoredRow) -> ConversationRecord:
        conversation_id: str = row["id"]
        participants = self._rows(
            "SELECT * FROM participants WHERE conversation_id = ? ORDER BY position",
            (conversation_id,),
        )
        sessions = self._rows(
            "SELECT * FROM channel_sessions WHERE conversation_id = ? ORDER BY position",
            (conversation_id,),
        )
        try:
            return conversation_record(row, participants, sessions)
        except PayloadError as exc:
            raise StorageError(str(exc)) from exc
