"""Nothing lost: restart on the same storage, torn journals, archive retries."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from infra.journal_read import read_directory
from infra.journal_segment import HEADER
from runtime.gateway import Gateway, UnavailableError

Make = Callable[..., Gateway]


def storage(tmp_path: Path, postgres: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "storage": {
            "archive": str(tmp_path / "archive.sqlite3"),
            "journal": str(tmp_path / "journal"),
            "postgres": postgres,
        },
        "logging": {"level": "error"},
        **extra,
    }


def test_restart_restores_live_conversations_from_the_journal(
    tmp_path: Path, journal_at: str | None
) -> None:
    config = storage(tmp_path, journal_at)
    with Gateway.embedded(config, seed=0) as gw:
        gw.agent_login("alice")
        ref = gw.start_session("cust-1", "WEB", "v")
        gw.agent_join("alice", ref.conversation_id)
        gw.advance(20)
        gw.customer_message(ref.channel_session_id, "hello", message_id="wamid-9")
        events, snapshot = gw.events(ref.conversation_id), gw.conversation(ref.conversation_id)
    with Gateway.embedded(config, seed=0) as gw:
        assert gw.boot["restored"] == 1
        assert gw.events(ref.conversation_id) == events
        assert gw.conversation(ref.conversation_id) == snapshot  # the agent is still a participant
        assert gw.status()["conversations"] == {"ACTIVE": 1}
        gw.customer_message(ref.channel_session_id, "hello", message_id="wamid-9")  # seen before
        assert gw.events(ref.conversation_id) == events
        # the clock resumed at the latest journaled time; the room keeps its live conversation
        gw.set_data(ref.conversation_id, "restored", True)
        assert gw.events(ref.conversation_id)[-1]["timestamp"] == "1970-01-01T00:00:20.000Z"
        assert gw.start_session("cust-1", "SMS", "+1").conversation_id == ref.conversation_id
        # the agent logs in again and its conversation counts against its limit
        gw.agent_login("alice", max_conversations=1)
        gw.agent_ready("alice")
        other = gw.start_session("cust-2", "WEB", "w")
        gw.request_agent(other.conversation_id)
        assert gw.conversation(other.conversation_id)["state"] == "CREATED"
        assert gw.status()["queues"] == {"default": 1}


def test_timers_resume_with_the_time_they_had_left(tmp_path: Path, journal_at: str | None) -> None:
    config = storage(tmp_path, journal_at)
    with Gateway.embedded(config, seed=0) as gw:
        ref = gw.start_session("cust-1", "WEB", "v")
        gw.advance(200)
        gw.customer_message(ref.channel_session_id, "hi")  # the bot answers: inactivity until 500 s
    with Gateway.embedded(config, seed=0) as gw:
        assert gw.now_ms == 200_000  # the latest journaled time
        gw.advance(299)
        assert gw.conversation(ref.conversation_id)["state"] == "CREATED"
        gw.advance(1)
        names = [e["name"] for e in gw.events(ref.conversation_id)]
        assert names.count("CUSTOMER_SLA_EXPIRED") == 1
        assert gw.conversation(ref.conversation_id)["state"] == "CLOSED"
        assert gw.conversation(ref.conversation_id)["ended_at"] == "1970-01-01T00:08:20.000Z"


def test_journal_of_a_closed_conversation_is_not_restored(
    tmp_path: Path, journal_at: str | None
) -> None:
    config = storage(tmp_path, journal_at)
    with Gateway.embedded(config, seed=0) as gw:
        ref = gw.start_session("cust-1", "WEB", "v")
        gw.end_session(ref.channel_session_id)
        archived = gw.events(ref.conversation_id)
    with Gateway.embedded(config, seed=0) as gw:
        assert gw.boot["restored"] == 0
        assert gw.status()["conversations"] == {}
        assert gw.events(ref.conversation_id) == archived


def test_a_torn_journal_tail_is_recovered_up_to_the_damage(tmp_path: Path) -> None:
    config = storage(tmp_path)
    with Gateway.embedded(config, seed=0) as gw:
        ref = gw.start_session("cust-1", "WEB", "v")
        gw.customer_message(ref.channel_session_id, "second")
        before = gw.events(ref.conversation_id)  # ends with the bot's answer to "second"
    (segment,) = (tmp_path / "journal").glob("*/*.seg")
    data = segment.read_bytes()
    segment.write_bytes(data[:-5])  # the last write (the bot's answer) cut short by a crash
    with Gateway.embedded(config, seed=0) as gw:
        assert gw.boot["restored"] == 1
        assert any("torn frame" in d for d in gw.boot["damage"])
        restored = gw.events(ref.conversation_id)
        # the valid prefix is back, exactly: up to the customer's "second", not the torn answer
        assert restored == before[: len(restored)]
        assert restored[-1]["name"] == "CUSTOMER_SLA_STOPPED"
        assert [e["data"]["text"] for e in restored if e["name"] == "CUSTOMER_MESSAGE"] == [
            "second"
        ]
        assert before[len(restored)]["name"] == "BOT_MESSAGE"


def test_a_journal_of_another_version_is_refused_naming_the_file(tmp_path: Path) -> None:
    foreign = tmp_path / "journal" / "host-old"
    foreign.mkdir(parents=True)
    (foreign / "00000001.seg").write_bytes(HEADER[:3] + bytes([9]))
    with pytest.raises(UnavailableError, match=r"00000001\.seg: journal version 9"):
        Gateway.embedded(storage(tmp_path), seed=0)


def test_journal_is_deleted_once_its_conversations_are_archived(tmp_path: Path) -> None:
    config = storage(tmp_path)
    with Gateway.embedded(config, seed=0) as gw:
        ref = gw.start_session("cust-1", "WEB", "v")
        gw.end_session(ref.channel_session_id)
        (old,) = (tmp_path / "journal").iterdir()
        assert [r["k"] for r in read_directory(old).records if r["c"] == ref.conversation_id][
            -1
        ] == "closed"
    with Gateway.embedded(config, seed=0) as gw:  # nothing live to restore: the old journal goes
        assert gw.boot["restored"] == 0
        assert not old.exists()
        assert [p for p in (tmp_path / "journal").iterdir() if read_directory(p).records] == []


def test_archiving_twice_stores_once(make_gateway: Make, tmp_path: Path) -> None:
    from infra.archive import Archive

    gw = make_gateway()
    ref = gw.start_session("cust-1", "WEB", "v")
    gw.end_session(ref.channel_session_id)
    path = gw.settings.storage.archive
    archive = Archive(path)
    record = archive.conversation(ref.conversation_id)
    events = archive.events(ref.conversation_id)
    assert record is not None
    archive.store_conversation(record, events)  # a repeated archive request
    assert archive.events(ref.conversation_id) == events
    assert archive.counts()["events"] == len(events)
    archive.close()


def test_unwritable_archive_keeps_closing_and_retries_until_closed(make_gateway: Make) -> None:
    import sqlite3

    gw = make_gateway()
    ref = gw.start_session("cust-1", "WEB", "v")
    lock = sqlite3.connect(gw.settings.storage.archive, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # the archive cannot be written now
    try:
        gw.end_session(ref.channel_session_id)
        assert gw.conversation(ref.conversation_id)["state"] == "CLOSING"
        gw.advance(3)  # retries (1 s, then 2 s) fail while the lock is held
        assert gw.conversation(ref.conversation_id)["state"] == "CLOSING"
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    gw.advance(5)
    assert gw.conversation(ref.conversation_id)["state"] == "CLOSED"
    names = [e["name"] for e in gw.events(ref.conversation_id)]
    assert names.count("BOT_UNSUBSCRIBED") == 1
    assert [e["seq"] for e in gw.events(ref.conversation_id)] == list(range(1, len(names) + 1))
