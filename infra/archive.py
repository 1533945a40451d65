"""Permanent storage of rooms, customers and closed conversations, in one SQLite file.

Schema (``PRAGMA user_version = 1``; a file with another non-zero version is refused)::

    rooms(id PK, type, mode, customer_id, created_at)
        at most one CUSTOMER/CONTACT_CENTER room per customer (a partial unique index)
    customers(id PK, name NULL)
    identities(customer_id, channel, identifier)              PK: all three
    conversations(id PK, room_id, customer_id, state, direction, created_at, ended_at,
                  data BLOB, seq)                             indexed by (room_id, created_at, id)
    channel_sessions(id PK, conversation_id, position, channel, identifier, state, end_reason,
                     started_at, ended_at, data BLOB)        indexed by conversation_id
    participants(conversation_id, id, position, type, role, state, joined_at, left_at)
                                                              PK: (conversation_id, id)
    events(conversation_id, seq, name, type, timestamp, emitter_id, emitter_type,
           channel_session_id, data BLOB)                     PK: (conversation_id, seq)

Times are int milliseconds since the epoch; enums are stored as their string values; payloads
(``data``) are msgpack maps, decoded strictly. ``position`` keeps the order of a record's
sessions and participants so that a record read back equals the record written. An event's
``room_id`` is not repeated per event: it is its conversation's.

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
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import msgpack

from domain.enums import (
    Channel,
    Direction,
    EventType,
    ParticipantState,
    ParticipantType,
    Role,
    RoomMode,
    RoomType,
    SessionEndReason,
    SessionState,
    State,
)
from domain.records import (
    ConversationRecord,
    Emitter,
    Event,
    ParticipantRecord,
    Payload,
    SessionRecord,
)

SCHEMA_VERSION = 1
#: Largest payload we agree to decode; a bigger one is a corrupt or hostile row, not data.
MAX_PAYLOAD_BYTES = 16 * 1024 * 1024

_SCHEMA = (
    """CREATE TABLE rooms (
        id TEXT PRIMARY KEY, type TEXT NOT NULL, mode TEXT NOT NULL,
        customer_id TEXT NOT NULL, created_at INTEGER NOT NULL)""",
    # One contact-center room per customer, enforced by the file itself so that two racing
    # creators cannot both succeed.
    """CREATE UNIQUE INDEX rooms_contact_center ON rooms(customer_id)
        WHERE type = 'CUSTOMER' AND mode = 'CONTACT_CENTER'""",
    "CREATE INDEX rooms_customer ON rooms(customer_id)",
    "CREATE TABLE customers (id TEXT PRIMARY KEY, name TEXT)",
    """CREATE TABLE identities (
        customer_id TEXT NOT NULL, channel TEXT NOT NULL, identifier TEXT NOT NULL,
        PRIMARY KEY (customer_id, channel, identifier))""",
    """CREATE TABLE conversations (
        id TEXT PRIMARY KEY, room_id TEXT NOT NULL, customer_id TEXT NOT NULL,
        state TEXT NOT NULL, direction TEXT NOT NULL, created_at INTEGER NOT NULL,
        ended_at INTEGER, data BLOB NOT NULL, seq INTEGER NOT NULL)""",
    "CREATE INDEX conversations_room ON conversations(room_id, created_at, id)",
    """CREATE TABLE channel_sessions (
        id TEXT PRIMARY KEY, conversation_id TEXT NOT NULL, position INTEGER NOT NULL,
        channel TEXT NOT NULL, identifier TEXT NOT NULL, state TEXT NOT NULL, end_reason TEXT,
        started_at INTEGER NOT NULL, ended_at INTEGER, data BLOB NOT NULL)""",
    "CREATE INDEX channel_sessions_conversation ON channel_sessions(conversation_id, position)",
    """CREATE TABLE participants (
        conversation_id TEXT NOT NULL, id TEXT NOT NULL, position INTEGER NOT NULL,
        type TEXT NOT NULL, role TEXT NOT NULL, state TEXT NOT NULL,
        joined_at INTEGER NOT NULL, left_at INTEGER,
        PRIMARY KEY (conversation_id, id))""",
    """CREATE TABLE events (
        conversation_id TEXT NOT NULL, seq INTEGER NOT NULL, name TEXT NOT NULL,
        type TEXT NOT NULL, timestamp INTEGER NOT NULL, emitter_id TEXT NOT NULL,
        emitter_type TEXT NOT NULL, channel_session_id TEXT, data BLOB NOT NULL,
        PRIMARY KEY (conversation_id, seq))""",
)


_SYNCHRONOUS = {"always": "FULL", "interval": "NORMAL", "never": "OFF"}


class StorageError(Exception):
    """The storage's fault (disk, lock, permissions, corrupt or foreign file), not the caller's."""


class ArchiveUnavailable(StorageError):
    """The archive cannot be written now (locked, read-only, disk full); retry later."""


@dataclass(frozen=True, slots=True)
class RoomRecord:
    id: str
    type: RoomType
    mode: RoomMode
    customer_id: str
    created_at: int


class Archive:
    """One SQLite archive file (or ``":memory:"``). Not shared between threads."""

    def __init__(
        self,
        path: Path | str,
        *,
        busy_timeout_ms: int = 5000,
        read_only: bool = False,
        fsync: str = "always",
    ) -> None:
        in_memory = str(path) == ":memory:"
        if in_memory and read_only:
            raise ValueError("a read-only archive needs a file")
        self._name = ":memory:" if in_memory else str(Path(path))
        #: Write transactions begun (committed or not): how often this archive tried to write.
        self.write_attempts = 0
        try:
            if in_memory:
                target, uri = ":memory:", False
            elif read_only:
                target, uri = Path(path).resolve().as_uri() + "?mode=ro", True
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
            if not in_memory and not read_only:
                # WAL: readers never block the writer and vice versa. storage.fsync picks
                # durability against a machine crash: always = FULL (every commit is on disk
                # before CLOSED), interval = NORMAL (WAL synced at checkpoints), never = OFF.
                # Against a process crash every commit is safe under all three.
                self._db.execute("PRAGMA journal_mode = WAL")
                self._db.execute(f"PRAGMA synchronous = {_SYNCHRONOUS[fsync]}")
            self._open_schema(read_only)
        except BaseException as exc:
            self._db.close()
            if isinstance(exc, sqlite3.Error):  # e.g. "file is not a database"
                raise StorageError(f"{self._name}: cannot open: {exc}") from exc
            raise

    def _open_schema(self, read_only: bool) -> None:
        try:
            version = self._version()
            if version == 0 and not read_only:
                with self._write():
                    # Read again under the write lock: another process may have just created it.
                    version = self._version()
                    if version == 0:
                        if self._db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone():
                            raise StorageError(
                                f"{self._name}: not an archive (tables but no schema version)"
                            )
                        for statement in _SCHEMA:
                            self._db.execute(statement)
                        self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                        version = SCHEMA_VERSION
        except sqlite3.Error as exc:
            raise StorageError(f"{self._name}: cannot read the archive: {exc}") from exc
        if version != SCHEMA_VERSION:
            raise StorageError(
                f"{self._name}: archive schema version {version}, expected {SCHEMA_VERSION}"
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

    def room(self, room_id: str) -> RoomRecord | None:
        rows = self._rows("SELECT * FROM rooms WHERE id = ?", (room_id,))
        return _room(rows[0]) if rows else None

    def contact_center_room_of(self, customer_id: str) -> RoomRecord | None:
        # By customer_id alone (the plain index; a customer has a few rooms at most), then
        # the kind here: the same query with type and mode bound took three times as long.
        for row in self._rows("SELECT * FROM rooms WHERE customer_id = ?", (customer_id,)):
            if (
                row["type"] == RoomType.CUSTOMER.value
                and row["mode"] == RoomMode.CONTACT_CENTER.value
            ):
                return _room(row)
        return None

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

    def has_identity(self, customer_id: str, channel: str, identifier: str) -> bool:
        """Whether ``record_customer_identity`` already stored this identity (a read: a
        returning customer's session needs no write)."""
        return bool(
            self._rows(
                "SELECT 1 FROM identities WHERE customer_id = ? AND channel = ? AND identifier = ?",
                (customer_id, str(channel), identifier),
            )
        )

    # -- conversations ------------------------------------------------------------------------

    def store_conversation(self, record: ConversationRecord, events: Sequence[Event]) -> None:
        """Store a conversation snapshot and its events in one transaction; safe to repeat."""
        for session in record.channel_sessions:
            if session.conversation_id != record.id:
                raise ValueError(
                    f"channel session {session.id} belongs to conversation"
                    f" {session.conversation_id}, not {record.id}"
                )
        _check_events(record.id, record.room_id, events)
        # Encode before the transaction: a payload that cannot be encoded fails before any lock.
        data = _pack(record.data)
        sessions = [
            (s.id, s.conversation_id, position, s.channel.value, s.identifier, s.state.value,
             None if s.end_reason is None else s.end_reason.value,
             s.started_at, s.ended_at, _pack(s.data))
            for position, s in enumerate(record.channel_sessions)
        ]  # fmt: skip
        participants = [
            (record.id, p.id, position, p.type.value, p.role.value, p.state.value,
             p.joined_at, p.left_at)
            for position, p in enumerate(record.participants)
        ]  # fmt: skip
        event_rows = _event_rows(events)
        with self._write():
            # The identity of a conversation (room, customer, direction, created_at) never
            # changes; its state does. seq never goes back, even if an older snapshot is
            # stored again after late events were appended.
            self._db.execute(
                "INSERT INTO conversations (id, room_id, customer_id, state, direction,"
                " created_at, ended_at, data, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET state = excluded.state,"
                " ended_at = excluded.ended_at, data = excluded.data,"
                " seq = MAX(conversations.seq, excluded.seq)",
                (record.id, record.room_id, record.customer_id, record.state.value,
                 record.direction.value, record.created_at, record.ended_at, data, record.seq),
            )  # fmt: skip
            for row in sessions:
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
                participants,
            )
            self._insert_events(event_rows)

    def append_events(self, conversation_id: str, events: Sequence[Event]) -> None:
        """Add late events (activities) to an archived conversation; safe to repeat.

        Raises ``KeyError`` if the conversation is not archived.
        """
        if not events:
            return
        room_id = events[0].room_id
        _check_events(conversation_id, room_id, events)
        event_rows = _event_rows(events)
        with self._write():
            cursor = self._db.execute(
                "UPDATE conversations SET seq = MAX(seq, ?) WHERE id = ? AND room_id = ?",
                (max(e.seq for e in events), conversation_id, room_id),
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

    def events(self, conversation_id: str, after_seq: int = 0) -> list[Event]:
        """The conversation's events with seq > ``after_seq``, in seq order."""
        rows = self._rows(
            "SELECT e.*, c.room_id FROM events e JOIN conversations c ON c.id = e.conversation_id"
            " WHERE e.conversation_id = ? AND e.seq > ? ORDER BY e.seq",
            (conversation_id, after_seq),
        )
        return [
            Event(
                conversation_id=row["conversation_id"],
                room_id=row["room_id"],
                seq=row["seq"],
                name=row["name"],
                type=EventType(row["type"]),
                timestamp=row["timestamp"],
                emitter=Emitter(row["emitter_id"], _emitter_type(row["emitter_type"])),
                channel_session_id=row["channel_session_id"],
                data=_unpack(row["data"], conversation_id),
            )
            for row in rows
        ]

    def last_seq(self, conversation_id: str) -> int:
        """The highest sequence number stored for the conversation; 0 if none."""
        rows = self._rows(
            "SELECT MAX(COALESCE((SELECT MAX(seq) FROM events WHERE conversation_id = ?), 0),"
            " COALESCE((SELECT seq FROM conversations WHERE id = ?), 0))",
            (conversation_id, conversation_id),
        )
        return int(rows[0][0])

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
            table: int(self._rows(f"SELECT COUNT(*) FROM {table}")[0][0])
            for table in ("conversations", "events", "rooms")
        }

    def _conversation(self, row: sqlite3.Row) -> ConversationRecord:
        conversation_id: str = row["id"]
        participants = self._rows(
            "SELECT * FROM participants WHERE conversation_id = ? ORDER BY position",
            (conversation_id,),
        )
        sessions = self._rows(
            "SELECT * FROM channel_sessions WHERE conversation_id = ? ORDER BY position",
            (conversation_id,),
        )
        return ConversationRecord(
            id=conversation_id,
            room_id=row["room_id"],
            customer_id=row["customer_id"],
            state=State(row["state"]),
            direction=Direction(row["direction"]),
            created_at=row["created_at"],
            ended_at=row["ended_at"],
            participants=tuple(
                ParticipantRecord(
                    id=p["id"],
                    type=ParticipantType(p["type"]),
                    role=Role(p["role"]),
                    state=ParticipantState(p["state"]),
                    joined_at=p["joined_at"],
                    left_at=p["left_at"],
                )
                for p in participants
            ),
            channel_sessions=tuple(
                SessionRecord(
                    id=s["id"],
                    conversation_id=conversation_id,
                    channel=Channel(s["channel"]),
                    identifier=s["identifier"],
                    state=SessionState(s["state"]),
                    end_reason=(
                        None if s["end_reason"] is None else SessionEndReason(s["end_reason"])
                    ),
                    started_at=s["started_at"],
                    ended_at=s["ended_at"],
                    data=_unpack(s["data"], conversation_id),
                )
                for s in sessions
            ),
            data=_unpack(row["data"], conversation_id),
            seq=row["seq"],
        )


