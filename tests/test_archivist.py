"""A locked archive delays only what must wait for it (the Archivist, actors/archivist.py).

The archive is locked in-process: a second sqlite3 connection holds ``BEGIN EXCLUSIVE`` on
the file (WAL: readers go on, every writer is refused). Attempts to write are counted per
``Archive`` object, so the tests can tell the TopicMonitor's connection from the Archivist's.
"""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from thespian.actors import ActorExitRequest

from actors import archivist as archivist_module
from actors.archivist import RETRY_BACKOFF_MS, Archivist
from actors.messages import Batch, Deliver, OpenSession, Reply, ReplyTo
from actors.topic_monitor import TopicMonitor
from domain.enums import Channel
from infra.archive import Archive
from infra.archive_errors import StorageError
from runtime import testing
from runtime.gateway import Gateway, SessionRef, UnavailableError
from tests.conftest import MakeGateway, names

LIVE = 4
CLOSING = 12
LOCKED_S = 60
#: These tests follow one Archivist's work (the pool's partitioning: test_archivist_pool.py).
ONE_ARCHIVIST: dict[str, Any] = {"placement": {"archivists": 1}}


def monitor(gw: Gateway) -> TopicMonitor:
    found: TopicMonitor = testing.actor(gw, testing.addresses(gw).monitor)
    return found


