"""Permanent storage of rooms, customers and closed conversations, in one SQLite file.

The schema is in :mod:`infra.archive_schema`; rows become domain records in
:mod:`infra.archive_rows`.

Idempotence: ``store_conversation`` writes a whole conversation in one transaction (all or
nothing) and is safe to repeat. The conversation, its sessions and its participants are upserted
(the latest snapshot wins); events are keyed by (conversation_id, seq) and inserted with
``INSERT OR IGNORE``, so an event already stored is never written again (the first write wins).
Archiving twice therefore stores once, and a retry after a failure stores exactly what is missing.
The same holds for ``append_events`` (late activities of a closed conversation).

Errors: ``ArchiveUnavailable`` when the file cannot be written now (locked, read-only, disk full:
retry later); ``StorageError`` for other faults of the storage (corrupt payload, foreign file).
Mistakes of the caller (inconsistent ids) raise ``ValueError``/``KeyError`` and write nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

from domain.records import ConversationRecord, Event
from infra.archive_errors import ArchiveUnavailable, StorageError
from infra.archive_migrate import migrate_sqlite
from infra.archive_rooms import ArchiveRooms
from infra.archive_rows import (
    PayloadError,
    RoomRecord,
    Snapshot,
    check_events,
    rows_of_conversation,
    rows_of_events,
)
from infra.archive_schema import SCHEMA, SCHEMA_VERSION, SYNCHRONOUS
from infra.timefmt import wall_ms


class Archive(ArchiveRooms):
    """One SQLite archive file (or ``":memory:"``). Not shared between threads."""

    def __init__(
        self,
        path: Path | str,
        *,
        busy_timeout_ms: int = 5000,
        read_only: bool = False,
        create: bool = True,
        fsync: str = "always",
        shared_memory: bool = False,
    ) -> None:
        """``read_only``: a connection that cannot write. ``create=False``: open an archive
        that exists, as it is: neither the file, nor its schema, nor its journal mode is
        created or changed here (a reader beside the writer that created it).
        ``shared_memory``: no file; ``path`` names a database in this process's memory that
        every connection opened with the same ``path`` shares, and that lives as long as one
        of them is open (``storage.memory``)."""
        in_memory = str(path) == ":memory:" or shared_memory
        if in_memory and (read_only or not create):
            raise ValueError("a read-only or existing archive needs a file")
        self._name = ":memory:" if str(path) == ":memory:" else str(Path(path))
        #: Write transactions begun (committed or not): how often this archive tried to write.
        self.write_attempts = 0
        try:
            if shared_memory:
                name = quote(str(Path(path)), safe="/")
                target, uri = f"file:{name}?mode=memory&cache=shared", True
            elif in_memory:
                target, uri = ":memory:", False
            elif read_only or not create:
                mode = "ro" if read_only else "rw"
                target, uri = Path(path).resolve().as_uri() + f"?mode={mode}", True
            else:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                target, uri = str(path), False
        except OSError as exc:
            raise StorageError(f"{self._name}: cannot create its directory: {exc}") from exc
        try:
            # isolation_level=None: no implicit transactions; every write is an explicit
            # BEGIN IMMEDIATE ... COMMIT below, so the boundaries are visible in the code.
            self._db = sqlite3.connect(
                target, timeout=busy_timeout_ms / 1000, isolation_level=None, uri=uri
            )
        except sqlite3.Error as exc:
            raise StorageError(f"{self._name}: cannot open: {exc}") from exc
        self._db.row_factory = sqlite3.Row
        try:
            if not in_memory and not read_only and create:
                # WAL: readers never block the writer and vice versa. storage.fsync picks
                # durability against a machine crash: always = FULL (every commit is on disk
                # before CLOSED), interval = NORMAL (WAL synced at checkpoints), never = OFF.
                # Against a process crash every commit is safe under all three.
                self._db.execute("PRAGMA journal_mode = WAL")
                self._db.execute(f"PRAGMA synchronous = {SYNCHRONOUS[fsync]}")
            self._open_schema(create=create and not read_only)
        except BaseException as exc:
            self._db.close()
            if isinstance(exc, sqlite3.Error):  # e.g. "file is not a database"
                raise StorageError(f"{self._name}: cannot open: {exc}") from exc
            raise

    def _open_schema(self, *, create: bool) -> None:
        try:
            version = self._version()
            if version == 0 and create:
                with self._write():
                    # Read again under the write lock: another process may have just created it.
                    version = self._version()
                    if version == 0:
                        if self._db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone():
                            raise StorageError(
                                f"{self._name}: not an archive (tables but no schema version)"
                            )
                        for statement in SCHEMA:
                            self._db.execute(statement)
                        self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                        version = SCHEMA_VERSION
            if version in (1, 2) and create:
                with self._write():
                    if self._version() in (1, 2):  # not migrated by another process meanwhile
                        try:
                            migrate_sqlite(self._db, self._version())
                        except PayloadError as exc:
                            raise StorageError(f"{self._name}: cannot migrate: {exc}") from exc
                        self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                    version = self._version()
        except sqlite3.Error as exc:
            raise StorageError(f"{self._name}: cannot read the archive: {exc}") from exc
        if version != SCHEMA_VERSION:
            raise StorageError(
                f"{self._name}: archive schema version {version}, expected {SCHEMA_VERSION}"
                + (" (a writer opening it migrates it)" if version in (1, 2) else "")
            )

    def _version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Archive:
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
    def _write(self) -> Iterator[None]:
        """One write transaction: all of it commits, or none of it (rollback, then re-raise)."""
        self.write_attempts += 1
        try:
            # IMMEDIATE takes the write lock now (waiting up to the busy timeout) rather than
            # at the first write, so a locked file fails before anything is done.
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException:
                # SQLite may already have rolled back by itself (e.g. disk full).
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:  # locked, read-only, disk full, I/O error
            raise ArchiveUnavailable(f"{self._name}: cannot write now: {exc}") from exc
        except sqlite3.Error as exc:
            raise StorageError(f"{self._name}: write failed: {exc}") from exc

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"{self._name}: read failed: {exc}") from exc

    def _run_writes(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        with self._write():
            return [self._db.execute(sql, params).rowcount for sql, params in statements]

    # -- rooms and customers ------------------------------------------------------------------

    def create_room(self, room: RoomRecord) -> None:
        """Store a room; storing the same id again does nothing.

        Raises ``ValueError`` if the customer already has another contact-center room.
        """
        with self._write():
            self._insert_room(room)

    def _insert_room(self, room: RoomRecord) -> None:
        try:
            # ON CONFLICT(id), not INSERT OR IGNORE: only a repeated id is ignored; a second
            # contact-center room of the customer must fail loudly, not vanish silently.
            self._db.execute(
                "INSERT INTO rooms (id, type, mode, customer_id, created_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                (room.id, room.type.value, room.mode.value, room.customer_id, room.created_at),
            )
        except sqlite3.IntegrityError as exc:
            raise ValueError(
                f"customer {room.customer_id} already has a contact-center room"
                f" (refused room {room.id})"
            ) from exc

    def record_customer_identity(
        self, customer_id: str, channel: str, identifier: str, *, new_room: RoomRecord | None = None
    ) -> None:
        """Remember that ``identifier`` on ``channel`` is this customer; idempotent.

        ``new_room``: also store this room (as ``create_room``), in the same transaction: a
        customer's first contact is one commit, not two. Raises ``ValueError`` as
        ``create_room`` does, and then stores nothing.
        """
        with self._write():
            if new_room is not None:
                self._insert_room(new_room)
            self._db.execute(
                "INSERT INTO customers (id, name) VALUES (?, NULL) ON CONFLICT (id) DO NOTHING",
                (customer_id,),
            )
            self._db.execute(
                "INSERT OR IGNORE INTO identities (customer_id, channel, identifier)"
                " VALUES (?, ?, ?)",
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
        with self._write():
            # The identity of a conversation (room, customer, direction, created_at) never
            # changes; its state does. seq never goes back, even if an older snapshot is
            # stored again after late events were appended.
            self._db.executemany(
                "INSERT INTO conversations (id, room_id, customer_id, state, direction,"
                " created_at, ended_at, data, seq, touched)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET state = excluded.state,"
                " ended_at = excluded.ended_at, data = excluded.data,"
                " seq = MAX(conversations.seq, excluded.seq), touched = excluded.touched",
                [one.conversation for one in rows],
            )
            for row in (session for one in rows for session in one.sessions):
                # The WHERE makes the update a no-op (rowcount 0) when the id belongs to
                # another conversation: that is a collision, never to be overwritten.
                cursor = self._db.execute(
                    "INSERT INTO channel_sessions (id, conversation_id, position, channel,"
                    " identifier, state, end_reason, started_at, ended_at, data)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (id) DO UPDATE SET position = excluded.position,"
                    " state = excluded.state, end_reason = excluded.end_reason,"
                    " ended_at = excluded.ended_at, data = excluded.data"
                    " WHERE channel_sessions.conversation_id = excluded.conversation_id",
                    row,
                )
                if cursor.rowcount == 0:
                    raise ValueError(f"channel session {row[0]} belongs to another conversation")
            self._db.executemany(
                "INSERT INTO participants (conversation_id, id, position, type, role, state,"
                " joined_at, left_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (conversation_id, id) DO UPDATE SET position = excluded.position,"
                " type = excluded.type, role = excluded.role, state = excluded.state,"
                " joined_at = excluded.joined_at, left_at = excluded.left_at",
                [row for one in rows for row in one.participants],
            )
            self._insert_events([row for one in rows for row in one.events])

    def append_events(self, conversation_id: str, events: Sequence[Event]) -> None:
        """Add late events (activities) to an archived conversation; safe to repeat.

        Raises ``KeyError`` if the conversation is not archived.
        """
        if not events:
            return
        room_id = events[0].room_id
        check_events(conversation_id, room_id, events)
        event_rows = rows_of_events(events)
        with self._write():
            cursor = self._db.execute(
                "UPDATE conversations SET seq = MAX(seq, ?), touched = ?"
                " WHERE id = ? AND room_id = ?",
                (max(e.seq for e in events), wall_ms(), conversation_id, room_id),
            )
            if cursor.rowcount == 0:
                raise KeyError(f"conversation {conversation_id} of room {room_id} is not archived")
            self._insert_events(event_rows)

    def _insert_events(self, rows: list[tuple[Any, ...]]) -> None:
        # OR IGNORE on the (conversation_id, seq) key: what is stored stays as stored.
        self._db.executemany(
            "INSERT OR IGNORE INTO events (conversation_id, seq, name, type, timestamp,"
            " emitter_id, emitter_type, channel_session_id, data)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
