"""The journal in PostgreSQL: round trip, one transaction per flush, commit settings, write
failures and probes, fencing, deleting, the schema's version, connecting, the factory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from infra.config import load_config
from infra.journal import JournalWriteFailed
from infra.journal_pg import APPLICATION, PgJournal, WriterFenced
from infra.journal_pg_schema import JournalSchemaError, connect
from infra.journal_pg_store import PgStore
from infra.journal_store import open_journal, open_store
from tests.conftest import storage_config
from tests.journal_pg_support import cut_writers, record, sql, texts


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