def _room(row: sqlite3.Row) -> RoomRecord:
    return RoomRecord(
        id=row["id"],
        type=RoomType(row["type"]),
        mode=RoomMode(row["mode"]),
        customer_id=row["customer_id"],
        created_at=row["created_at"],
    )


def _check_events(conversation_id: str, room_id: str, events: Sequence[Event]) -> None:
    # The room is stored once per conversation, so an event of another room would be lost.
    for event in events:
        if event.conversation_id != conversation_id or event.room_id != room_id:
            raise ValueError(
                f"event {event.id} of room {event.room_id} does not belong to conversation"
                f" {conversation_id} of room {room_id}"
            )


def _event_rows(events: Sequence[Event]) -> list[tuple[Any, ...]]:
    return [
        (e.conversation_id, e.seq, e.name, str(e.type), e.timestamp, e.emitter.id,
         str(e.emitter.type), e.channel_session_id, _pack(e.data))
        for e in events
    ]  # fmt: skip


def _emitter_type(value: str) -> ParticipantType | str:
    try:
        return ParticipantType(value)
    except ValueError:
        return value  # "SYSTEM": the engine itself


def _plain(value: object) -> object:
    # msgpack packs dicts only; payloads are typed as Mapping (possibly read-only views).
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"cannot archive a value of type {type(value).__name__}")


def _pack(payload: Payload) -> bytes:
    packed: bytes = msgpack.packb(dict(payload), use_bin_type=True, default=_plain)
    return packed


def _unpack(blob: object, conversation_id: str) -> dict[str, Any]:
    if not isinstance(blob, bytes):
        raise StorageError(f"conversation {conversation_id}: payload is not a blob")
    if len(blob) > MAX_PAYLOAD_BYTES:
        raise StorageError(f"conversation {conversation_id}: payload of {len(blob)} bytes")
    try:
        # unpackb bounds every string, array and map by len(blob); keys must be str; ext
        # types are refused as we never write any.
        value = msgpack.unpackb(blob, raw=False, strict_map_key=True, ext_hook=_no_ext)
    except ValueError as exc:
        # Also msgpack's ExtraData, FormatError and StackError, truncated input, bad UTF-8.
        raise StorageError(f"conversation {conversation_id}: corrupt payload: {exc}") from exc
    if not isinstance(value, dict):
        raise StorageError(f"conversation {conversation_id}: payload is not a map")
    return value


def _no_ext(code: int, data: bytes) -> object:
    raise ValueError(f"unexpected msgpack ext type {code}")
