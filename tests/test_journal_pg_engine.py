"""The PostgreSQL journal through the engine: restarts, a dead host's writer fenced, archived
conversations deleted, write failures and an unreachable server, schema and damage at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict
from thespian.actors import ActorExitRequest

from infra.journal_pg_store import PgStore
from runtime import testing
from runtime.gateway import Gateway, UnavailableError
from tests.conftest import MakeGateway
from tests.journal_pg_support import customer_texts, cut_writers, pg_config, sql


def test_a_restart_restores_live_conversations_from_the_postgres_journal(
    tmp_path: Path, postgres_dsn: str
) -> None:
    config = pg_config(tmp_path, postgres_dsn)
    with Gateway.embedded(config, seed=0) as gw:
        ref = gw.start_session("cust-1", "WEB", "v")
        gw.advance(20)
        gw.customer_message(ref.channel_session_id, "hello", message_id="wamid-9")
        events, snapshot = gw.events(ref.conversation_id), gw.conversation(ref.conversation_id)
    assert not (tmp_path / "journal").exists()  # nothing went to files
    with Gateway.embedded(config, seed=0) as gw:
        assert gw.boot["restored"] == 1
        assert gw.events(ref.conversation_id) == events
        assert gw.conversation(ref.conversation_id) == snapshot
        gw.customer_message(ref.channel_session_id, "hello", message_id="wamid-9")  # seen before
        assert gw.events(ref.conversation_id) == events


def test_a_dead_hosts_writer_is_fenced_and_its_conversations_rebuilt_elsewhere(
    make_gateway: MakeGateway, postgres_dsn: str
) -> None:
    gw = make_gateway(storage={"postgres": postgres_dsn})
    ref = gw.start_session("cust-1", "WEB", "v")
    gw.customer_message(ref.channel_session_id, "before the host died")
    dead = testing.host_of(gw, ref.conversation_id)
    dead_writers = sql(postgres_dsn, "SELECT writer_id FROM journal_frame GROUP BY writer_id")
    testing.system(gw).tell(dead, ActorExitRequest())
    testing.forget_host(gw, ref.conversation_id)
    gw.customer_message(ref.channel_session_id, "after")
    assert testing.host_of(gw, ref.conversation_id) != dead
    texts_seen = [e["data"].get("text") for e in gw.events(ref.conversation_id)]
    assert "before the host died" in texts_seen and "after" in texts_seen
    assert dead_writers and len(dead_writers) == 1
    fenced = sql(
        postgres_dsn, "SELECT fenced FROM journal_writer WHERE writer_id = %s", dead_writers[0][0]
    )
    assert fenced == [(True,)]
    left = sql(
        postgres_dsn, "SELECT count(*) FROM journal_frame WHERE writer_id = %s", dead_writers[0][0]
    )
    assert left == [(0,)]  # its conversation is journaled again by its new host


def test_an_archived_conversations_frames_leave_the_postgres_journal(
    make_gateway: MakeGateway, postgres_dsn: str
) -> None:
    gw = make_gateway(storage={"postgres": postgres_dsn})
    closed = gw.start_session("cust-1", "WEB", "v")
    live = gw.start_session("cust-2", "WEB", "w")
    gw.end_session(closed.channel_session_id)
    assert gw.conversation(closed.conversation_id)["state"] == "CLOSED"
    stored = sql(postgres_dsn, "SELECT DISTINCT conversation_id FROM journal_frame")
    assert stored == [(live.conversation_id,)]


def test_a_message_whose_postgres_write_fails_is_unavailable_and_never_stored(
    tmp_path: Path, postgres_dsn: str
) -> None:
    config = pg_config(tmp_path, postgres_dsn)
    with Gateway.embedded(config, seed=0) as gw:
        ref = gw.start_session("cust-1", "WEB", "v")
        gw.customer_message(ref.channel_session_id, "kept")
        assert cut_writers(postgres_dsn) >= 1
        with pytest.raises(UnavailableError):
            gw.customer_message(ref.channel_session_id, "lost with the connection")
        gw.advance(2)  # the probe connects again
        gw.customer_message(ref.channel_session_id, "after")
        assert customer_texts(gw, ref.conversation_id) == ["kept", "after"]
    with Gateway.embedded(config, seed=0) as gw:
        assert customer_texts(gw, ref.conversation_id) == ["kept", "after"]


def test_conversations_wait_refused_while_the_server_is_unreachable_then_come_back(
    make_gateway: MakeGateway, postgres_dsn: str, postgres_server: str
) -> None:
    gw = make_gateway(storage={"postgres": postgres_dsn})
    ref = gw.start_session("cust-1", "WEB", "v")
    gw.customer_message(ref.channel_session_id, "kept")
    database = conninfo_to_dict(postgres_dsn)["dbname"]
    sql(postgres_server, f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
    try:
        cut_writers(postgres_server)  # pg_stat_activity shows the whole server
        with pytest.raises(UnavailableError):  # the write fails, and so does reading back
            gw.customer_message(ref.channel_session_id, "lost with the connection")
        with pytest.raises(UnavailableError):  # taken off the host until it can be rebuilt
            gw.customer_message(ref.channel_session_id, "while unreachable")
        gw.advance(2)  # a probe fails: still refused
        with pytest.raises(UnavailableError):
            gw.customer_message(ref.channel_session_id, "still unreachable")
    finally:
        sql(postgres_server, f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
    gw.advance(2)  # the probe succeeds: the conversation is rebuilt from the journal
    gw.customer_message(ref.channel_session_id, "after")
    assert customer_texts(gw, ref.conversation_id) == ["kept", "after"]


def test_a_postgres_journal_of_a_newer_schema_stops_the_start_up(
    tmp_path: Path, postgres_dsn: str
) -> None:
    assert PgStore(postgres_dsn).writers() == []  # creates the tables
    sql(postgres_dsn, "UPDATE journal_schema_version SET version = 2")
    with pytest.raises(UnavailableError, match="journal's tables are version 2"):
        Gateway.embedded(pg_config(tmp_path, postgres_dsn), seed=0)


def test_a_damaged_row_stops_the_start_up_and_a_salvage_restores_the_rest_and_moves_it_aside(
    tmp_path: Path, postgres_dsn: str
) -> None:
    config = pg_config(tmp_path, postgres_dsn)
    with Gateway.embedded(config, seed=0) as gw:
        lost = gw.start_session("cust-1", "WEB", "v")
        kept = gw.start_session("cust-2", "WEB", "w")
        gw.customer_message(kept.channel_session_id, "after the damage")
        events = gw.events(kept.conversation_id)
    ((writer, first),) = sql(
        postgres_dsn, "SELECT writer_id, min(seq) FROM journal_frame GROUP BY 1"
    )
    sql(postgres_dsn, "UPDATE journal_frame SET frame = '\\x00' WHERE seq = %s", first)
    with pytest.raises(UnavailableError, match=f"PostgreSQL journal of {writer}, seq: journal"):
        Gateway.embedded(config, seed=0)
    config["storage"]["salvage_journal"] = True
    with Gateway.embedded(config, seed=0) as gw:
        assert gw.boot["restored"] == 1
        assert [s["conversation_id"] for s in gw.boot["salvaged"]] == [lost.conversation_id]
        assert gw.events(kept.conversation_id) == events
    aside = sql(postgres_dsn, "SELECT writer_id FROM journal_writer WHERE aside")
    assert aside == [(f"damaged/{writer}/1",)]
    assert sql(postgres_dsn, "SELECT count(*) FROM journal_frame WHERE writer_id = %s", writer) == [
        (0,)
    ]
