"""The archive's tables in PostgreSQL, their version, and connecting to them.

The tables are those of the SQLite archive (:mod:`infra.archive_schema`), with PostgreSQL's
types (``bigint`` times in milliseconds, ``jsonb`` payloads: ``data->>'text'`` reads them).
``archive_schema_version`` holds their version (:data:`SCHEMA_VERSION`): a database without
it gets the tables, one of version 1 (``bytea`` msgpack payloads) is migrated by a writer
that opens it (:mod:`infra.archive_migrate`), one of another version is refused with
:class:`ArchiveSchemaError` before anything is read or written. Creation and migration run
under a transaction-scoped advisory lock, so processes opening the archive together create
or migrate the tables once.

One contact-center room per customer is a partial unique index, so two nodes racing to create
a customer's room cannot both succeed: the second write fails and that node reads the
first's room.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

from infra.archive_errors import StorageError
from infra.archive_migrate import migrate_pg
from infra.archive_rows import PayloadError
from infra.pg import open_connection

SCHEMA_VERSION = 3
#: The advisory lock taken while the tables are checked or created (any fixed number).
SCHEMA_LOCK = 0x63786172  # "cxar"

#: What version 2 added to version 1's tables (a migration creates them as they are).
_NEW_IN_2 = (
    "ALTER TABLE conversations ADD COLUMN touched bigint NOT NULL DEFAULT 0",
    "CREATE INDEX conversations_touched ON conversations (touched)",
    "CREATE INDEX conversations_created ON conversations (created_at)",
    "CREATE INDEX conversations_ended ON conversations (ended_at)",
    "CREATE INDEX conversations_customer ON conversations (customer_id)",
    """CREATE TABLE webhooks (
        name text PRIMARY KEY, since bigint NOT NULL, skipped bigint NOT NULL DEFAULT 0)""",
    """CREATE TABLE webhook_cursors (
        webhook text NOT NULL, conversation_id text NOT NULL, seq bigint NOT NULL,
        PRIMARY KEY (webhook, conversation_id))""",
    "CREATE INDEX webhook_cursors_conversation ON webhook_cursors (conversation_id)",
)

#: Tables that version 3 added: members and messages of rooms.
_NEW_IN_3 = (
    """CREATE TABLE room_members (
        room_id text NOT NULL, agent_id text NOT NULL, position integer NOT NULL,
        PRIMARY KEY (room_id, agent_id))""",
    """CREATE TABLE room_messages (
        room_id text NOT NULL, seq bigint NOT NULL, message_id text NOT NULL,
        author_id text NOT NULL, text text NOT NULL, timestamp bigint NOT NULL,
        PRIMARY KEY (room_id, seq), UNIQUE (room_id, message_id))""",
)

_TABLES = (
    """CREATE TABLE rooms (
        id text PRIMARY KEY, type text NOT NULL, mode text NOT NULL,
        customer_id text NOT NULL, created_at bigint NOT NULL)""",
    """CREATE UNIQUE INDEX rooms_contact_center ON rooms (customer_id)
        WHERE type = 'CUSTOMER' AND mode = 'CONTACT_CENTER'""",
    "CREATE INDEX rooms_customer ON rooms (customer_id)",
    "CREATE TABLE customers (id text PRIMARY KEY, name text)",
    """CREATE TABLE identities (
        customer_id text NOT NULL, channel text NOT NULL, identifier text NOT NULL,
        PRIMARY KEY (customer_id, channel, identifier))""",
    """CREATE TABLE conversations (
        id text PRIMARY KEY, room_id text NOT NULL, customer_id text NOT NULL,
        state text NOT NULL, direction text NOT NULL, created_at bigint NOT NULL,
        ended_at bigint, data jsonb NOT NULL, seq bigint NOT NULL)""",
    "CREATE INDEX conversations_room ON conversations (room_id, created_at, id)",
    """CREATE TABLE channel_sessions (
        id text PRIMARY KEY, conversation_id text NOT NULL, position integer NOT NULL,
        channel text NOT NULL, identifier text NOT NULL, state text NOT NULL, end_reason text,
        started_at bigint NOT NULL, ended_at bigint, data jsonb NOT NULL)""",
    "CREATE INDEX channel_sessions_conversation ON channel_sessions (conversation_id, position)",
    """CREATE TABLE participants (
        conversation_id text NOT NULL, id text NOT NULL, position integer NOT NULL,
        type text NOT NULL, role text NOT NULL, state text NOT NULL,
        joined_at bigint NOT NULL, left_at bigint,
        PRIMARY KEY (conversation_id, id))""",
    """CREATE TABLE events (
        conversation_id text NOT NULL, seq bigint NOT NULL, name text NOT NULL,
        type text NOT NULL, timestamp bigint NOT NULL, emitter_id text NOT NULL,
        emitter_type text NOT NULL, channel_session_id text, data jsonb NOT NULL,
        PRIMARY KEY (conversation_id, seq))""",
    *_NEW_IN_2,
    *_NEW_IN_3,
)


class ArchiveSchemaError(StorageError):
    """The database has no archive tables where they must exist, or tables of another
    version than this engine's."""


def connect(dsn: str, *, application_name: str, create: bool) -> psycopg.Connection[dict[str, Any]]:
    """A connection (autocommit, rows as dicts) to a database whose archive tables are this
    engine's version; ``create``: make them if missing. Raises psycopg.Error if the server
    cannot be reached, :class:`ArchiveSchemaError` for missing or foreign tables."""
    connection = open_connection(dsn, application_name=application_name, row_factory=dict_row)
    try:
        check_schema(connection, create=create)
    except BaseException:
        connection.close()
        raise
    return connection


def check_schema(connection: psycopg.Connection[Any], *, create: bool) -> None:
    with connection.transaction():
        if create:
            connection.execute("SELECT pg_advisory_xact_lock(%s)", [SCHEMA_LOCK])
            connection.execute(
                "CREATE TABLE IF NOT EXISTS archive_schema_version (version integer NOT NULL)"
            )
        elif (
            _first(connection.execute("SELECT to_regclass('archive_schema_version')").fetchone())
            is None
        ):
            raise ArchiveSchemaError("the database has no archive tables (archive_schema_version)")
        row = connection.execute("SELECT max(version) AS version FROM archive_schema_version")
        found = _first(row.fetchone())
        if found is None and create:
            for statement in _TABLES:
                connection.execute(statement)
            connection.execute(
                "INSERT INTO archive_schema_version (version) VALUES (%s)", [SCHEMA_VERSION]
            )
        elif found in (1, 2) and create:
            try:
                if found == 1:
                    migrate_pg(connection, _NEW_IN_2)
                for statement in _NEW_IN_3:
                    connection.execute(statement)
            except PayloadError as exc:
                raise ArchiveSchemaError(f"PostgreSQL archive: cannot migrate: {exc}") from exc
            connection.execute(
                "INSERT INTO archive_schema_version (version) VALUES (%s)", [SCHEMA_VERSION]
            )
        elif found != SCHEMA_VERSION:
            raise ArchiveSchemaError(
                f"the PostgreSQL archive's tables are version {found}; this engine reads"
                f" version {SCHEMA_VERSION}: nothing was read or written"
            )


def _first(row: Any) -> Any:
    """The single value of a one-column row, whatever the connection's row factory."""
    if row is None:
        return None
    return next(iter(row.values())) if isinstance(row, dict) else row[0]
