"""Archive payloads as JSON: plain SQL reads them on both backends, what JSON cannot hold is
refused before anything is written, and archives of version 1 (msgpack payloads) are
migrated by the writer that opens them."""

from __future__ import annotations

import base64
import dataclasses
import json
import sqlite3
from pathlib import Path

import msgpack
import psycopg
import pytest

from infra.archive import Archive
from infra.archive_errors import StorageError
from infra.archive_pg import PgArchive
from infra.archive_rows import BYTES_KEY, PayloadError
from infra.archive_schema import SCHEMA_VERSION
from tests.journal_pg_support import sql
from tests.test_archive import make_conversation

PAYLOAD_TABLES = {"conversations": "id", "channel_sessions": "id", "events": "conversation_id, seq"}


def test_event_payloads_are_read_by_sqlite_json_extract(tmp_path: Path) -> None:
    record, events = make_conversation()
    with Archive(tmp_path / "a.db") as archive:
        archive.store_conversation(record, events)
    db = sqlite3.connect(tmp_path / "a.db")
    rows = db.execute(
        "SELECT seq, json_extract(data, '$.text'), json_extract(data, '$.attachments[0].size')"
        " FROM events WHERE name = 'CUSTOMER_MESSAGE'"
    ).fetchall()
    topic = db.execute("SELECT json_extract(data, '$.topic') FROM conversations").fetchall()
    db.close()
    assert rows == [(2, "héllo ✓", 2**40)]
    assert topic == [("billing",)]


def test_event_payloads_are_jsonb_read_by_postgres_arrow(postgres_dsn: str) -> None:
    record, events = make_conversation()
    with PgArchive(postgres_dsn) as archive:
        archive.store_conversation(record, events)
    assert sql(
        postgres_dsn,
        "SELECT seq, data->>'text', pg_typeof(data)::text FROM events"
        " WHERE name = 'CUSTOMER_MESSAGE'",
    ) == [(2, "héllo ✓", "jsonb")]
    assert sql(postgres_dsn, "SELECT data->>'topic' FROM conversations") == [("billing",)]


def test_bytes_in_a_payload_are_a_base64_object(tmp_path: Path) -> None:
    record, events = make_conversation()
    with Archive(tmp_path / "a.db") as archive:
        archive.store_conversation(record, events)
        assert archive.events("conv-1")[1].data["raw"] == b"\x00\xff"
    db = sqlite3.connect(tmp_path / "a.db")
    (raw,) = db.execute("SELECT json_extract(data, '$.raw') FROM events WHERE seq = 2").fetchone()
    db.close()
    assert json.loads(raw) == {BYTES_KEY: "AP8="}


@pytest.mark.parametrize(
    "data", [{"x": float("inf")}, {"x": float("nan")}, {"x": {BYTES_KEY: "AP8="}}, {"x": {1, 2}}]
)
def test_a_payload_json_cannot_hold_is_refused_and_nothing_is_written(
    tmp_path: Path, data: dict[str, object]
) -> None:
    record, events = make_conversation()
    events[1] = dataclasses.replace(events[1], data=data)
    with Archive(tmp_path / "a.db") as archive:
        with pytest.raises(PayloadError):
            archive.store_conversation(record, events)
        assert archive.counts() == {"conversations": 0, "events": 0, "rooms": 0}


# -- version 1 archives --------------------------------------------------------------------


def _msgpack_of_json(value: object) -> bytes:
    """A version-1 payload: the JSON object as msgpack, bytes as bytes again."""

    def back(item: object) -> object:
        if isinstance(item, dict):
            if list(item) == [BYTES_KEY]:
                return base64.b64decode(item[BYTES_KEY])
            return {k: back(v) for k, v in item.items()}
        if isinstance(item, list):
            return [back(v) for v in item]
        return item

    packed: bytes = msgpack.packb(back(value), use_bin_type=True)
    return packed


