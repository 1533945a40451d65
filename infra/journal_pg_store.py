"""Every writer's journal in one PostgreSQL database, for recovery: find, fence, read, delete.

The TopicMonitor's side of :mod:`infra.journal_pg` (a :class:`~infra.journal_store.JournalStore`).
Each operation opens a connection of its own (recovery is rare) and raises
:class:`~infra.journal_segment.JournalUnreadable` when the server cannot be reached or refuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from infra.journal_pg import APPLICATION, PgJournal, read_frames
from infra.journal_pg_schema import connect
from infra.journal_read import JournalRead
from infra.journal_segment import JournalUnreadable
from infra.pg import describe

_FENCE = (
    "INSERT INTO journal_writer (writer_id, epoch, fenced) VALUES (%s, 0, true)"
    " ON CONFLICT (writer_id) DO UPDATE SET fenced = true"
)
_WRITERS = (
    "SELECT w.writer_id FROM journal_writer w WHERE NOT w.aside AND EXISTS"
    " (SELECT 1 FROM journal_frame f WHERE f.writer_id = w.writer_id)"
    " ORDER BY w.writer_id"
)


@dataclass(frozen=True, slots=True)
class PgStore:
    """Every writer's journal in one PostgreSQL database (``storage.postgres``)."""

    dsn: str
    fsync: str = "interval"

    def open(self, writer_id: str) -> PgJournal:
        return PgJournal(self.dsn, writer_id, self.fsync)

    def writers(self) -> list[str]:
        """Writers whose journals hold frames (those moved aside excepted)."""
        with self._connection() as connection:
            rows = _run(connection.execute, _WRITERS).fetchall()
        return [str(row[0]) for row in rows]

    def fence(self, writer_id: str) -> None:
        """Mark the writer fenced. The update waits for a flush of that writer in progress
        (it holds its row ``FOR SHARE``) to commit; every later flush of it writes nothing."""
        with self._connection() as connection:
            _run(connection.execute, _FENCE, [writer_id])

    def read(self, writer_id: str, *, salvage: bool) -> JournalRead:
        with self._connection() as connection:
            return read_frames(connection, writer_id, salvage=salvage)

    def discard(self, writer_id: str) -> None:
        """Delete the writer's frames; its row stays, fenced, so that it cannot write again."""
        with self._connection() as connection:
            _run(_discard, connection, writer_id)

    def move_aside(self, writer_id: str) -> str:
        """Rename the writer's frames to ``damaged/<writer id>/<n>``, a writer marked aside
        (never restored, never written)."""
        with self._connection() as connection:
            target: str = _run(_move_aside, connection, writer_id)
        return f"PostgreSQL journal_frame rows of writer {target!r}"

    def _connection(self) -> psycopg.Connection[Any]:
        connection: psycopg.Connection[Any] = _run(
            connect, self.dsn, application_name=f"{APPLICATION} recovery"
        )
        return connection


def _run(call: Any, *args: Any, **kwargs: Any) -> Any:
    """``call(*args, **kwargs)``, a server's failure raised as :class:`JournalUnreadable`."""
    try:
        return call(*args, **kwargs)
    except psycopg.Error as error:
        raise JournalUnreadable(f"PostgreSQL journal: {describe(error)}") from error


def _discard(connection: psycopg.Connection[Any], writer_id: str) -> None:
    with connection.transaction():
        connection.execute(_FENCE, [writer_id])
        connection.execute("DELETE FROM journal_frame WHERE writer_id = %s", [writer_id])


def _move_aside(connection: psycopg.Connection[Any], writer_id: str) -> str:
    with connection.transaction():
        row = connection.execute(
            "SELECT count(*) FROM journal_writer WHERE writer_id LIKE %s",
            [f"damaged/{writer_id}/%"],
        ).fetchone()
        target = f"damaged/{writer_id}/{(row[0] if row else 0) + 1}"
        connection.execute(
            "INSERT INTO journal_writer (writer_id, epoch, fenced, aside) VALUES (%s, 0, true, true)",
            [target],
        )
        connection.execute(
            "UPDATE journal_frame SET writer_id = %s WHERE writer_id = %s", [target, writer_id]
        )
    return target
