"""The archive in PostgreSQL: rooms, customers and closed conversations of every node in one
database, with the SQLite archive's operations and guarantees (:class:`infra.archive.Archive`).

Idempotence is the same: a conversation and its sessions and participants are upserted, its
events keyed by ``(conversation_id, seq)`` and inserted ``ON CONFLICT DO NOTHING``, so storing
twice stores once and a retry stores exactly what is missing. Each write is one transaction.

Connections. One connection per archive object (an actor process holds one): the actors of a
process are single-threaded, so a pool inside it would only hold idle connections; what pools
connections across processes is the server (``max_connections``) or a pooler in front of it.
A connection the server dropped is replaced at the next call. ``storage.fsync`` sets the
session's ``synchronous_commit`` as for the journal (:data:`infra.pg.SYNCHRONOUS_COMMIT`).

Errors, as the SQLite archive's: :class:`~infra.archive.ArchiveUnavailable` when the server
cannot be reached or refuses to write now (retry later); :class:`~infra.archive.StorageError`
for other faults; a second contact-center room of a customer is the caller's mistake
(``ValueError``) and writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any

import psycopg
from psycopg.types.string import TextLoader

from domain.records import ConversationRecord, Event
from infra.archive_errors import ArchiveUnavailable, StorageError
from infra.archive_pg_schema import connect
from infra.archive_rooms import ArchiveRooms
from infra.archive_rows import (
    RoomRecord,
    Snapshot,
    check_events,
    rows_of_conversation,
    rows_of_events,
)
from infra.pg import SYNCHRONOUS_COMMIT, describe
from infra.timefmt import wall_ms

APPLICATION = "cx-archive"
PgRow = dict[str, Any]

_ROOM = (
    "INSERT INTO rooms (id, type, mode, customer_id, created_at)"
    " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING"
)
_CONVERSATION = (
    "INSERT INTO conversations (id, room_id, customer_id, state, direction, created_at,"
    " ended_at, data, seq, touched) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (id) DO UPDATE SET state = excluded.state, ended_at = excluded.ended_at,"
    " data = excluded.data, seq = GREATEST(conversations.seq, excluded.seq),"
    " touched = excluded.touched"
)
_SESSION = (
    "INSERT INTO channel_sessions (id, conversation_id, position, channel, identifier, state,"
    " end_reason, started_at, ended_at, data) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (id) DO UPDATE SET position = excluded.position, state = excluded.state,"
    " end_reason = excluded.end_reason, ended_at = excluded.ended_at, data = excluded.data"
    " WHERE channel_sessions.conversation_id = excluded.conversation_id"
)
_PARTICIPANT = (
    "INSERT INTO participants (conversation_id, id, position, type, role, state, joined_at,"
    " left_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (conversation_id, id) DO UPDATE SET position = excluded.position,"
    " type = excluded.type, role = excluded.role, state = excluded.state,"
    " joined_at = excluded.joined_at, left_at = excluded.left_at"
)
_EVENT = (
    "INSERT INTO events (conversation_id, seq, name, type, timestamp, emitter_id,"
    " emitter_type, channel_session_id, data) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (conversation_id, seq) DO NOTHING"
)


class PgArchive(ArchiveRooms):
    """The archive in the PostgreSQL database ``dsn``. Not shared between threads."""

    def __init__(
        self, dsn: str, *, read_only: bool = False, create: bool = True, fsync: str = "always"
    ) -> None:
        """``read_only``: every transaction is read-only. ``create=False``: the tables must
        exist already (a reader beside the writer that created them)."""
        self._dsn, self._read_only, self._create = dsn, read_only, create and not read_only
        self._fsync = fsync
        #: Write transactions begun (committed or not): how often this archive tried to write.
        self.write_attempts = 0
        self._db: psycopg.Connection[PgRow] | None = None
        self._connection()  # fail now, naming why, rather than at the first call

    def _connection(self) -> psycopg.Connection[PgRow]:
        if self._db is not None and not (self._db.closed or self._db.broken):
            return self._db
        try:
            db = connect(self._dsn, application_name=APPLICATION, create=self._create)
            # jsonb payloads come as their JSON text, decoded by archive_rows.unpack as
            # SQLite's are (bytes restored), not as the driver's dicts.
            db.adapters.register_loader("jsonb", TextLoader)
            db.execute(
                "SELECT set_config('synchronous_commit', %s, false),"
                " set_config('default_transaction_read_only', %s, false)",
                [SYNCHRONOUS_COMMIT[self._fsync], "on" if self._read_only else "off"],
            )
        except psycopg.OperationalError as exc:
            raise ArchiveUnavailable(
                f"PostgreSQL archive: cannot connect: {describe(exc)}"
            ) from exc
        except psycopg.Error as exc:
            raise StorageError(f"PostgreSQL archive: cannot open: {describe(exc)}") from exc
        self._db = db
        return db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> PgArchive:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- transactions -------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[psycopg.Connection[PgRow]]:
        """One write transaction: all of it commits, or none of it."""
        self.write_attempts += 1
        db = self._connection()
        try:
            with db.transaction():
                yield db
        except (psycopg.OperationalError, psycopg.errors.ReadOnlySqlTransaction) as exc:
            raise ArchiveUnavailable(
                f"PostgreSQL archive: cannot write now: {describe(exc)}"
            ) from exc
        except psycopg.Error as exc:
            raise StorageError(f"PostgreSQL archive: write failed: {describe(exc)}") from exc

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[PgRow]:
        """The rows of a read of :class:`~infra.archive_reads.ArchiveReads` (its ``?``
        placeholders become the driver's ``%s``; no read holds a ``?`` or a ``%`` otherwise)."""
        db = self._connection()
        try:
            return db.execute(sql.replace("?", "%s"), params).fetchall()
        except psycopg.OperationalError as exc:
            raise ArchiveUnavailable(f"PostgreSQL archive: read failed: {describe(exc)}") from exc
        except psycopg.Error as exc:
            raise StorageError(f"PostgreSQL archive: read failed: {describe(exc)}") from exc

    def _run_writes(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        with self._write() as db:
            return [
                db.execute(sql.replace("?", "%s"), params).rowcount for sql, params in statements
            ]

    # -- rooms and customers ------------------------------------------------------------------

    def create_room(self, room: RoomRecord) -> None:
        """Store a room; storing the same id again does nothing. Raises ``ValueError`` if
        the customer already has another contact-center room."""
        with self._write() as db:
            self._insert_room(db, room)

    def _insert_room(self, db: psycopg.Connection[PgRow], room: RoomRecord) -> None:
        values = (room.id, room.type.value, room.mode.value, room.customer_id, room.created_at)
        try:
            db.execute(_ROOM, values)
        except psycopg.errors.UniqueViolation as exc:
            raise ValueError(
                f"customer {room.customer_id} already has a contact-center room"
                f" (refused room {room.id})"
            ) from exc

    def record_customer_identity(
        self, customer_id: str, channel: str, identifier: str, *, new_room: RoomRecord | None = None
    ) -> None:
        """Remember that ``identifier`` on ``channel`` is this customer; idempotent.
        ``new_room``: also store this room, in the same transaction (as ``create_room``)."""
        with self._write() as db:
            if new_room is not None:
                self._insert_room(db, new_room)
            db.execute(
                "INSERT INTO customers (id, name) VALUES (%s, NULL) ON CONFLICT (id) DO NOTHING",
                (customer_id,),
            )
            db.execute(
                "INSERT INTO identities (customer_id, channel, identifier) VALUES (%s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                (customer_id, str(channel), identifier),
            )

    # -- conversations ------------------------------------------------------------------------

    def store_conversation(self, record: ConversationRecord, events: Sequence[Event]) -> None:
        """Store a conversation snapshot and its events in one transaction; safe to repeat."""
        self.store_conversations([(record, events)])

    def store_conversations(self, snapshots: Sequence[Snapshot]) -> None:
        """Store several conversations' snapshots in one transaction (group commit): all of
        them or none (``ValueError`` for any of them stores none); safe to repeat."""
        rows = [rows_of_conversation(record, events) for record, events in snapshots]
        with self._write() as db, db.cursor() as cursor:
            cursor.executemany(_CONVERSATION, [one.conversation for one in rows])
            for row in (session for one in rows for session in one.sessions):
                cursor.execute(_SESSION, row)
                if cursor.rowcount == 0:  # the id is another conversation's: a collision
                    raise ValueError(f"channel session {row[0]} belongs to another conversation")
            participants = [row for one in rows for row in one.participants]
            if participants:
                cursor.executemany(_PARTICIPANT, participants)
            events = [row for one in rows for row in one.events]
            if events:
                cursor.executemany(_EVENT, events)

    def append_events(self, conversation_id: str, events: Sequence[Event]) -> None:
        """Add late events to an archived conversation; safe to repeat. Raises ``KeyError``
        if the conversation is not archived."""
        if not events:
            return
        room_id = events[0].room_id
        check_events(conversation_id, room_id, events)
        event_rows = rows_of_events(events)
        with self._write() as db:
            cursor = db.execute(
                "UPDATE conversations SET seq = GREATEST(seq, %s), touched = %s"
                " WHERE id = %s AND room_id = %s",
                (max(e.seq for e in events), wall_ms(), conversation_id, room_id),
            )
            if cursor.rowcount == 0:
                raise KeyError(f"conversation {conversation_id} of room {room_id} is not archived")
            cursor.executemany(_EVENT, event_rows)
