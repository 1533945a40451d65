"""Nothing is acknowledged that is not durable: a journal whose writes or fsyncs fail."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra import journal
from runtime.gateway import Gateway, IllegalTransitionError, UnavailableError
from tests.conftest import storage_config


class FaultyDisk(journal.Disk):
    """A disk that fills up (every write fails with ENOSPC) or whose fsync fails, on demand."""

    def __init__(self) -> None:
        self.full = False
        self.fsync_fails = False
        self.refused_writes = 0

    def write(self, fd: int, data: bytes) -> int:
        if self.full:
            self.refused_writes += 1
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(fd, data)

    def fsync(self, fd: int) -> None:
        if self.fsync_fails:
            raise OSError(errno.EIO, "Input/output error")
        super().fsync(fd)


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> FaultyDisk:
    faulty = FaultyDisk()
    monkeypatch.setattr(journal, "DISK", faulty)
    return faulty


def config(tmp_path: Path, **storage: Any) -> dict[str, Any]:
    base = storage_config(tmp_path)
    base["storage"].update(storage)
    return base


@pytest.fixture
def gw(tmp_path: Path, disk: FaultyDisk) -> Iterator[Gateway]:
    with Gateway.embedded(config(tmp_path), seed=0) as gateway:
        yield gateway


def names(gw: Gateway, conversation_id: str) -> list[str]:
    return [e["name"] for e in gw.events(conversation_id)]


def texts(gw: Gateway, conversation_id: str) -> list[str]:
    return [
        e["data"]["text"] for e in gw.events(conversation_id) if e["name"] == "CUSTOMER_MESSAGE"
    ]


def test_a_message_whose_journal_write_fails_is_refused_as_unavailable(
    gw: Gateway, disk: FaultyDisk
) -> None:
    ref = gw.start_session("cust-1", "WEB", "v")
    before = gw.events(ref.conversation_id)
    disk.full = True
    with pytest.raises(UnavailableError, match="storage failed"):
        gw.customer_message(ref.channel_session_id, "lost?", message_id="m-1")
    assert gw.events(ref.conversation_id) == before
    assert disk.refused_writes == 1


def test_a_retry_after_the_disk_recovers_is_applied_once_not_taken_for_a_duplicate(
    gw: Gateway, disk: FaultyDisk
) -> None:
    ref = gw.start_session("cust-1", "WEB", "v")
    disk.full = True
    with pytest.raises(UnavailableError):
        gw.customer_message(ref.channel_session_id, "hello", message_id="m-1")
    disk.full = False
    gw.advance(2)  # the host probes its journal and takes writes again
    gw.customer_message(ref.channel_session_id, "hello", message_id="m-1")
    gw.customer_message(ref.channel_session_id, "hello", message_id="m-1")  # a real duplicate
    assert texts(gw, ref.conversation_id) == ["hello"]


def test_commands_are_refused_before_they_touch_anything_while_the_journal_fails(
    gw: Gateway, disk: FaultyDisk
) -> None:
    ref = gw.start_session("cust-1", "WEB", "v")
    disk.full = True
    with pytest.raises(UnavailableError):
        gw.customer_message(ref.channel_session_id, "one")
    for text in ("two", "three"):
        with pytest.raises(UnavailableError, match="nothing was applied"):
            gw.customer_message(ref.channel_session_id, text)
    assert disk.refused_writes == 1  # the first failure; the others never reached the disk
    assert texts(gw, ref.conversation_id) == []


def test_an_agent_message_while_storage_fails_is_unavailable_and_stored_once_when_sent_again(
    gw: Gateway, disk: FaultyDisk
) -> None:
    gw.agent_login("alice")
    ref = gw.start_session("cust-1", "WEB", "v")
    gw.agent_join("alice", ref.conversation_id)
    disk.full = True
    with pytest.raises(UnavailableError):  # not "it is closing"
        gw.agent_message("alice", ref.conversation_id, "hi")
    disk.full = False
    gw.advance(2)
    gw.agent_message("alice", ref.conversation_id, "hi")
    gw.end_conversation(ref.conversation_id)
    assert gw.conversation(ref.conversation_id)["state"] == "CLOSED"
    assert names(gw, ref.conversation_id).count("AGENT_MESSAGE") == 1


def test_a_new_session_refused_by_storage_leaves_no_conversation_behind(
    gw: Gateway, disk: FaultyDisk
) -> None:
    disk.full = True
    with pytest.raises(UnavailableError):
        gw.start_session("cust-1", "WEB", "v")
    assert gw.status()["conversations"] == {}
    disk.full = False
    gw.advance(2)
    ref = gw.start_session("cust-1", "WEB", "v")
    assert gw.status()["conversations"] == {"CREATED": 1}
    assert names(gw, ref.conversation_id).count("CHANNEL_SESSION_STARTED") == 1


def test_a_second_session_refused_by_storage_joins_the_live_conversation_when_retried(
    gw: Gateway, disk: FaultyDisk
) -> None:
    ref = gw.start_session("cust-1", "WEB", "v")
    disk.full = True
    with pytest.raises(UnavailableError):
        gw.start_session("cust-1", "SMS", "+1")
    disk.full = False
    gw.advance(2)
    again = gw.start_session("cust-1", "SMS", "+1")
    assert again.conversation_id == ref.conversation_id
    assert names(gw, ref.conversation_id).count("CHANNEL_SESSION_STARTED") == 2
    assert len(gw.conversation(ref.conversation_id)["channel_sessions"]) == 2


def test_a_failed_fsync_under_the_always_policy_is_not_acknowledged(
    tmp_path: Path, disk: FaultyDisk
) -> None:
    with Gateway.embedded(config(tmp_path, fsync="always"), seed=0) as gw:
        ref = gw.start_session("cust-1", "WEB", "v")
        disk.fsync_fails = True
        with pytest.raises(UnavailableError, match="EIO"):
            gw.customer_message(ref.channel_session_id, "lost?")
        assert texts(gw, ref.conversation_id) == []


def test_status_counts_a_failing_journal_until_it_recovers(gw: Gateway, disk: FaultyDisk) -> None:
    ref = gw.start_session("cust-1", "WEB", "v")
    disk.full = True
    with pytest.raises(UnavailableError):
        gw.customer_message(ref.channel_session_id, "x")
    assert gw.status()["storage"] == {"failing_journals": 1}
    gw.advance(5)
    assert gw.status()["storage"] == {"failing_journals": 1}  # still full: probes keep failing
    disk.full = False
    gw.advance(1)
    assert gw.status()["storage"] == {"failing_journals": 0}


def test_timers_due_while_the_journal_fails_fire_once_it_recovers(
    gw: Gateway, disk: FaultyDisk
) -> None:
    ref = gw.start_session("cust-1", "WEB", "v")
    disk.full = True
    gw.advance(400)  # the customer inactivity timer (300 s) is due meanwhile
    assert gw.conversation(ref.conversation_id)["state"] == "CREATED"
    disk.full = False
    gw.advance(1)
    assert "CUSTOMER_SLA_EXPIRED" in names(gw, ref.conversation_id)
    assert gw.conversation(ref.conversation_id)["state"] == "CLOSED"


def test_after_a_restart_the_journal_holds_exactly_what_was_acknowledged(
    tmp_path: Path, disk: FaultyDisk
) -> None:
    acknowledged: list[str] = []
    with Gateway.embedded(config(tmp_path), seed=0) as gw:
        ref = gw.start_session("cust-1", "WEB", "v")
        for n in range(30):
            disk.full = n % 3 == 1  # every third write fails
            if not disk.full:
                gw.advance(2)  # probe: the journal takes writes again
            try:
                gw.customer_message(ref.channel_session_id, f"m{n}", message_id=f"id-{n}")
            except UnavailableError:
                continue
            acknowledged.append(f"m{n}")
        disk.full = False
        gw.advance(2)
        live = texts(gw, ref.conversation_id)
    with Gateway.embedded(config(tmp_path), seed=0) as gw:
        assert gw.boot["restored"] == 1
        assert texts(gw, ref.conversation_id) == live == acknowledged
        assert len(acknowledged) == 20


def test_a_refusal_by_the_state_machine_is_still_a_refusal_while_storage_is_healthy(
    gw: Gateway,
) -> None:
    ref = gw.start_session("cust-1", "WEB", "v")
    with pytest.raises(IllegalTransitionError):
        gw.resume("nobody", ref.conversation_id)


def test_a_timer_threshold_fires_once_after_a_conversation_was_put_back(
    tmp_path: Path, disk: FaultyDisk
) -> None:
    settings = config(tmp_path)
    settings["timers"] = {
        "customer_inactivity": {"seconds": 100, "thresholds": [{"percent": 50, "action": "NONE"}]}
    }
    with Gateway.embedded(settings, seed=0) as gw:
        ref = gw.start_session("cust-1", "WEB", "v")
        gw.customer_message(ref.channel_session_id, "hi")
        disk.full = True
        with pytest.raises(UnavailableError):  # undone: the conversation is put back
            gw.customer_message(ref.channel_session_id, "again")
        disk.full = False
        gw.advance(1)
        gw.advance(60)
        assert names(gw, ref.conversation_id).count("CUSTOMER_SLA_THRESHOLD") == 1