def archivist(gw: Gateway) -> Archivist:
    found: Archivist = testing.actor(gw, monitor(gw).archivists[0])
    return found


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    lock = sqlite3.connect(path, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        lock.execute("ROLLBACK")
        lock.close()


def retries_within(seconds: float) -> int:
    """Attempts the Archivist makes in ``seconds`` of a locked archive: the first, then one
    per step of its backoff."""
    attempts, elapsed = 1, 0
    for step in itertools.chain(RETRY_BACKOFF_MS, itertools.repeat(RETRY_BACKOFF_MS[-1])):
        elapsed += step
        if elapsed > seconds * 1000:
            return attempts
        attempts += 1
    raise AssertionError("unreachable")


def open_sessions(gw: Gateway, prefix: str, count: int) -> list[SessionRef]:
    return [gw.start_session(f"{prefix}-{i}", "WEB", f"{prefix}-browser-{i}") for i in range(count)]


def test_a_locked_archive_holds_back_only_the_closing_conversations(
    make_gateway: MakeGateway,
) -> None:
    """Customer messages and agent work on live conversations are answered while the lock is
    held; the TopicMonitor never waits on the lock (it does not write); the Archivist tries
    once per retry, however many conversations wait (before: one 200 ms attempt in the
    monitor per closing conversation and retry)."""
    gw = make_gateway(**ONE_ARCHIVIST)
    live = open_sessions(gw, "live", LIVE)
    closing = open_sessions(gw, "closing", CLOSING)
    gw.agent_login("alice", max_conversations=LIVE)
    # e.g. the schema, written when the archive was created
    before = {
        "monitor": monitor(gw).archive.write_attempts,
        "archivist": archivist(gw).archive.write_attempts,
    }
    with locked(gw.settings.storage.archive):
        for ref in closing:
            gw.end_session(ref.channel_session_id)
        for second in range(0, LOCKED_S, 10):
            gw.advance(10)
            for ref in live:
                gw.customer_message(ref.channel_session_id, f"at {second}")
        for ref in live:
            gw.agent_join("alice", ref.conversation_id)
            gw.agent_message("alice", ref.conversation_id, "here")
        for ref in live:
            events = names(gw, ref.conversation_id)
            assert events.count("CUSTOMER_MESSAGE") == LOCKED_S // 10
            assert events.count("AGENT_MESSAGE") == 1
        assert gw.status()["conversations"] == {"CLOSING": CLOSING, "ACTIVE": LIVE}
        assert monitor(gw).archive.write_attempts - before["monitor"] == 0
        assert archivist(gw).archive.write_attempts - before["archivist"] == retries_within(
            LOCKED_S
        )


def test_a_new_customer_while_the_archive_is_locked_is_refused_unavailable_leaving_nothing(
    make_gateway: MakeGateway,
) -> None:
    """The first contact needs a write (room and identity): refused `unavailable` (was
    `internal`), no room, no conversation; once the lock is gone the retry opens it."""
    gw = make_gateway(**ONE_ARCHIVIST)
    path = gw.settings.storage.archive
    with locked(path):
        with pytest.raises(UnavailableError, match="the archive is unavailable"):
            gw.start_session("cust-new", "WEB", "browser-new")
        assert gw.status()["conversations"] == {}
        assert not monitor(gw).live and not monitor(gw).first_contacts
    with Archive(path) as archive:
        assert archive.contact_center_room_of("cust-new") is None
        assert archive.counts() == {"conversations": 0, "events": 0, "rooms": 0}
    ref = gw.start_session("cust-new", "WEB", "browser-new")
    assert gw.status()["conversations"] == {"CREATED": 1}
    with Archive(path) as archive:
        room = archive.contact_center_room_of("cust-new")
        assert room is not None and room.id == ref.room_id


def test_a_returning_customer_opens_a_new_conversation_while_the_archive_is_locked(
    make_gateway: MakeGateway,
) -> None:
    """Room and identity are stored already: nothing to write, so nothing to wait for (was
    refused `internal`: the identity was written again on every new conversation)."""
    gw = make_gateway(**ONE_ARCHIVIST)
    first = gw.start_session("cust-1", "WEB", "browser-1")
    gw.end_session(first.channel_session_id)
    with locked(gw.settings.storage.archive):
        again = gw.start_session("cust-1", "WEB", "browser-1")
        gw.customer_message(again.channel_session_id, "back again")
    assert again.room_id == first.room_id and again.conversation_id != first.conversation_id
    assert "CUSTOMER_MESSAGE" in names(gw, again.conversation_id)


def test_after_the_lock_every_closing_conversation_is_archived_and_closed_once(
    make_gateway: MakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within one backoff step of the release (at most RETRY_BACKOFF_MS[-1]; a conversation's
    own retries had grown to a minute), written a slice at a time, each exactly once."""
    monkeypatch.setattr(archivist_module, "SLICE", 5)  # the backlog takes several slices
    stored: Counter[str] = Counter()
    original = Archive.store_conversations

    def counting(self: Archive, snapshots: Any) -> None:
        original(self, snapshots)
        stored.update(record.id for record, _ in snapshots)

    monkeypatch.setattr(Archive, "store_conversations", counting)
    gw = make_gateway(**ONE_ARCHIVIST)
    closing = open_sessions(gw, "closing", CLOSING)
    with locked(gw.settings.storage.archive):
        for ref in closing:
            gw.end_session(ref.channel_session_id)
        gw.advance(LOCKED_S)
        assert gw.status()["conversations"] == {"CLOSING": CLOSING}
    gw.advance(RETRY_BACKOFF_MS[-1] / 1000)
    assert gw.status()["conversations"] == {}
    assert stored == Counter({ref.conversation_id: 1 for ref in closing})
    for ref in closing:
        events = gw.events(ref.conversation_id)
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        closed = [e for e in events if e["data"].get("to") == "CLOSED"]
        assert len(closed) == 1 and gw.conversation(ref.conversation_id)["state"] == "CLOSED"
    assert not monitor(gw).jobs and not archivist(gw).closings


def test_a_new_archivist_takes_over_the_closing_conversations_when_it_dies(
    make_gateway: MakeGateway,
) -> None:
    """The monitor starts another; the conversations it was retrying ask again and close."""
    gw = make_gateway(**ONE_ARCHIVIST)
    closing = open_sessions(gw, "closing", 3)
    with locked(gw.settings.storage.archive):
        for ref in closing:
            gw.end_session(ref.channel_session_id)
        dead = monitor(gw).archivists[0]
        testing.system(gw).tell(dead, ActorExitRequest())
        gw.drain()
        assert monitor(gw).archivists[0] != dead
    gw.advance(10)
    assert gw.status()["conversations"] == {}
    for ref in closing:
        assert gw.conversation(ref.conversation_id)["state"] == "CLOSED"


def test_sessions_of_a_customer_whose_first_contact_is_being_stored_join_one_conversation(
    make_gateway: MakeGateway,
) -> None:
    """A second session that reaches the monitor while the first contact's write is still at
    the Archivist waits for it, then joins the conversation it opened (one room)."""
    gw = make_gateway(**ONE_ARCHIVIST)
    requests = [
        OpenSession("cust-1", Channel.WEB, "v", None, {}, f"cs-{i}", f"conv-{i}", f"room-{i}")
        for i in (1, 2)
    ]
    me, system = testing.address(gw), testing.system(gw)
    items = tuple(Deliver("", r, ReplyTo(me, f"open-{i}")) for i, r in enumerate(requests))
    system.tell(testing.addresses(gw).monitor, Batch(gw.now_ms, items))  # runs until quiescent
    replies: dict[str, Any] = {}
    while (message := system.listen(0)) is not None:
        found = [i.payload for i in message.items] if isinstance(message, Batch) else [message]
        replies.update((r.call_id, r.value) for r in found if isinstance(r, Reply))
    answers = [replies[f"open-{i}"] for i in range(len(requests))]
    assert [a["conversation_id"] for a in answers] == ["conv-1", "conv-1"]
    assert {a["room_id"] for a in answers} == {"room-1"}
    assert gw.status()["conversations"] == {"CREATED": 1}


def test_reads_the_archive_refuses_are_unavailable_not_internal(
    make_gateway: MakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read that fails (here: an I/O error on every room lookup), in the TopicMonitor
    (get-or-create) or in the Archivist (history), is `unavailable`; nothing is opened."""
    gw = make_gateway(**ONE_ARCHIVIST)
    ref = gw.start_session("cust-1", "WEB", "browser-1")

    def failing(self: Archive, *args: Any) -> None:
        raise StorageError("archive.sqlite3: read failed: disk I/O error")

    monkeypatch.setattr(Archive, "contact_center_room_of", failing)
    monkeypatch.setattr(Archive, "room", failing)
    with pytest.raises(UnavailableError, match="the archive is unavailable"):
        gw.start_session("cust-2", "WEB", "browser-2")
    with pytest.raises(UnavailableError, match="disk I/O error"):
        gw.history(ref.room_id)
    assert gw.status()["conversations"] == {"CREATED": 1}


def test_an_activity_added_while_a_locked_archive_holds_the_closing_is_archived_once(
    make_gateway: MakeGateway,
) -> None:
    """The activity joins the closing events and the conversation asks again: one write
    waits in its Archivist (none in the monitor), with the fuller snapshot, and the
    conversation is answered when it commits."""
    gw = make_gateway(**ONE_ARCHIVIST)
    ref = gw.start_session("cust-1", "WEB", "browser-1")
    with locked(gw.settings.storage.archive):
        gw.end_session(ref.channel_session_id)
        gw.add_activity(ref.conversation_id, "survey", {"score": 5})
        assert not monitor(gw).jobs and list(archivist(gw).closings) == [ref.conversation_id]
        waiting = archivist(gw).closings[ref.conversation_id].request
        assert "survey" in [e.name for e in waiting.events]
    gw.advance(RETRY_BACKOFF_MS[0] / 1000)
    assert gw.conversation(ref.conversation_id)["state"] == "CLOSED"
    assert names(gw, ref.conversation_id).count("survey") == 1
    assert not monitor(gw).jobs and not archivist(gw).closings


def test_the_topic_monitor_writes_nothing_to_the_archive_not_even_its_schema(
    make_gateway: MakeGateway,
) -> None:
    """On new storage the Archivist creates the archive; from start-up through a first contact
    and an archived conversation, every write transaction is the Archivist's."""
    gw = make_gateway(**ONE_ARCHIVIST)
    ref = gw.start_session("cust-1", "WEB", "v")
    gw.end_session(ref.channel_session_id)  # its last session: the conversation closes
    assert gw.conversation(ref.conversation_id)["state"] == "CLOSED"
    assert monitor(gw).archive.write_attempts == 0
    # the schema, the first contact, the closed conversation
    assert archivist(gw).archive.write_attempts == 3


def test_a_start_on_a_file_that_is_not_an_archive_is_refused_naming_it(tmp_path: Path) -> None:
    """The Archivist cannot open it, nor the monitor read it: the start fails with the file and
    the problem (before: a traceback in the monitor's log and an engine that never started)."""
    path = tmp_path / "archive.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as foreign:
        foreign.execute("CREATE TABLE other (x)")
        foreign.commit()
    config = {
        "storage": {"archive": str(path), "journal": str(tmp_path / "journal")},
        "logging": {"level": "error"},
    }
    with pytest.raises(UnavailableError, match=r"archive\.sqlite3: not an archive"):
        Gateway.embedded(config, seed=0)
