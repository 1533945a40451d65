"""Group commit in the Archivist (actors/archivist.py): the closings one message brings, or
that wait for a locked archive, are written in one transaction, and none of them is answered
before that transaction has committed."""

from __future__ import annotations

import contextlib
import sqlite3
from typing import Any

from actors.archivist import RETRY_BACKOFF_MS, Archivist
from actors.topic_monitor import TopicMonitor
from infra.archive import Archive
from runtime import testing
from runtime.gateway import Gateway, SessionRef
from tests.conftest import MakeGateway

ONE_ARCHIVIST: dict[str, Any] = {"placement": {"archivists": 1}}
COUNT = 6


def archivist(gw: Gateway) -> Archivist:
    monitor: TopicMonitor = testing.actor(gw, testing.addresses(gw).monitor)
    found: Archivist = testing.actor(gw, monitor.archivists[0])
    return found


def write_attempts(gw: Gateway) -> int:
    archive = archivist(gw).archive
    assert isinstance(archive, Archive)
    return archive.write_attempts


def opened(gw: Gateway) -> list[SessionRef]:
    return [gw.start_session(f"cust-{n}", "WEB", f"browser-{n}") for n in range(COUNT)]


def end_together(gw: Gateway, refs: list[SessionRef]) -> None:
    pipeline = gw.pipeline()
    for ref in refs:
        pipeline.end_conversation(ref.conversation_id)
    pipeline.wait(timeout=10)


def states(gw: Gateway, refs: list[SessionRef]) -> set[str]:
    return {gw.conversation(ref.conversation_id)["state"] for ref in refs}


def test_the_closings_of_one_batch_are_written_in_one_transaction(
    make_gateway: MakeGateway,
) -> None:
    gw = make_gateway(**ONE_ARCHIVIST)
    refs = opened(gw)
    before = write_attempts(gw)
    end_together(gw, refs)
    assert write_attempts(gw) == before + 1
    assert states(gw, refs) == {"CLOSED"}


def test_a_group_the_archive_refuses_acknowledges_none_of_its_conversations(
    make_gateway: MakeGateway,
) -> None:
    """The write fails after the group's conversation rows (a trigger refuses its events): it
    is rolled back, every conversation of it stays CLOSING and none is in the archive; the
    retry writes them all, each once."""
    gw = make_gateway(**ONE_ARCHIVIST)
    refs = opened(gw)
    with contextlib.closing(sqlite3.connect(gw.settings.storage.archive)) as other:
        other.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'no'); END"
        )
        before = write_attempts(gw)
        end_together(gw, refs)
        assert write_attempts(gw) == before + 1  # the group's write was tried, and failed
        assert gw.status()["conversations"] == {"CLOSING": COUNT}
        assert not [r for r in refs if other_has(other, r.conversation_id)]
        other.execute("DROP TRIGGER refuse")
    gw.advance(RETRY_BACKOFF_MS[0] / 1000)
    assert gw.status()["conversations"] == {}
    for ref in refs:
        events = gw.events(ref.conversation_id)
        assert [e["data"].get("to") for e in events].count("CLOSED") == 1


def other_has(db: sqlite3.Connection, conversation_id: str) -> bool:
    query = "SELECT 1 FROM conversations WHERE id = ?"
    return db.execute(query, (conversation_id,)).fetchone() is not None
