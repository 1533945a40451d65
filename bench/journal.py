"""Benchmark: the cost of journaling per event under each fsync policy, on files and on
PostgreSQL, and archive throughput beside the raw SQLite insert rate measured in the same run.

    python -m bench.journal [--runs 5] [--events 20000] [--postgres DSN | --no-postgres]

Journaling: records shaped like a customer message (one command, three events) are added and
flushed the way a host does, once per handled message, with ``flushes`` records per flush (1:
every message is a lone command; 50: a batch from a gateway). The PostgreSQL rows write the
same records with the same flushes through :class:`~infra.journal_pg.PgJournal` into the
database ``--postgres`` names (default: ``CX_TEST_POSTGRES``; without either, a throwaway
cluster is started on this machine, in the temporary directory the file journal uses too, and
stopped at the end). Archive: conversations of 20
events each stored with ``Archive.store_conversation`` (one transaction each), against plain
``executemany`` inserts of the same number of rows into a table of the same shape, one
transaction per 20 rows, at the same ``synchronous`` level.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from domain.enums import Channel, Direction, EventType, ParticipantType, SessionState, State
from domain.records import ConversationRecord, Emitter, Event, SessionRecord
from infra.archive import Archive
from infra.journal import JournalWriter
from infra.journal_pg_store import PgStore
from infra.journal_store import Journal
from tests import pg_cluster  # the tests' throwaway cluster, for a run without a server

EVENTS_PER_RECORD = 3
EVENTS_PER_CONVERSATION = 20
SYNCHRONOUS = {"always": "FULL", "interval": "NORMAL", "never": "OFF"}


def _record(n: int) -> dict[str, object]:
    event = [
        n,
        "CUSTOMER_MESSAGE",
        "MESSAGE",
        1_700_000_000_000,
        ["cust-1", "CUSTOMER"],
        "cs-1",
        {"text": "hello, I have a question about my order", "message_id": f"m-{n}"},
    ]
    return {
        "k": "cmd",
        "c": "conv-1",
        "t": 1_700_000_000_000 + n,
        "cmd": ["CustomerMessage", {"session_id": "cs-1", "text": "hello", "message_id": f"m-{n}"}],
        "ev": [event, event, event],
    }


def _write(writer: Journal, events: int, per_flush: int) -> float:
    """Microseconds per event to add and flush ``events`` events through ``writer``."""
    records = max(1, events // EVENTS_PER_RECORD)
    started = time.perf_counter()
    for n in range(records):
        writer.add("conv-1", _record(n))
        if n % per_flush == per_flush - 1:
            writer.flush()
    writer.close()
    elapsed = time.perf_counter() - started
    return elapsed / (records * EVENTS_PER_RECORD) * 1e6


def journal_us_per_event(policy: str, events: int, per_flush: int, writers: int = 1) -> float:
    """Microseconds of wall time per event, ``writers`` file journals (hosts) writing at once
    (threads: the waits for the disk overlap)."""
    with tempfile.TemporaryDirectory() as directory:
        journals: list[Journal] = [
            JournalWriter(Path(directory) / str(n), fsync=policy, interval_ms=50)
            for n in range(writers)
        ]
        return _at_once(journals, events, per_flush)


_writers = itertools.count(1)


def pg_journal_us_per_event(
    dsn: str, policy: str, events: int, per_flush: int, writers: int = 1
) -> float:
    """The same through PostgreSQL journals, one connection each, as hosts have."""
    store = PgStore(dsn, fsync=policy)
    ids = [f"bench-{os.getpid()}-{next(_writers)}" for _ in range(writers)]
    journals = [store.open(writer_id) for writer_id in ids]
    failed = [j.failure for j in journals if j.failure is not None]
    if failed:
        raise SystemExit(f"the PostgreSQL journal cannot be written: {failed[0]}")
    try:
        return _at_once(list(journals), events, per_flush)
    finally:
        for writer_id in ids:
            store.discard(writer_id)


def _at_once(journals: list[Journal], events: int, per_flush: int) -> float:
    share = max(EVENTS_PER_RECORD, events // len(journals))
    started = time.perf_counter()
    with ThreadPoolExecutor(len(journals)) as pool:
        list(pool.map(lambda j: _write(j, share, per_flush), journals))
    elapsed = time.perf_counter() - started
    return elapsed / (len(journals) * (share // EVENTS_PER_RECORD) * EVENTS_PER_RECORD) * 1e6


@contextlib.contextmanager
def postgres(given: str | None) -> Iterator[str]:
    """The server to measure: ``given``, else ``CX_TEST_POSTGRES``, else a throwaway cluster."""
    dsn = given or os.environ.get(pg_cluster.ENV)
    if dsn:
        yield dsn
        return
    directory = pg_cluster.new_directory()
    try:
        yield pg_cluster.start(directory)
    finally:
        pg_cluster.stop(directory)


def _conversation(n: int) -> tuple[ConversationRecord, list[Event]]:
    cid = f"conv-{n}"
    events = [
        Event(
            cid,
            "room-1",
            seq,
            "CUSTOMER_MESSAGE",
            EventType.MESSAGE,
            seq,
            Emitter("c", ParticipantType.CUSTOMER),
            f"cs-{n}",
            {"text": "hello there", "message_id": f"m-{seq}"},
        )
        for seq in range(1, EVENTS_PER_CONVERSATION + 1)
    ]
    session = SessionRecord(f"cs-{n}", cid, Channel.WEB, "v", SessionState.ENDED, None, 0, 1, {})
    record = ConversationRecord(
        cid,
        "room-1",
        "cust-1",
        State.CLOSED,
        Direction.INBOUND,
        0,
        1,
        (),
        (session,),
        {},
        EVENTS_PER_CONVERSATION,
    )
    return record, events


def archive_events_per_s(policy: str, conversations: int) -> float:
    items = [_conversation(n) for n in range(conversations)]
    with tempfile.TemporaryDirectory() as directory:
        archive = Archive(Path(directory) / "archive.sqlite3", fsync=policy)
        started = time.perf_counter()
        for record, events in items:
            archive.store_conversation(record, events)
        elapsed = time.perf_counter() - started
        archive.close()
    return conversations * EVENTS_PER_CONVERSATION / elapsed


def raw_sqlite_rows_per_s(policy: str, conversations: int) -> float:
    with tempfile.TemporaryDirectory() as directory:
        db = sqlite3.connect(Path(directory) / "raw.sqlite3", isolation_level=None)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute(f"PRAGMA synchronous = {SYNCHRONOUS[policy]}")
        db.execute(
            "CREATE TABLE events (conversation_id TEXT, seq INTEGER, name TEXT, type TEXT, timestamp INTEGER,"
            " emitter_id TEXT, emitter_type TEXT, channel_session_id TEXT, data BLOB,"
            " PRIMARY KEY (conversation_id, seq))"
        )
        payload = b"\x82\xa4text\xabhello there\xaamessage_id\xa3m-1"
        started = time.perf_counter()
        for n in range(conversations):
            rows = [
                (
                    f"conv-{n}",
                    seq,
                    "CUSTOMER_MESSAGE",
                    "MESSAGE",
                    seq,
                    "c",
                    "CUSTOMER",
                    "cs",
                    payload,
                )
                for seq in range(1, EVENTS_PER_CONVERSATION + 1)
            ]
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            db.execute("COMMIT")
        elapsed = time.perf_counter() - started
        db.close()
    return conversations * EVENTS_PER_CONVERSATION / elapsed


def median(runs: int, measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(runs))


def compare_postgres(dsn: str, runs: int, events: int) -> None:
    """Events per second, files against PostgreSQL, for the same records and flushes."""
    print(f"journal: events per second, files and PostgreSQL (median of {runs} runs)")
    print(
        f"  {'fsync':<9} {'hosts':>5} {'records/flush':>13} {'files':>9} {'postgres':>9}"
        f" {'pg/files':>9}"
    )
    cases = [("always", 1, 1), ("always", 4, 1), ("always", 1, 50), ("always", 4, 50)]
    cases += [("interval", 1, 1), ("interval", 1, 50)]
    for policy, hosts, per_flush in cases:
        count = events if policy != "always" or per_flush > 1 else max(300, events // 10)

        def files(p: str = policy, c: int = count, f: int = per_flush, h: int = hosts) -> float:
            return journal_us_per_event(p, c, f, h)

        def pg(p: str = policy, c: int = count, f: int = per_flush, h: int = hosts) -> float:
            return pg_journal_us_per_event(dsn, p, c, f, h)

        on_files, on_pg = 1e6 / median(runs, files), 1e6 / median(runs, pg)
        print(
            f"  {policy:<9} {hosts:>5} {per_flush:>13} {on_files:>9.0f} {on_pg:>9.0f}"
            f" {on_pg / on_files:>9.2f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--conversations", type=int, default=1_000)
    parser.add_argument("--postgres", help="a libpq connection string (default: CX_TEST_POSTGRES)")
    parser.add_argument("--no-postgres", action="store_true", help="files only")
    args = parser.parse_args(argv)

    print(f"journal: microseconds per event (median of {args.runs} runs, {args.events} events)")
    print(f"  {'fsync':<9} {'1 record/flush':>15} {'50 records/flush':>17}")
    for policy in ("never", "interval", "always"):
        events = args.events if policy != "always" else max(300, args.events // 20)
        single = median(args.runs, lambda p=policy, e=events: journal_us_per_event(p, e, 1))
        batched = median(args.runs, lambda p=policy, e=events: journal_us_per_event(p, e, 50))
        print(f"  {policy:<9} {single:>15.2f} {batched:>17.2f}")
    if not args.no_postgres:
        with postgres(args.postgres) as dsn:
            compare_postgres(dsn, args.runs, args.events)

    print(
        f"archive: events per second (median of {args.runs} runs, {args.conversations} conversations"
        f" x {EVENTS_PER_CONVERSATION} events, one transaction per conversation)"
    )
    print(f"  {'fsync':<9} {'archive':>10} {'raw sqlite':>11} {'ratio':>6}")
    for policy in ("never", "interval", "always"):
        count = args.conversations if policy != "always" else max(50, args.conversations // 10)
        ours = median(args.runs, lambda p=policy, c=count: archive_events_per_s(p, c))
        raw = median(args.runs, lambda p=policy, c=count: raw_sqlite_rows_per_s(p, c))
        print(f"  {policy:<9} {ours:>10.0f} {raw:>11.0f} {ours / raw:>6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
