"""Retention and deletion on request, on SQLite and PostgreSQL: the sweep removes exactly the
conversations that ended before its limit, with everything of theirs; forgetting a customer
removes everything the archive holds of them and nothing of anyone else."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from domain.enums import Channel, RoomMode, RoomType
from infra.archive import Archive
from infra.archive_pg import PgArchive
from infra.archive_rows import RoomRecord
from infra.archive_store import ArchiveStore
from infra.config import load_config
from runtime.upkeep import DAY_MS, Upkeep
from tests.multiproc_support import eventually
from tests.test_archive import make_conversation

#: Conversation ids by when they were created (each ends 10 s later).
CREATED = {"old": 1_000, "older": 500, "recent": 5 * DAY_MS}


@pytest.fixture(params=["sqlite", "postgres"])
def archive(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ArchiveStore]:
    opened: ArchiveStore
    if request.param == "sqlite":
        opened = Archive(tmp_path / "archive.db")
    else:
        opened = PgArchive(request.getfixturevalue("postgres_dsn"))
    with opened:
        yield opened


def _store(archive: ArchiveStore, conversation_id: str, created_at: int, customer: str) -> None:
    record, events = make_conversation(
        conversation_id, room_id=f"room-{customer}", created_at=created_at
    )
    archive.store_conversation(dataclasses.replace(record, customer_id=customer), events)


def _customer(archive: ArchiveStore, customer: str) -> None:
    room = RoomRecord(f"room-{customer}", RoomType.CUSTOMER, RoomMode.CONTACT_CENTER, customer, 1)
    archive.record_customer_identity(customer, str(Channel.WEB), f"web-{customer}", new_room=room)


def test_the_sweep_removes_exactly_the_conversations_ended_before_its_limit(
    archive: ArchiveStore,
) -> None:
    for conversation_id, created_at in CREATED.items():
        _store(archive, conversation_id, created_at, "cust-1")
    archive.webhook_advance("crm", "old", 3)

    assert archive.sweep_closed_before(DAY_MS) == 2
    assert [c.id for c in archive.room_conversations("room-cust-1")] == ["recent"]
    assert archive.events("old") == [] and archive.conversation("older") is None
    assert archive.counts()["events"] == 3
    assert archive.webhook_pending("crm", 0, 10)[0].conversation_id == "recent"
    assert archive.sweep_closed_before(DAY_MS) == 0


def test_the_upkeep_sweeps_by_storage_retention_days(tmp_path: Path) -> None:
    settings = load_config(
        {"storage": {"archive": str(tmp_path / "archive.db"), "retention_days": 3}}
    )
    with Archive(tmp_path / "archive.db") as archive:
        for conversation_id, created_at in CREATED.items():
            _store(archive, conversation_id, created_at, "cust-1")
    upkeep = Upkeep(settings)
    try:
        upkeep.tick(4 * DAY_MS)  # keeps what ended in the last 3 days: "recent"
        with Archive(tmp_path / "archive.db") as archive:
            assert [c.id for c in archive.room_conversations("room-cust-1")] == ["recent"]
        assert upkeep.tick(4 * DAY_MS + 1) == 3_600_000 - 1  # the next sweep in an hour
    finally:
        upkeep.stop()


def test_retention_none_keeps_everything_and_starts_no_thread(tmp_path: Path) -> None:
    settings = load_config({"storage": {"archive": str(tmp_path / "archive.db")}})
    assert settings.storage.retention_days is None
    assert not Upkeep(settings).needed


def test_forgetting_a_customer_removes_everything_of_theirs_and_nothing_else(
    archive: ArchiveStore,
) -> None:
    for customer in ("cust-1", "cust-2"):
        _customer(archive, customer)
    _store(archive, "a1", 1_000, "cust-1")
    _store(archive, "a2", 2_000, "cust-1")
    _store(archive, "b1", 1_500, "cust-2")
    archive.webhook_advance("crm", "a1", 3)

    forgotten = archive.forget_customer("cust-1")

    assert forgotten == {
        "conversations": 2, "events": 6, "identities": 1, "rooms": 1, "customers": 1,
    }  # fmt: skip
    assert archive.room("room-cust-1") is None
    assert archive.contact_center_room_of("cust-1") is None
    assert not archive.has_identity("cust-1", str(Channel.WEB), "web-cust-1")
    assert archive.conversation("a1") is None and archive.events("a2") == []
    assert archive.conversation_of_session("a1-s1") is None
    assert archive.counts() == {"conversations": 1, "events": 3, "rooms": 1}
    assert archive.has_identity("cust-2", str(Channel.WEB), "web-cust-2")
    assert archive.forget_customer("cust-1") == dict.fromkeys(forgotten, 0)


def test_the_upkeep_thread_sweeps_then_stops_closing_its_archive_on_its_own_thread(
    tmp_path: Path,
) -> None:
    """The thread opens the SQLite archive, so it must close it too: closing it from the
    thread that calls stop() would raise (an SQLite connection belongs to its thread)."""
    settings = load_config(
        {"storage": {"archive": str(tmp_path / "archive.db"), "retention_days": 3}}
    )
    with Archive(tmp_path / "archive.db") as archive:
        for conversation_id, created_at in CREATED.items():
            _store(archive, conversation_id, created_at, "cust-1")

    def kept() -> list[str]:
        with Archive(tmp_path / "archive.db") as archive:
            return [c.id for c in archive.room_conversations("room-cust-1")]

    upkeep = Upkeep(settings, clock=lambda: 4 * DAY_MS)
    upkeep.start()
    try:
        eventually(lambda: kept() == ["recent"], timeout=30)  # the thread's first sweep
    finally:
        upkeep.stop()
    assert not upkeep.running
