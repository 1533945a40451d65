"""Rooms with members and TEAM rooms' messages in the archive, on both backends, and an
archive of the previous schema version brought up to date."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from domain.enums import RoomMode, RoomType
from infra.archive import Archive
from infra.archive_pg import PgArchive
from infra.archive_rooms import NO_CUSTOMER
from infra.archive_rows import RoomRecord
from infra.archive_schema import SCHEMA_VERSION
from infra.archive_store import ArchiveStore
from tests.journal_pg_support import sql

PRIVATE = RoomRecord("room-p", RoomType.CUSTOMER, RoomMode.PRIVATE, "cust-1", 1_000)
TEAM = RoomRecord("room-t", RoomType.TEAM, RoomMode.PRIVATE, NO_CUSTOMER, 2_000)


@pytest.fixture(params=["sqlite", "postgres"])
def archive(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ArchiveStore]:
    opened: ArchiveStore
    if request.param == "sqlite":
        opened = Archive(tmp_path / "archive.db")
    else:
        opened = PgArchive(request.getfixturevalue("postgres_dsn"))
    with opened:
        yield opened


def test_a_room_is_stored_with_its_members_in_order(archive: ArchiveStore) -> None:
    archive.store_room(PRIVATE, ["advisor-b", "advisor-a"])
    archive.store_room(PRIVATE, ["advisor-b", "advisor-a"])  # again: nothing changes
    assert archive.room("room-p") == PRIVATE
    assert archive.room_members("room-p") == ["advisor-b", "advisor-a"]
    assert archive.rooms_of_customer("cust-1") == [PRIVATE]


def test_an_agent_lists_the_rooms_it_is_a_member_of(archive: ArchiveStore) -> None:
    archive.store_room(PRIVATE, ["ann"])
    archive.store_room(TEAM, ["ann", "sue"])
    assert archive.rooms_of_member("ann") == [PRIVATE, TEAM]
    assert archive.rooms_of_member("sue") == [TEAM]


def test_team_messages_are_numbered_in_order_and_kept_once(archive: ArchiveStore) -> None:
    archive.store_room(TEAM, ["ann", "sue"])
    assert archive.post_to_room("room-t", "m1", "ann", "hello", 5_000) == 1
    assert archive.post_to_room("room-t", "m2", "sue", "hi ann", 6_000) == 2
    assert archive.post_to_room("room-t", "m1", "ann", "hello", 5_000) == 1  # re-sent
    history = archive.room_messages("room-t")
    assert [(m.seq, m.author_id, m.text) for m in history] == [
        (1, "ann", "hello"),
        (2, "sue", "hi ann"),
    ]


def test_forgetting_a_customer_deletes_their_rooms_members(archive: ArchiveStore) -> None:
    archive.store_room(PRIVATE, ["ann"])
    archive.store_room(TEAM, ["ann"])
    archive.forget_customer("cust-1")
    assert archive.room_members("room-p") == []
    assert archive.rooms_of_member("ann") == [TEAM]


def test_a_version_2_sqlite_archive_gets_the_room_tables(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    Archive(path).close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DROP TABLE room_members")
    db.execute("DROP TABLE room_messages")
    db.execute("PRAGMA user_version = 2")
    db.close()
    with Archive(path) as migrated:
        migrated.store_room(TEAM, ["ann"])
        assert migrated.room_members("room-t") == ["ann"]
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    db.close()


def test_a_version_2_postgres_archive_gets_the_room_tables(postgres_dsn: str) -> None:
    PgArchive(postgres_dsn).close()
    sql(postgres_dsn, "DROP TABLE room_members, room_messages")
    sql(postgres_dsn, "UPDATE archive_schema_version SET version = 2")
    with PgArchive(postgres_dsn) as migrated:
        migrated.store_room(TEAM, ["ann"])
        assert migrated.room_members("room-t") == ["ann"]
    assert sql(postgres_dsn, "SELECT max(version) FROM archive_schema_version") == [
        (SCHEMA_VERSION,)
    ]
