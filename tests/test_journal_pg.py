"""The journal in PostgreSQL: round trip, one transaction per flush, commit settings, write
failures, fencing, the schema's version, and recovery through the engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from thespian.actors import ActorExitRequest

from infra.config import load_config
from infra.journal import JournalWriteFailed
from infra.journal_pg import APPLICATION, PgJournal, WriterFenced
from infra.journal_pg_schema import JournalSchemaError, connect
from infra.journal_pg_store import PgStore
from infra.journal_store import open_journal, open_store
from runtime import testing
from runtime.gateway import Gateway, UnavailableError
from tests.conftest import MakeGateway, storage_config


def record(conversation_id: str, text: str) -> dict[str, Any]:
    return {"k": "cmd", "c": conversation_id, "text": text}


def texts(store: PgStore, writer_id: str) -> list[str]:
    return [r["text"] for r in store.read(writer_id, salvage=False).records]


def sql(dsn: str, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as connection:
        cursor = connection.execute(statement, params or None)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


@pytest.fixture
def store(postgres_dsn: str) -> PgStore:
    return PgStore(postgres_dsn, fsync="always")


@pytest.fixture
def journal(store: PgStore) -> Iterator[PgJournal]:
    writer = store.open("host-1")
    yield writer
    writer.close()


def test_flushed_records_are_read_back_in_order(store: PgStore, journal: PgJournal) -> None:
    journal.add("a", record("a", "a1"))
    journal.add("b", record("b", "b1"))
    journal.flush()
    journal.add("a", record("a", "a2"))
    journal.flush()
    assert texts(store, "host-1") == ["a1", "b1", "a2"]
    assert [r["text"] for r in journal.records_of("a")] == ["a1", "a2"]
    assert store.writers() == ["host-1"]


def test_records_added_but_not_flushed_are_not_stored(store: PgStore, journal: PgJournal) -> None:
    journal.add("a", record("a", "a1"))
    assert texts(store, "host-1") == []
    assert [r["text"] for r in journal.records_of("a")] == ["a1"]  # pending ones included


def test_a_flush_stores_its_whole_batch_or_nothing(
    store: PgStore, journal: PgJournal, postgres_dsn: str
) -> None:
    journal.add("a", record("a", "kept"))
    journal.flush()
    sql(
        postgres_dsn,
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " IF NEW.conversation_id = 'bad' THEN RAISE EXCEPTION 'refused'; END IF;"
        " RETURN NEW; END $$",
    )
    sql(
        postgres_dsn,
        "CREATE TRIGGER refuse BEFORE INSERT ON journal_frame FOR EACH ROW EXECUTE FUNCTION refuse()",
    )
    journal.add("a", record("a", "first of the batch"))
    journal.add("bad", record("bad", "last of the batch"))
    with pytest.raises(JournalWriteFailed):
        journal.flush()
    assert texts(store, "host-1") == ["kept"]


@pytest.mark.parametrize(
    ("fsync", "setting"), [("always", "on"), ("interval", "off"), ("never", "off")]
)
def test_storage_fsync_sets_the_writers_synchronous_commit(
    postgres_dsn: str, fsync: str, setting: str
) -> None:
    writer = PgStore(postgres_dsn, fsync=fsync).open("host-1")
    try:
        assert writer.synchronous_commit() == setting
    finally:
        writer.close()


def test_a_write_whose_connection_is_cut_fails_and_stores_nothing_until_a_probe_succeeds(
    store: PgStore, journal: PgJournal, postgres_dsn: str
) -> None:
    journal.add("a", record("a", "before"))
    journal.flush()
    cut = sql(
        postgres_dsn,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
        f"{APPLICATION} host-1",
    )
    assert cut == [(True,)]
    journal.add("a", record("a", "lost with the connection"))
    with pytest.raises(JournalWriteFailed):
        journal.flush()
    assert journal.failure is not None
    journal.add("a", record("a", "refused while failing"))
    with pytest.raises(JournalWriteFailed, match="is failing"):
        journal.flush()
    assert journal.probe()
    journal.add("a", record("a", "after"))
    journal.flush()
    assert texts(store, "host-1") == ["before", "after"]


def test_a_fenced_writers_flush_raises_and_writes_nothing(
    store: PgStore, journal: PgJournal
) -> None:
    journal.add("a", record("a", "before"))
    journal.flush()
    store.fence("host-1")
    journal.add("a", record("a", "after the fence"))
    with pytest.raises(WriterFenced):
        journal.flush()
    assert texts(store, "host-1") == ["before"]
    assert not journal.probe()  # fenced for good


def test_a_fenced_writer_deletes_nothing_either(store: PgStore, journal: PgJournal) -> None:
    journal.add("a", record("a", "kept for the recovery"))
    journal.flush()
    store.fence("host-1")
    journal.forget("a")
    assert not journal.compact()
    assert texts(store, "host-1") == ["kept for the recovery"]


def test_a_writer_registered_again_under_its_id_fences_the_older_one(
    store: PgStore, journal: PgJournal
) -> None:
    newer = store.open("host-1")
    try:
        journal.add("a", record("a", "from the older"))
        with pytest.raises(WriterFenced):
            journal.flush()
        newer.add("a", record("a", "from the newer"))
        newer.flush()
    finally:
        newer.close()
    assert texts(store, "host-1") == ["from the newer"]


def test_a_fenced_writer_id_cannot_register_again(store: PgStore) -> None:
    store.fence("host-9")
    writer = store.open("host-9")
    assert writer.fenced
    writer.add("a", record("a", "x"))
    with pytest.raises(WriterFenced):
        writer.flush()


def test_a_writer_that_could_not_reach_the_server_registers_once_a_probe_does(
    store: PgStore, postgres_dsn: str, postgres_server: str
) -> None:
    assert store.writers() == []  # the tables exist
    database = conninfo_to_dict(postgres_dsn)["dbname"]
    sql(postgres_server, f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
    try:
        writer = store.open("host-1")
        assert writer.failure is not None
        assert not writer.probe()
    finally:
        sql(postgres_server, f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
    assert writer.probe()
    writer.add("a", record("a", "a1"))
    writer.flush()
    writer.close()
    assert texts(store, "host-1") == ["a1"]


def test_forgotten_conversations_frames_are_deleted_by_the_next_flush(
    store: PgStore, journal: PgJournal
) -> None:
    journal.add("a", record("a", "a1"))
    journal.add("b", record("b", "b1"))
    journal.flush()
    journal.add("a", record("a", "a closed"))
    journal.forget("a")
    journal.add("b", record("b", "b2"))
    journal.flush()
    assert texts(store, "host-1") == ["b1", "b2"]


def test_a_flush_with_nothing_to_write_does_not_fail_while_the_journal_fails(
    journal: PgJournal, postgres_dsn: str
) -> None:
    journal.add("a", record("a", "a1"))
    journal.flush()
    cut_writers(postgres_dsn)
    journal.add("b", record("b", "lost"))
    with pytest.raises(JournalWriteFailed):
        journal.flush()
    journal.forget("a")
    journal.flush()  # nothing was added: nothing to refuse
    assert journal.failure is not None


def test_records_added_after_a_failed_flush_are_kept_for_a_conversation_forgotten_before_it(
    store: PgStore, journal: PgJournal, postgres_dsn: str
) -> None:
    journal.add("a", record("a", "a1"))
    journal.add("a", record("a", "a2"))
    journal.forget("a")
    cut_writers(postgres_dsn)
    with pytest.raises(JournalWriteFailed):
        journal.flush()
    assert journal.probe()
    journal.add("a", record("a", "a3 (back on this host)"))
    journal.flush()
    assert texts(store, "host-1") == ["a3 (back on this host)"]


def test_discarding_a_writers_journal_deletes_its_frames_and_fences_it(
    store: PgStore, journal: PgJournal
) -> None:
    journal.add("a", record("a", "a1"))
    journal.flush()
    store.discard("host-1")
    assert store.writers() == []
    journal.add("a", record("a", "a2"))
    with pytest.raises(WriterFenced):
        journal.flush()


def test_a_newer_schema_is_refused_naming_both_versions(store: PgStore, postgres_dsn: str) -> None:
    assert store.writers() == []  # creates the tables
    sql(postgres_dsn, "UPDATE journal_schema_version SET version = 2")
    with pytest.raises(JournalSchemaError, match="version 2; this engine reads version 1"):
        store.writers()
    writer = store.open("host-1")
    assert writer.failure is not None and "version 2" in writer.failure


def test_a_writers_connection_gives_up_on_a_silent_server_within_seconds_unless_told_otherwise(
    postgres_dsn: str,
) -> None:
    connection = connect(postgres_dsn, application_name="test")
    with connection:
        assert connection.info.get_parameters()["tcp_user_timeout"] == "10000"
        assert connection.info.get_parameters()["keepalives_idle"] == "5"
    with connect(f"{postgres_dsn} tcp_user_timeout=60000", application_name="test") as told:
        assert told.info.get_parameters()["tcp_user_timeout"] == "60000"


def test_the_factory_picks_the_backend_that_storage_names(
    tmp_path: Path, postgres_dsn: str
) -> None:
    files = load_config(storage_config(tmp_path))
    assert type(open_store(files.storage)).__name__ == "FileStore"
    config = storage_config(tmp_path)
    config["storage"]["postgres"] = postgres_dsn
    settings = load_config(config)
    writer = open_journal(settings.storage, "host-1")
    try:
        assert isinstance(writer, PgJournal)
    finally:
        writer.close()


# ---------------------------------------------------------------- through the engine


def pg_config(tmp_path: Path, dsn: str) -> dict[str, Any]:
    config = storage_config(tmp_path)
    config["storage"]["postgres"] = dsn
    config["logging"] = {"level": "error"}
    return config


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


def customer_texts(gw: Gateway, conversation_id: str) -> list[str]:
    return [
        e["data"]["text"] for e in gw.events(conversation_id) if e["name"] == "CUSTOMER_MESSAGE"
    ]


def cut_writers(dsn: str) -> int:
    """Terminate every conversation host's journal connection, as a server restart would."""
    cut = sql(
        dsn,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE %s",
        f"{APPLICATION} host-%",
    )
    return len(cut)


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
    tmp_path: Path, store: PgStore, postgres_dsn: str
) -> None:
    assert store.writers() == []  # creates the tables
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
