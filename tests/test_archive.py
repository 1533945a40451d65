"""The archive on SQLite and PostgreSQL: round trips, idempotence, room lookups; the SQLite
file's own failures (locks, read-only files, foreign files)."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.enums import (
    Channel,
    Direction,
    EventType,
    ParticipantState,
    ParticipantType,
    Role,
    RoomMode,
    RoomType,
    SessionEndReason,
    SessionState,
    State,
)
from domain.records import (
    SYSTEM,
    ConversationRecord,
    Emitter,
    Event,
    ParticipantRecord,
    SessionRecord,
)
from infra.archive import Archive
from infra.archive_errors import ArchiveUnavailable, StorageError
from infra.archive_pg import PgArchive
from infra.archive_rows import BYTES_KEY, RoomRecord
from infra.archive_schema import SCHEMA_VERSION
from infra.archive_store import ArchiveStore

ROOM = RoomRecord("room-1", RoomType.CUSTOMER, RoomMode.CONTACT_CENTER, "cust-1", 1_000)


def make_conversation(
    conversation_id: str = "conv-1",
    *,
    room_id: str = "room-1",
    created_at: int = 1_000,
    state: State = State.CLOSED,
) -> tuple[ConversationRecord, list[Event]]:
    """A closed conversation: two sessions, customer, bot and agent, events with nested data."""
    web = SessionRecord(
        id=f"{conversation_id}-s1",
        conversation_id=conversation_id,
        channel=Channel.WEB,
        identifier="browser-42",
        state=SessionState.ENDED,
        end_reason=SessionEndReason.CUSTOMER,
        started_at=created_at,
        ended_at=created_at + 9_000,
        data={"page": "/pricing", "utm": {"source": "ads", "tags": ["a", "b"]}, "n": None},
    )
    sms = SessionRecord(
        id=f"{conversation_id}-s0",  # sorts before s1: order must come from the record
        conversation_id=conversation_id,
        channel=Channel.SMS,
        identifier="+15550100",
        state=SessionState.STARTED,
        end_reason=None,
        started_at=created_at + 500,
        ended_at=None,
    )
    participants = (
        ParticipantRecord(
            "cust-1", ParticipantType.CUSTOMER, Role.CUSTOMER, ParticipantState.SUBSCRIBED,
            created_at, None,
        ),
        ParticipantRecord(
            "bot", ParticipantType.BOT, Role.ASSISTANT, ParticipantState.UNSUBSCRIBED,
            created_at, created_at + 9_500,
        ),
        ParticipantRecord(
            "agent-7", ParticipantType.AGENT, Role.WRAP_UP, ParticipantState.UNSUBSCRIBED,
            created_at + 2_000, created_at + 9_600,
        ),
    )  # fmt: skip
    record = ConversationRecord(
        id=conversation_id,
        room_id=room_id,
        customer_id="cust-1",
        state=state,
        direction=Direction.INBOUND,
        created_at=created_at,
        ended_at=created_at + 10_000 if state is State.CLOSED else None,
        participants=participants,
        channel_sessions=(web, sms),
        data={"topic": "billing", "priority": 2, "vip": True, "score": 0.5},
        seq=3,
    )
    events = [
        Event(
            conversation_id, room_id, 1, "CHANNEL_SESSION_STARTED", EventType.NOTIFICATION,
            created_at, Emitter("cust-1", ParticipantType.CUSTOMER), web.id, {},
        ),
        Event(
            conversation_id, room_id, 2, "CUSTOMER_MESSAGE", EventType.MESSAGE, created_at + 1,
            Emitter("cust-1", ParticipantType.CUSTOMER), web.id,
            {"text": "héllo ✓", "attachments": [{"url": "x", "size": 2**40}], "raw": b"\x00\xff"},
        ),
        Event(
            conversation_id, room_id, 3, "TOPIC_STATE_CHANGED", EventType.NOTIFICATION,
            created_at + 10_000, SYSTEM, None, {"from": "CLOSING", "to": "CLOSED", "reason": None},
        ),
    ]  # fmt: skip
    return record, events


def late_activity(seq: int, name: str = "RECORDING_READY") -> Event:
    return Event(
        "conv-1", "room-1", seq, name, EventType.ACTIVITY, 20_000 + seq,
        Emitter("recorder", ParticipantType.APP), None, {"url": f"https://rec/{seq}"},
    )  # fmt: skip


@pytest.fixture(params=["sqlite", "postgres"])
def archive(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ArchiveStore]:
    """An archive holding ``ROOM``, on each backend (the tests below hold for both)."""
    opened: ArchiveStore
    if request.param == "sqlite":
        opened = Archive(tmp_path / "archive.db")
    else:
        opened = PgArchive(request.getfixturevalue("postgres_dsn"))
    with opened:
        opened.create_room(ROOM)
        yield opened


def test_round_trip_of_a_full_conversation(archive: ArchiveStore) -> None:
    record, events = make_conversation()
    archive.store_conversation(record, events)

    assert archive.has_conversation("conv-1")
    assert archive.conversation("conv-1") == record
    assert archive.events("conv-1") == events
    assert archive.events("conv-1", after_seq=1) == events[1:]
    assert archive.last_seq("conv-1") == 3
    # Enums come back as enums, "SYSTEM" as the plain string.
    back = archive.events("conv-1")
    assert back[0].emitter.type is ParticipantType.CUSTOMER
    assert back[2].emitter == SYSTEM and type(back[2].emitter.type) is str
    stored = archive.conversation("conv-1")
    assert stored is not None
    assert stored.channel_sessions[0].end_reason is SessionEndReason.CUSTOMER
    assert stored.channel_sessions[1].end_reason is None


def test_unknown_ids_read_as_nothing(archive: ArchiveStore) -> None:
    assert archive.conversation("nope") is None
    assert not archive.has_conversation("nope")
    assert archive.events("nope") == []
    assert archive.last_seq("nope") == 0
    assert archive.room("nope") is None
    assert archive.room_conversations("nope") == []


def test_storing_twice_stores_once(archive: ArchiveStore) -> None:
    record, events = make_conversation(state=State.CLOSING)
    archive.store_conversation(record, events[:2])
    # The retry carries the final snapshot, the events again and the closing event; a changed
    # copy of an already stored event does not replace it (first write wins).
    closed, _ = make_conversation(state=State.CLOSED)
    tampered = dataclasses.replace(events[0], data={"changed": True})
    archive.store_conversation(closed, [tampered, *events[1:]])
    archive.store_conversation(closed, events)

    assert archive.counts() == {"conversations": 1, "events": 3, "rooms": 1}
    assert archive.events("conv-1") == events
    assert archive.conversation("conv-1") == closed


def test_store_then_append_late_events(archive: ArchiveStore) -> None:
    record, events = make_conversation()
    archive.store_conversation(record, events)
    late = [late_activity(4), late_activity(5, "TRANSCRIPT_READY")]

    archive.append_events("conv-1", late)
    archive.append_events("conv-1", late)  # repeated delivery: stored once

    assert archive.events("conv-1") == events + late
    assert archive.events("conv-1", after_seq=3) == late
    assert archive.last_seq("conv-1") == 5
    assert archive.conversation("conv-1") == dataclasses.replace(record, seq=5)
    assert archive.counts()["events"] == 5
    # Re-archiving the old snapshot (a late retry) does not move seq back.
    archive.store_conversation(record, events)
    assert archive.conversation("conv-1").seq == 5  # type: ignore[union-attr]


def test_append_refuses_unknown_or_foreign_conversations(archive: ArchiveStore) -> None:
    with pytest.raises(KeyError, match="conv-1"):
        archive.append_events("conv-1", [late_activity(1)])
    record, events = make_conversation()
    archive.store_conversation(record, events)
    with pytest.raises(ValueError, match="conv-2"):
        archive.append_events("conv-2", [late_activity(4)])
    assert archive.counts()["events"] == 3


def test_failed_store_writes_nothing(archive: ArchiveStore) -> None:
    first, first_events = make_conversation("conv-1")
    archive.store_conversation(first, first_events)
    # conv-2 reuses a channel session id of conv-1: refused after its conversation row and
    # before its events; the rollback must leave no trace of conv-2.
    second, second_events = make_conversation("conv-2", created_at=50_000)
    stolen = dataclasses.replace(first.channel_sessions[0], conversation_id="conv-2")
    second = dataclasses.replace(second, channel_sessions=(stolen,))

    with pytest.raises(ValueError, match="belongs to another conversation"):
        archive.store_conversation(second, second_events)

    assert not archive.has_conversation("conv-2")
    assert archive.counts() == {"conversations": 1, "events": 3, "rooms": 1}
    assert archive.conversation("conv-1") == first


def test_a_group_of_snapshots_is_stored_in_one_transaction(archive: ArchiveStore) -> None:
    group = [make_conversation(f"conv-{n}", created_at=1_000 * n) for n in range(1, 4)]
    before = archive.write_attempts
    archive.store_conversations(group)
    assert archive.write_attempts == before + 1
    for record, events in group:
        assert archive.conversation(record.id) == record
        assert archive.events(record.id) == events


def test_a_group_with_one_snapshot_at_fault_stores_none_of_them(archive: ArchiveStore) -> None:
    first, first_events = make_conversation("conv-1")
    archive.store_conversation(first, first_events)
    good, good_events = make_conversation("conv-2", created_at=50_000)
    bad, bad_events = make_conversation("conv-3", created_at=60_000)
    stolen = dataclasses.replace(first.channel_sessions[0], conversation_id="conv-3")
    bad = dataclasses.replace(bad, channel_sessions=(stolen,))

    with pytest.raises(ValueError, match="belongs to another conversation"):
        archive.store_conversations([(good, good_events), (bad, bad_events)])

    assert not archive.has_conversation("conv-2") and not archive.has_conversation("conv-3")
    assert archive.counts() == {"conversations": 1, "events": 3, "rooms": 1}


def test_room_lookups(archive: ArchiveStore) -> None:
    private = RoomRecord("room-p", RoomType.CUSTOMER, RoomMode.PRIVATE, "cust-1", 2_000)
    team = RoomRecord("room-t", RoomType.TEAM, RoomMode.CONTACT_CENTER, "cust-1", 3_000)
    for room in (private, team, ROOM):  # ROOM again: idempotent
        archive.create_room(room)

    assert archive.counts()["rooms"] == 3
    assert archive.room("room-p") == private
    assert archive.contact_center_room_of("cust-1") == ROOM
    assert archive.contact_center_room_of("cust-2") is None
    with pytest.raises(ValueError, match="cust-1"):
        archive.create_room(dataclasses.replace(ROOM, id="room-2"))
    assert archive.room("room-2") is None


def test_a_first_contact_stores_its_room_and_identity_in_one_transaction(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with Archive(path) as archive:
        archive.record_customer_identity("cust-1", "WEB", "browser-42", new_room=ROOM)
        assert archive.room("room-1") == ROOM
        # a second contact-center room of the customer is refused, and nothing of it is stored
        with pytest.raises(ValueError, match="cust-1"):
            archive.record_customer_identity(
                "cust-1", "SMS", "+15550100", new_room=dataclasses.replace(ROOM, id="room-2")
            )
        assert archive.room("room-2") is None
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT * FROM identities").fetchall() == [
            ("cust-1", "WEB", "browser-42")
        ]
    db.close()


def test_room_conversations_oldest_first_then_by_id(archive: ArchiveStore) -> None:
    for conversation_id, created_at in (("b", 10), ("a", 10), ("c", 5)):
        record, events = make_conversation(conversation_id, created_at=created_at)
        archive.store_conversation(record, events)
    other, other_events = make_conversation("z", room_id="room-9", created_at=1)
    archive.store_conversation(other, other_events)

    assert [r.id for r in archive.room_conversations("room-1")] == ["c", "a", "b"]
    assert archive.room_conversations("room-9") == [other]


def test_ids_taken(archive: ArchiveStore) -> None:
    record, events = make_conversation()
    archive.store_conversation(record, events)

    assert archive.ids_taken(conversation_id="conv-1")
    assert archive.ids_taken(session_id="conv-1-s0")
    assert archive.ids_taken(room_id="room-1")
    assert archive.ids_taken(conversation_id="fresh", room_id="room-1")
    assert not archive.ids_taken(conversation_id="fresh", session_id="fresh", room_id="fresh")
    assert not archive.ids_taken(session_id="conv-1")  # a conversation id is not a session id
    assert not archive.ids_taken()


def test_customer_identities_are_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with Archive(path) as archive:
        archive.record_customer_identity("cust-1", "WEB", "browser-42")
        archive.record_customer_identity("cust-1", "WEB", "browser-42")
        archive.record_customer_identity("cust-1", Channel.SMS, "+15550100")
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT id, name FROM customers").fetchall() == [("cust-1", None)]
        assert sorted(db.execute("SELECT * FROM identities").fetchall()) == [
            ("cust-1", "SMS", "+15550100"),
            ("cust-1", "WEB", "browser-42"),
        ]
    db.close()


def test_locked_database_is_unavailable_then_retry_stores_once(tmp_path: Path) -> None:
    path = tmp_path / "archive.db"
    record, events = make_conversation()
    with Archive(path, busy_timeout_ms=50) as archive:
        locker = sqlite3.connect(path, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        with pytest.raises(ArchiveUnavailable, match="locked"):
            archive.store_conversation(record, events)
        locker.execute("ROLLBACK")
        locker.close()
        assert not archive.has_conversation("conv-1")

        archive.store_conversation(record, events)
        archive.store_conversation(record, events)

        assert archive.counts() == {"conversations": 1, "events": 3, "rooms": 0}
        assert archive.conversation("conv-1") == record


def test_read_only_archive_is_unavailable_for_writes(tmp_path: Path) -> None:
    path = tmp_path / "archive.db"
    record, events = make_conversation()
    with Archive(path) as archive:
        archive.store_conversation(record, events)

    with Archive(path, read_only=True) as read_only:
        assert read_only.conversation("conv-1") == record  # reading still works
        other, other_events = make_conversation("conv-2")
        with pytest.raises(ArchiveUnavailable, match="readonly"):
            read_only.store_conversation(other, other_events)
        with pytest.raises(ArchiveUnavailable):
            read_only.append_events("conv-1", [late_activity(4)])
        with pytest.raises(ArchiveUnavailable):
            read_only.create_room(ROOM)

    with Archive(path) as archive:
        assert archive.counts() == {"conversations": 1, "events": 3, "rooms": 0}


def test_foreign_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 7")
    db.close()

    with pytest.raises(StorageError, match=r"other\.db.*version 7"):
        Archive(path)


def test_foreign_database_without_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE stuff (x)")
    db.close()

    with pytest.raises(StorageError, match=r"other\.db.*not an archive"):
        Archive(path)
    with sqlite3.connect(path) as db:  # left untouched
        assert db.execute("SELECT name FROM sqlite_master").fetchall() == [("stuff",)]
    db.close()


def test_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"not sqlite at all " * 100)

    with pytest.raises(StorageError, match=r"notes\.db"):
        Archive(path)
    assert path.read_bytes() == b"not sqlite at all " * 100


def test_missing_parent_directories_are_created_and_file_reopens(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "archive.db"
    record, events = make_conversation()
    with Archive(path) as archive:
        archive.store_conversation(record, events)
    assert path.is_file()

    with Archive(str(path)) as reopened:  # an existing file of this version: accepted as is
        assert reopened.conversation("conv-1") == record
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    db.close()


def test_corrupt_payload_raises_storage_error_naming_the_conversation(tmp_path: Path) -> None:
    path = tmp_path / "archive.db"
    record, events = make_conversation()
    with Archive(path) as archive:
        archive.store_conversation(record, events)
        with sqlite3.connect(path) as db:
            db.execute("UPDATE events SET data = x'c1' WHERE seq = 2")  # 0xc1: never used
        db.close()

        with pytest.raises(StorageError, match="conv-1"):
            archive.events("conv-1")
        assert archive.events("conv-1", after_seq=2) == events[2:]


def test_in_memory_archive(tmp_path: Path) -> None:
    with Archive(":memory:") as archive:
        record, events = make_conversation()
        archive.store_conversation(record, events)
        assert archive.events("conv-1") == events
    assert list(tmp_path.iterdir()) == []


json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text().filter(lambda key: key != BYTES_KEY), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=50, deadline=None)
@given(data=st.dictionaries(st.text(), json_like, max_size=5))
def test_payloads_round_trip(data: dict[str, Any]) -> None:
    record, events = make_conversation()
    record = dataclasses.replace(record, data=data)
    events = [dataclasses.replace(e, data=data) for e in events]
    with Archive(":memory:") as archive:
        archive.store_conversation(record, events)
        assert archive.conversation("conv-1") == record
        assert archive.events("conv-1") == events