def _sqlite_v1(path: Path) -> None:
    """Turn an archive of this version into one of version 1: msgpack payloads, no webhook
    tables, user_version 1."""
    db = sqlite3.connect(path, isolation_level=None)
    for table, key in PAYLOAD_TABLES.items():
        for *ids, data in db.execute(f"SELECT {key}, data FROM {table}").fetchall():
            match = " AND ".join(f"{k} = ?" for k in key.split(", "))
            db.execute(
                f"UPDATE {table} SET data = ? WHERE {match}",
                (_msgpack_of_json(json.loads(data)), *ids),
            )
    db.execute("DROP TABLE webhooks")
    db.execute("DROP TABLE webhook_cursors")
    db.execute("DROP TABLE room_members")
    db.execute("DROP TABLE room_messages")
    for index in ("created", "ended", "customer", "touched"):
        db.execute(f"DROP INDEX conversations_{index}")
    db.execute("ALTER TABLE conversations DROP COLUMN touched")
    db.execute("PRAGMA user_version = 1")
    db.close()


def test_a_version_1_sqlite_archive_is_migrated_and_reads_the_same(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    record, events = make_conversation()
    with Archive(path) as archive:
        archive.store_conversation(record, events)
    _sqlite_v1(path)

    with Archive(path) as migrated:
        assert migrated.conversation("conv-1") == record
        assert migrated.events("conv-1") == events
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert db.execute(
        "SELECT json_extract(data, '$.text') FROM events WHERE seq = 2"
    ).fetchall() == [("héllo ✓",)]
    assert db.execute("SELECT count(*) FROM webhook_cursors").fetchone() == (0,)
    db.close()


def test_a_reader_refuses_a_version_1_sqlite_archive_and_leaves_it(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    record, events = make_conversation()
    with Archive(path) as archive:
        archive.store_conversation(record, events)
    _sqlite_v1(path)

    with pytest.raises(StorageError, match="version 1"):
        Archive(path, create=False)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone() == (1,)
    db.close()


def test_a_corrupt_version_1_payload_fails_the_migration_and_changes_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "a.db"
    record, events = make_conversation()
    with Archive(path) as archive:
        archive.store_conversation(record, events)
    _sqlite_v1(path)
    db = sqlite3.connect(path)
    db.execute("UPDATE events SET data = x'c1' WHERE seq = 3")
    db.commit()
    db.close()

    with pytest.raises(StorageError, match="events conv-1/3"):
        Archive(path)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone() == (1,)
    assert db.execute("SELECT typeof(data) FROM events WHERE seq = 1").fetchone() == ("blob",)
    db.close()


def test_a_version_1_postgres_archive_is_migrated_and_reads_the_same(postgres_dsn: str) -> None:
    record, events = make_conversation()
    with PgArchive(postgres_dsn) as archive:
        archive.store_conversation(record, events)
    with psycopg.connect(postgres_dsn, autocommit=True) as db:
        for table, key in PAYLOAD_TABLES.items():
            rows = db.execute(f"SELECT {key}, data FROM {table}").fetchall()
            db.execute(
                f"ALTER TABLE {table} ALTER COLUMN data TYPE bytea"
                " USING convert_to(data::text, 'UTF8')"
            )
            match = " AND ".join(f"{k} = %s" for k in key.split(", "))
            for *ids, data in rows:
                db.execute(
                    f"UPDATE {table} SET data = %s WHERE {match}", (_msgpack_of_json(data), *ids)
                )
        db.execute("DROP TABLE webhooks, webhook_cursors, room_members, room_messages")
        db.execute(
            "DROP INDEX conversations_created, conversations_ended, conversations_customer,"
            " conversations_touched"
        )
        db.execute("ALTER TABLE conversations DROP COLUMN touched")
        db.execute("UPDATE archive_schema_version SET version = 1")

    with PgArchive(postgres_dsn) as migrated:
        assert migrated.conversation("conv-1") == record
        assert migrated.events("conv-1") == events
    assert sql(postgres_dsn, "SELECT max(version) FROM archive_schema_version") == [
        (SCHEMA_VERSION,)
    ]
    assert sql(postgres_dsn, "SELECT data->>'text' FROM events WHERE seq = 2") == [("héllo ✓",)]
