"""The journal in PostgreSQL: every node's hosts write one shared database.

A :class:`PgJournal` is one conversation host's journal (the :class:`~infra.journal_store.Journal`
interface, as :class:`~infra.journal.JournalWriter` is for files);
:class:`~infra.journal_pg_store.PgStore` finds, fences, reads and deletes writers' journals
for recovery. The tables are in :mod:`infra.journal_pg_schema`.

Writing. Records are buffered while a host handles one Thespian message; :meth:`PgJournal.flush`
writes them with one statement, its own transaction: an array insert of every frame (numbered
on from the writer's last ``seq``), the deletion of the frames of conversations the host forgot
(archived or moved), both only if the writer's ``journal_writer`` row, locked ``FOR SHARE``,
still has this writer's epoch and is not fenced. ``storage.fsync`` sets the session's
``synchronous_commit``: ``always`` -> ``on`` (the commit returns once its WAL is flushed to
disk: group commit), ``interval`` and ``never`` -> ``off`` (the commit returns at once; the WAL
writer flushes within three times ``wal_writer_delay``, 600 ms by default: a crash of the
*server* loses at most that much acknowledged work, a crash of the engine loses nothing).

Failing. A statement that fails (the server gone, the connection cut) raises
:class:`~infra.journal.JournalWriteFailed`; the transaction rolled back, so nothing of that
flush is stored (unless the commit landed and only its answer was lost: then the frames are
stored and the rebuild from :meth:`PgJournal.durable_records` includes them). The journal is
then failed until :meth:`PgJournal.probe` connects again. A fenced writer's flush raises
:class:`WriterFenced` and writes nothing, and it stays failed for good.
"""

from __future__ import annotations

import contextlib
import errno
from dataclasses import dataclass, field
from typing import Any

import psycopg

from infra import failpoints
from infra.journal import COMPACT_AFTER_S, JournalWriteFailed
from infra.journal_pg_schema import connect
from infra.journal_read import JournalRead, assemble
from infra.journal_records import Record
from infra.journal_segment import (
    Damage,
    JournalError,
    JournalUnreadable,
    encode_frame,
    frame_at,
)
from infra.pg import SYNCHRONOUS_COMMIT, describe

APPLICATION = "cx-journal"

_REGISTER = (
    "INSERT INTO journal_writer (writer_id, epoch) VALUES (%s, 1)"
    " ON CONFLICT (writer_id) DO UPDATE SET epoch = journal_writer.epoch + 1"
    " WHERE NOT journal_writer.fenced RETURNING epoch"
)
_LAST_SEQ = "SELECT coalesce(max(seq), 0) FROM journal_frame WHERE writer_id = %s"
_WRITER = """
WITH writer AS (
    SELECT 1 FROM journal_writer
    WHERE writer_id = %(writer)s AND epoch = %(epoch)s AND NOT fenced
    FOR SHARE
)"""
_DELETE = """, gone AS (
    DELETE FROM journal_frame
    WHERE writer_id = %(writer)s AND conversation_id = ANY(%(forgotten)s::text[])
    AND EXISTS (SELECT 1 FROM writer)
)"""
_INSERT = """, added AS (
    INSERT INTO journal_frame (writer_id, seq, conversation_id, frame)
    SELECT %(writer)s, s, c, f
    FROM unnest(%(seqs)s::bigint[], %(conversations)s::text[], %(frames)s::bytea[]) AS t(s, c, f)
    WHERE EXISTS (SELECT 1 FROM writer)
)
SELECT EXISTS (SELECT 1 FROM writer)
"""
#: One flush: the writer's row checked and locked, the frames inserted (and, with forgotten
#: conversations, theirs deleted), in one statement: one transaction, one round trip.
_FLUSH = _WRITER + _INSERT
_FLUSH_FORGETTING = _WRITER + _DELETE + _INSERT
_FRAMES = "SELECT seq, frame FROM journal_frame WHERE writer_id = %s ORDER BY seq"
_FRAMES_OF = (
    "SELECT frame FROM journal_frame WHERE writer_id = %s AND conversation_id = %s ORDER BY seq"
)


class WriterFenced(JournalWriteFailed):
    """This writer was declared dead (its journal fenced, or registered again elsewhere):
    it may never write again."""


