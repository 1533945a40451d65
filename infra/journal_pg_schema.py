"""The journal's tables in PostgreSQL, their version, and connecting to them.

``journal_schema_version`` holds the version of the tables below (:data:`SCHEMA_VERSION`).
A database without it gets the tables; one of a newer version is refused with
:class:`JournalSchemaError` before anything is read or written. Creation runs under a
transaction-scoped advisory lock, so hosts starting together create the tables once.

- ``journal_writer``: one row per writer (a conversation host): its ``epoch`` (raised each
  time a writer of that id registers) and ``fenced`` (set once it was declared dead: it may
  never write again); ``aside``: a damaged journal kept for a person, not restored.
- ``journal_frame``: one row per record: ``(writer_id, seq)`` in the order written, the
  conversation it belongs to, and the frame (length, CRC-32, msgpack record, as in a segment
  file: :mod:`infra.journal_segment`).
"""

from __future__ import annotations

from typing import Any

import psycopg

from infra.journal_segment import JournalError
from infra.pg import open_connection

SCHEMA_VERSION = 1
#: The advisory lock taken while the tables are checked or created (any fixed number).
SCHEMA_LOCK = 0x63786A6F  # "cxjo"
_TABLES = (
    "CREATE TABLE journal_writer ("
    " writer_id text PRIMARY KEY,"
    " epoch bigint NOT NULL,"
    " fenced boolean NOT NULL DEFAULT false,"
    " aside boolean NOT NULL DEFAULT false)",
    "CREATE TABLE journal_frame ("
    " writer_id text NOT NULL,"
    " seq bigint NOT NULL,"
    " conversation_id text NOT NULL,"
    " frame bytea NOT NULL,"
    " PRIMARY KEY (writer_id, seq))",
    "CREATE INDEX journal_frame_conversation ON journal_frame (writer_id, conversation_id)",
)


class JournalSchemaError(JournalError):
    """The database holds journal tables of a version this engine cannot read."""


def connect(dsn: str, *, application_name: str) -> psycopg.Connection[Any]:
    """A connection in autocommit mode to a database whose journal tables are this engine's
    version (created if missing). Raises psycopg.Error if the server cannot be reached,
    :class:`JournalSchemaError` for a newer schema."""
    connection = open_connection(dsn, application_name=application_name)
    try:
        ensure_schema(connection)
    except BaseException:
        connection.close()
        raise
    return connection


def ensure_schema(connection: psycopg.Connection[Any]) -> None:
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", [SCHEMA_LOCK])
        connection.execute(
            "CREATE TABLE IF NOT EXISTS journal_schema_version (version integer NOT NULL)"
        )
        row = connection.execute("SELECT max(version) FROM journal_schema_version").fetchone()
        found = None if row is None else row[0]
        if found is None:
            for statement in _TABLES:
                connection.execute(statement)
            connection.execute(
                "INSERT INTO journal_schema_version (version) VALUES (%s)", [SCHEMA_VERSION]
            )
        elif found != SCHEMA_VERSION:
            raise JournalSchemaError(
                f"the PostgreSQL journal's tables are version {found}; this engine reads"
                f" version {SCHEMA_VERSION}: nothing was read or written"
            )
