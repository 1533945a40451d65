"""Archives of older schema versions brought to version 3, on either backend.

Version 3 adds the members and messages of rooms (``room_members``, ``room_messages``); a
version-2 archive gets those tables, a version-1 archive is first brought to version 2:

Version 1 stored payloads (``data`` of conversations, channel sessions and events) as msgpack
maps; version 2 stores them as JSON (text in SQLite, ``jsonb`` in PostgreSQL) and adds the
tables of the webhook dispatcher (``webhooks``, ``webhook_cursors``) and the indexes by time
that export and retention read. The writer that opens a version-1 archive migrates it in one
transaction: all of it, or nothing (a payload that does not decode or that JSON cannot hold
fails the migration, naming its table and key, and leaves the archive as it was).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import msgpack
import psycopg

from infra.archive_rows import MAX_PAYLOAD_BYTES, PayloadError, pack
from infra.archive_schema import INDEXES, NEW_IN_2, NEW_IN_3, TABLES

#: Rows converted per batch (bounds the memory a migration holds).
BATCH = 1000

#: The tables whose ``data`` column changes, and the columns that name one of their rows.
PAYLOAD_TABLES = {
    "conversations": ("id",),
    "channel_sessions": ("id",),
    "events": ("conversation_id", "seq"),
}


def json_of_msgpack(blob: object, where: str = "") -> str:
    """A version-1 payload (a msgpack map, decoded strictly) as version 2's JSON text."""
    if not isinstance(blob, bytes) or len(blob) > MAX_PAYLOAD_BYTES:
        raise PayloadError(f"{where}: payload is not a msgpack blob of a sane size")
    try:
        value = msgpack.unpackb(blob, raw=False, strict_map_key=True, ext_hook=_no_ext)
    except ValueError as exc:
        raise PayloadError(f"{where}: corrupt payload: {exc}") from exc
    if not isinstance(value, dict):
        raise PayloadError(f"{where}: payload is not a map")
    return pack(value)


def _no_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"unexpected msgpack ext type {code}")


def migrate_sqlite(db: sqlite3.Connection, version: int = 1) -> None:
    """Version ``version`` (1 or 2) to 3 inside the caller's write transaction: from 1, each
    payload table rebuilt with JSON text payloads (read and written in batches) and version
    2's new tables and indexes; then version 3's tables (rooms' members and messages)."""
    if version == 1:
        _sqlite_1_to_2(db)
    for table in NEW_IN_3:
        db.execute(TABLES[table])


def _sqlite_1_to_2(db: sqlite3.Connection) -> None:
    for table, key in PAYLOAD_TABLES.items():
        columns = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
        data = columns.index("data")
        db.execute(TABLES[table].replace(f"CREATE TABLE {table} (", f"CREATE TABLE {table}_v2 ("))
        insert = (
            f"INSERT INTO {table}_v2 ({', '.join(columns)})"
            f" VALUES ({', '.join('?' for _ in columns)})"
        )
        reader = db.execute(f"SELECT {', '.join(columns)} FROM {table}")
        while batch := reader.fetchmany(BATCH):
            rows = []
            for row in batch:
                where = f"{table} {'/'.join(str(row[columns.index(k)]) for k in key)}"
                rows.append((*row[:data], json_of_msgpack(row[data], where), *row[data + 1 :]))
            db.executemany(insert, rows)
        db.execute(f"DROP TABLE {table}")
        db.execute(f"ALTER TABLE {table}_v2 RENAME TO {table}")
    for table in NEW_IN_2:
        db.execute(TABLES[table])
    for table in (*PAYLOAD_TABLES, *NEW_IN_2):
        for index in INDEXES.get(table, ()):
            db.execute(index.replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS"))


def migrate_pg(connection: psycopg.Connection[Any], tables: Sequence[str]) -> None:
    """Version 1 to 2 inside the caller's transaction: each ``data`` column becomes ``jsonb``
    (converted in batches), then ``tables`` (version 2's new ones and their indexes) are
    created."""
    for table, key in PAYLOAD_TABLES.items():
        names = ", ".join(key)
        match = " AND ".join(f"{k} = %s" for k in key)
        connection.execute(f"ALTER TABLE {table} ADD COLUMN data_json jsonb")
        with connection.cursor(name=f"cx_migrate_{table}") as reader:
            reader.execute(f"SELECT {names}, data FROM {table}")
            while batch := reader.fetchmany(BATCH):
                rows = []
                for row in batch:
                    values = list(row.values()) if isinstance(row, dict) else list(row)
                    where = f"{table} {'/'.join(str(v) for v in values[:-1])}"
                    rows.append((json_of_msgpack(values[-1], where), *values[:-1]))
                with connection.cursor() as writer:
                    writer.executemany(
                        f"UPDATE {table} SET data_json = %s::jsonb WHERE {match}", rows
                    )
        connection.execute(f"ALTER TABLE {table} DROP COLUMN data")
        connection.execute(f"ALTER TABLE {table} RENAME COLUMN data_json TO data")
        connection.execute(f"ALTER TABLE {table} ALTER COLUMN data SET NOT NULL")
    for statement in tables:
        connection.execute(statement)