@dataclass
class PgJournal:
    """One host's journal in PostgreSQL (see the module's docstring)."""

    dsn: str
    writer_id: str
    fsync: str = "interval"
    failure: str | None = None  # why the last write failed, until a probe succeeds
    holds_events = True  # every published event can be read back (records_of)
    fenced: bool = False
    _connection: psycopg.Connection[Any] | None = None
    _epoch: int = 0
    _seq: int = 0
    _pending: list[tuple[str, bytes]] = field(default_factory=list)
    # conversation -> how many pending records were added before it was forgotten
    _forgotten: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            self._register()
        except (psycopg.Error, OSError, JournalError) as error:
            self._fail(describe(error))

    @property
    def name(self) -> str:
        return f"PostgreSQL journal of {self.writer_id}"

    @property
    def pending(self) -> bool:
        return bool(self._pending)

    def add(self, conversation_id: str, record: Record) -> None:
        self._pending.append((conversation_id, encode_frame(record)))

    def flush(self) -> None:
        """Write what was added, and delete what was forgotten, in one transaction; raises
        :class:`JournalWriteFailed` (nothing of it stored) if the server refuses it,
        :class:`WriterFenced` if this writer may no longer write. With nothing added, only
        the deletion is tried (:meth:`compact`), and only a fence makes that raise."""
        if not self._pending:
            if self._forgotten and not self.compact() and self.fenced:
                raise WriterFenced(f"{self.name}: {self.failure}")
            return
        batch, self._pending = self._pending, []
        # The batch is gone, stored or not: later records of a forgotten conversation count.
        forgotten, self._forgotten = self._forgotten, dict.fromkeys(self._forgotten, 0)
        if self.failure is not None:
            failed = WriterFenced if self.fenced else JournalWriteFailed
            raise failed(f"{self.name} is failing: {self.failure}")
        rows = [
            (conversation_id, frame)
            for index, (conversation_id, frame) in enumerate(batch)
            if index >= forgotten.get(conversation_id, 0)
        ]
        try:
            stored = self._store(rows, list(forgotten))
        except (psycopg.Error, OSError, JournalError) as error:
            self._fail(describe(error))
            raise JournalWriteFailed(f"{self.name}: write failed: {self.failure}") from error
        if not stored:
            self._fence_off()
            raise WriterFenced(f"{self.name}: {self.failure}")
        self._seq += len(rows)
        for conversation_id in forgotten:
            self._forgotten.pop(conversation_id, None)

    def sync_due_in_ms(self) -> int | None:
        return None  # the server's WAL writer syncs what ``synchronous_commit = off`` left

    def sync_if_due(self) -> None:
        return None

    def probe(self) -> bool:
        """While failed: whether the server takes this writer's writes again (it connects,
        checks that the writer is not fenced, and reads where its journal ends: a commit whose
        answer was lost may have landed). Clears :attr:`failure` if so."""
        if self.failure is None:
            return True
        if self.fenced:
            return False
        try:
            if self._epoch == 0 and not self._register():  # it could not when it started
                return False
            connection = self._connect()
            row = connection.execute(
                "SELECT epoch, fenced FROM journal_writer WHERE writer_id = %s", [self.writer_id]
            ).fetchone()
            if row is None or row[1] or row[0] != self._epoch:
                self._fence_off()
                return False
            self._seq = _last_seq(connection, self.writer_id)
        except (psycopg.Error, OSError, JournalError) as error:
            self._fail(describe(error))
            return False
        self.failure = None
        return True

    def records_of(self, conversation_id: str) -> list[dict[str, Any]]:
        """Every record of one conversation: those stored, then those added but not yet
        written. OSError if the server cannot be read."""
        try:
            rows = self._connect().execute(_FRAMES_OF, [self.writer_id, conversation_id]).fetchall()
        except (psycopg.Error, JournalError) as error:
            self._drop_connection()
            raise OSError(errno.EIO, f"{self.name}: {describe(error)}") from error
        frames = [bytes(row[0]) for row in rows]
        frames += [frame for c, frame in self._pending if c == conversation_id]
        return [record for record, _ in map(_decode, frames) if record is not None]

    def durable_records(self) -> list[Record]:
        """Every record stored for this writer, in order; :class:`JournalUnreadable` if the
        server cannot be read."""
        return read_frames(self._connect(), self.writer_id, salvage=True).records

    def forget(self, conversation_id: str) -> None:
        """The conversation needs no record from here: its frames are deleted by the next
        flush (with those added before this call)."""
        self._forgotten[conversation_id] = len(self._pending)

    def compaction_due(self, after_s: float = COMPACT_AFTER_S) -> bool:
        """Whether forgotten conversations' frames wait for a flush that has nothing else to
        write (``after_s`` plays no part: the deletion is cheap)."""
        return bool(self._forgotten) and not self._pending and self.failure is None

    def compact(self) -> bool:
        """Delete forgotten conversations' frames now. False, and nothing changed, if the
        server refuses (tried again with the next flush; the journal is not failed by it) or
        the writer is fenced (it is then failed for good)."""
        if self._pending or self.failure is not None:
            return False
        forgotten = list(self._forgotten)
        try:
            stored = self._store([], forgotten)
        except (psycopg.Error, OSError, JournalError):
            self._drop_connection()
            return False
        if not stored:
            self._fence_off()
            return False
        for conversation_id in forgotten:
            self._forgotten.pop(conversation_id, None)
        return True

    def synchronous_commit(self) -> str:
        """What the server applies to this writer's commits (``SHOW synchronous_commit`` in
        its session)."""
        row = self._connect().execute("SHOW synchronous_commit").fetchone()
        return str(row[0]) if row is not None else ""

    def close(self) -> None:
        with contextlib.suppress(JournalWriteFailed):
            self.flush()
        self._drop_connection()

    # ------------------------------------------------------------------ internals

    def _store(self, rows: list[tuple[str, bytes]], forgotten: list[str]) -> bool:
        """One statement: ``rows`` inserted and ``forgotten`` conversations' frames deleted,
        if this writer is still registered and not fenced (False, and nothing done, if not).
        Raises what the server or the connection raises."""
        failpoints.check("journal.write")
        written = (
            self._connect()
            .execute(
                _FLUSH_FORGETTING if forgotten else _FLUSH,
                {
                    "writer": self.writer_id,
                    "epoch": self._epoch,
                    "forgotten": forgotten,
                    "seqs": list(range(self._seq + 1, self._seq + 1 + len(rows))),
                    "conversations": [c for c, _ in rows],
                    "frames": [f for _, f in rows],
                },
                prepare=True,
                binary=True,
            )
            .fetchone()
        )
        return written is not None and bool(written[0])

    def _register(self) -> bool:
        """Take the next epoch of this writer id (fencing out an earlier writer of it); False
        if the id is fenced."""
        connection = self._connect()
        row = connection.execute(_REGISTER, [self.writer_id]).fetchone()
        if row is None:
            self._fence_off()
            return False
        self._epoch = int(row[0])
        self._seq = _last_seq(connection, self.writer_id)
        return True

    def _connect(self) -> psycopg.Connection[Any]:
        """The writer's connection, opened (and its commit setting made) if it has none."""
        if self._connection is None or self._connection.closed:
            try:
                connection = connect(self.dsn, application_name=f"{APPLICATION} {self.writer_id}")
            except psycopg.Error as error:
                raise JournalUnreadable(f"{self.name}: {describe(error)}") from error
            connection.execute(
                "SELECT set_config('synchronous_commit', %s, false)",
                [SYNCHRONOUS_COMMIT[self.fsync]],
            )
            self._connection = connection
        return self._connection

    def _fail(self, problem: str) -> None:
        self.failure = problem
        self._drop_connection()

    def _fence_off(self) -> None:
        self.fenced = True
        self.failure = f"writer {self.writer_id} is fenced: it was declared dead"

    def _drop_connection(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(psycopg.Error):
                self._connection.close()
            self._connection = None


def _last_seq(connection: psycopg.Connection[Any], writer_id: str) -> int:
    row = connection.execute(_LAST_SEQ, [writer_id]).fetchone()
    return int(row[0]) if row is not None else 0


def _decode(frame: bytes) -> tuple[Record | None, str]:
    return frame_at(frame, 0)


def read_frames(
    connection: psycopg.Connection[Any], writer_id: str, *, salvage: bool
) -> JournalRead:
    """Every record of ``writer_id`` in order; a row that does not decode is damage, as in a
    segment (a torn tail if it is the last)."""
    try:
        rows = connection.execute(_FRAMES, [writer_id]).fetchall()
    except psycopg.Error as error:
        raise JournalUnreadable(f"PostgreSQL journal of {writer_id}: {describe(error)}") from error
    records: list[Record] = []
    found: list[tuple[int, Damage]] = []
    place = f"PostgreSQL journal of {writer_id}, seq"
    for index, (seq, frame) in enumerate(rows):
        record, problem = _decode(bytes(frame))
        if record is not None:
            records.append(record)
            continue
        last = index == len(rows) - 1
        found.append((len(records), Damage(place, int(seq), int(seq) + 1, problem, tail=last)))
    return assemble(records, found, salvage=salvage)
