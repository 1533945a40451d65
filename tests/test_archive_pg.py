"""The archive in PostgreSQL: what the SQLite file cannot show (several processes racing on one
database, a server that goes away, the schema's version), and the engine archiving there.
The operations themselves run on both backends in ``tests/test_archive.py``."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from domain.enums import RoomMode, RoomType
from infra.archive_errors import ArchiveUnavailable
from infra.archive_pg import APPLICATION, PgArchive
from infra.archive_pg_schema import ArchiveSchemaError
from infra.archive_rows import RoomRecord
from runtime.gateway import Gateway
from tests.journal_pg_support import pg_config, sql
from tests.test_archive import ROOM, make_conversation


def contact_center_room(room_id: str, customer_id: str = "cust-9") -> RoomRecord:
    return RoomRecord(room_id, RoomType.CUSTOMER, RoomMode.CONTACT_CENTER, customer_id, 1_000)


def test_two_nodes_racing_to_create_a_customers_room_end_with_one_room(postgres_dsn: str) -> None:
    PgArchive(postgres_dsn).close()  # the tables exist before the race
    start = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def node(room_id: str) -> None:
        with PgArchive(postgres_dsn) as archive:
            start.wait()
            try:
                archive.record_customer_identity(
                    "cust-9", "WEB", f"visitor-{room_id}", new_room=contact_center_room(room_id)
                )
                outcomes[room_id] = "created"
            except ValueError:
                outcomes[room_id] = "refused"

    threads = [threading.Thread(target=node, args=(r,)) for r in ("room-a", "room-b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes.values()) == ["created", "refused"]
    (winner,) = [room for room, outcome in outcomes.items() if outcome == "created"]
    with PgArchive(postgres_dsn, read_only=True) as reader:
        assert reader.contact_center_room_of("cust-9") == contact_center_room(winner)
        assert reader.counts()["rooms"] == 1
    # the refused node's identity was not stored either (one transaction with its room)
    assert sql(postgres_dsn, "SELECT identifier FROM identities") == [(f"visitor-{winner}",)]


def test_an_archive_of_another_schema_version_is_refused_before_anything_is_written(
    postgres_dsn: str,
) -> None:
    PgArchive(postgres_dsn).close()
    sql(postgres_dsn, "UPDATE archive_schema_version SET version = 99")
    with pytest.raises(ArchiveSchemaError, match="version 99"):
        PgArchive(postgres_dsn)
    assert sql(postgres_dsn, "SELECT count(*) FROM rooms") == [(0,)]


def test_a_reader_does_not_create_the_tables(postgres_dsn: str) -> None:
    with pytest.raises(ArchiveSchemaError, match="no archive tables"):
        PgArchive(postgres_dsn, create=False)
    assert sql(postgres_dsn, "SELECT to_regclass('rooms')") == [(None,)]


def test_a_read_only_archive_is_unavailable_for_writes(postgres_dsn: str) -> None:
    PgArchive(postgres_dsn).close()
    with PgArchive(postgres_dsn, read_only=True) as reader:
        with pytest.raises(ArchiveUnavailable, match="cannot write now"):
            reader.create_room(ROOM)
        assert reader.room(ROOM.id) is None


def test_a_cut_connection_is_unavailable_then_the_next_call_reconnects_and_stores_once(
    postgres_dsn: str,
) -> None:
    record, events = make_conversation()
    with PgArchive(postgres_dsn) as archive:
        archive.create_room(ROOM)
        sql(
            postgres_dsn,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            APPLICATION,
        )
        with pytest.raises(ArchiveUnavailable):
            archive.store_conversation(record, events)
        archive.store_conversation(record, events)  # the retry, on a new connection
        archive.store_conversation(record, events)  # and again: stored once
        assert archive.conversation(record.id) == record
        assert archive.counts() == {"conversations": 1, "events": len(events), "rooms": 1}


def test_the_engine_archives_a_closed_conversation_in_postgres_and_reads_its_history_there(
    tmp_path: Path, postgres_dsn: str
) -> None:
    with Gateway.embedded(pg_config(tmp_path, postgres_dsn), seed=0) as gw:
        ref = gw.start_session("cust-1", "WEB", "visitor-1")
        gw.customer_message(ref.channel_session_id, "hello")
        gw.end_session(ref.channel_session_id)
        gw.advance(3600)
        history = gw.history(ref.room_id)
        events = gw.events(ref.conversation_id)
    assert [c["id"] for c in history] == [ref.conversation_id]
    assert history[0]["state"] == "CLOSED"
    stored = sql(
        postgres_dsn, "SELECT count(*) FROM events WHERE conversation_id = %s", ref.conversation_id
    )
    assert stored == [(len(events),)]
    assert list(tmp_path.iterdir()) == []  # no SQLite file, no journal directory
