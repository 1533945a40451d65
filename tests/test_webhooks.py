"""Webhooks: a receiver that is down gets every event afterwards, in order, once each by
sequence number; signatures verify with the secret and fail otherwise; a restart resumes
from the durable cursor; a backlog over its bound is passed over and reported. Time is the
test's: each step is given its ``now``, nothing sleeps."""

from __future__ import annotations

import dataclasses
import http.server
import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from infra.archive import Archive
from infra.archive_pg import PgArchive
from infra.archive_store import ArchiveStore
from infra.config import load_config
from infra.config.webhooks import WebhookSettings
from runtime.upkeep import Upkeep
from runtime.webhooks import WebhookDispatcher, post_http, sign, verify
from tests.multiproc_support import eventually
from tests.test_archive import late_activity, make_conversation
from tests.webhook_support import Receiver, whispered

SECRET = "a-secret-of-some-length"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver.on_free_port() as receiving:
        yield receiving


def webhook(receiver: Receiver, **overrides: Any) -> WebhookSettings:
    settings = WebhookSettings(
        name="crm", url=f"http://127.0.0.1:{receiver.port}/hook", secret=SECRET,
        events=frozenset(), timeout_seconds=5, backoff_seconds=1, max_backoff_seconds=16,
        max_backlog=100, include_agent_only=False,
    )  # fmt: skip
    return dataclasses.replace(settings, **overrides)


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    with Archive(tmp_path / "archive.db") as opened:
        for index in range(3):
            record, events = make_conversation(f"conv-{index}", created_at=1_000 + index)
            opened.store_conversation(record, events)
        yield opened


def everything(archive: Archive) -> list[tuple[str, int]]:
    return [(f"conv-{i}", e.seq) for i in range(3) for e in archive.events(f"conv-{i}")]


def test_a_receiver_down_for_a_minute_gets_every_event_afterwards_in_order_once_each(
    archive: Archive, receiver: Receiver
) -> None:
    dispatcher = WebhookDispatcher(archive, webhook(receiver))
    now = 0
    while now < 60_000:  # down for a minute: retried with backoff 1, 2, 4, 8, 16, 16... s
        now += dispatcher.step(now)
    assert receiver.received == []
    assert dispatcher.attempts == 7  # at 0, 1, 3, 7, 15, 31, 47 s

    receiver.up()
    dispatcher.step(now)  # the next retry, due at 63 s
    assert dispatcher.failures == 0
    dispatcher.step(now + 60_000)  # nothing is delivered twice
    assert receiver.received == everything(archive)


def test_late_events_of_a_delivered_conversation_follow_it(
    archive: Archive, receiver: Receiver
) -> None:
    receiver.up()
    dispatcher = WebhookDispatcher(archive, webhook(receiver))
    dispatcher.step(0)
    before = everything(archive)
    archive.append_events("conv-1", [late_activity(4)])
    dispatcher.step(1_000)
    assert receiver.received == [*before, ("conv-1", 4)]


def test_each_body_is_signed_with_the_secret_and_a_tampered_one_fails(
    archive: Archive, receiver: Receiver
) -> None:
    receiver.up()
    WebhookDispatcher(archive, webhook(receiver)).step(5_000)
    body, signature = receiver.bodies[1]
    assert verify(SECRET, signature, body)
    assert signature == sign(SECRET, 5_000, body)
    assert not verify("another-secret-entirely", signature, body)
    assert not verify(SECRET, signature, body.replace(b"conv-0", b"conv-9"))
    assert not verify(SECRET, "t=5000", body)
    document = json.loads(body)
    assert (document["conversation_id"], document["seq"], document["event"]["name"]) == (
        "conv-0", 2, "CUSTOMER_MESSAGE",
    )  # fmt: skip


def test_only_the_events_named_by_the_filter_are_delivered(
    archive: Archive, receiver: Receiver
) -> None:
    receiver.up()
    WebhookDispatcher(archive, webhook(receiver, events=frozenset({"CUSTOMER_MESSAGE"}))).step(0)
    assert receiver.received == [("conv-0", 2), ("conv-1", 2), ("conv-2", 2)]


@pytest.mark.parametrize(("include_agent_only", "seqs"), [(False, [1, 2, 4]), (True, [1, 2, 3, 4])])
def test_a_whisper_is_delivered_only_to_a_webhook_that_includes_agent_only_events(
    tmp_path: Path, receiver: Receiver, include_agent_only: bool, seqs: list[int]
) -> None:
    receiver.up()
    with Archive(tmp_path / "whispers.db") as archive:
        archive.store_conversation(*whispered("conv-w", 1_000))
        hook = webhook(receiver, include_agent_only=include_agent_only)
        dispatcher = WebhookDispatcher(archive, hook)
        dispatcher.step(0)
        dispatcher.step(10_000)  # nothing is left: the whisper passed over is done
    assert receiver.received == [("conv-w", seq) for seq in seqs]


def test_a_restarted_dispatcher_resumes_after_the_last_acknowledged_event(
    archive: Archive, receiver: Receiver
) -> None:
    receiver.up()
    WebhookDispatcher(archive, webhook(receiver)).step(0)
    before = everything(archive)
    archive.append_events("conv-1", [late_activity(4), late_activity(5)])
    receiver.status = 503  # refuses what follows: not acknowledged
    WebhookDispatcher(archive, webhook(receiver)).step(1_000)
    receiver.status = 200
    again = WebhookDispatcher(archive, webhook(receiver))  # a new process: state from the archive
    again.step(2_000)
    assert receiver.received == [*before, ("conv-1", 4), ("conv-1", 5)]


def test_a_backlog_over_its_bound_passes_over_the_oldest_and_reports_it(
    archive: Archive, receiver: Receiver
) -> None:
    dispatcher = WebhookDispatcher(archive, webhook(receiver, max_backlog=1))
    with capture_logs() as logs:
        dispatcher.step(0)
    assert dispatcher.skipped == 2
    (over,) = [line for line in logs if line["event"] == "webhook_backlog_over_bound"]
    assert (over["skipped"], over["log_level"]) == (2, "warning")

    receiver.up()
    dispatcher.step(10_000)
    assert receiver.received == [("conv-2", 1), ("conv-2", 2), ("conv-2", 3)]


def test_the_upkeep_delivers_every_configured_webhook(tmp_path: Path, receiver: Receiver) -> None:
    settings = load_config(
        {
            "storage": {"archive": str(tmp_path / "archive.db")},
            "webhooks": [
                {"name": "a", "url": f"http://127.0.0.1:{receiver.port}/a", "secret": SECRET},
                {"name": "b", "url": f"http://127.0.0.1:{receiver.port}/b", "secret": SECRET,
                 "events": ["TOPIC_STATE_CHANGED"]},
            ],
        }
    )  # fmt: skip
    with Archive(tmp_path / "archive.db") as archive:
        record, events = make_conversation()
        archive.store_conversation(record, events)
    receiver.up()
    upkeep = Upkeep(settings, clock=lambda: 0)
    try:
        assert upkeep.tick(0) == 1_000
    finally:
        upkeep.stop()
    assert sorted(receiver.received) == sorted(
        [("conv-1", 1), ("conv-1", 2), ("conv-1", 3), ("conv-1", 3)]
    )


def test_a_receiver_that_answers_slowly_does_not_delay_another_webhooks_deliveries(
    tmp_path: Path, receiver: Receiver, archive: Archive
) -> None:
    """Each webhook has a thread of its own: while the first receiver holds its first POST
    (until the test releases it), the second gets every event; then the first gets them all,
    in order."""
    with Receiver.on_free_port() as slow:
        slow.gate.clear()
        slow.up()
        receiver.up()
        hooks = [
            {"name": "slow", "url": f"http://127.0.0.1:{slow.port}/", "secret": SECRET,
             "timeout_seconds": 600},
            {"name": "fast", "url": f"http://127.0.0.1:{receiver.port}/", "secret": SECRET},
        ]  # fmt: skip
        settings = load_config(
            {"storage": {"archive": str(tmp_path / "archive.db")}, "webhooks": hooks}
        )
        upkeep = Upkeep(settings, clock=lambda: 0)
        upkeep.start()
        try:
            eventually(lambda: slow.arrived == 1, timeout=10)  # its first POST is held
            eventually(lambda: receiver.received == everything(archive), timeout=10)
            assert (slow.arrived, slow.received) == (1, [])  # still held
            slow.gate.set()
            eventually(lambda: slow.received == everything(archive), timeout=10)
        finally:
            slow.gate.set()
            upkeep.stop()
        assert not upkeep.running


def test_a_look_from_a_write_time_skips_conversations_written_before_it(
    archive: Archive, tmp_path: Path
) -> None:
    with sqlite3.connect(tmp_path / "archive.db") as db:
        db.execute("UPDATE conversations SET touched = 1000")  # written long ago
    db.close()
    assert archive.last_touched() == 1000
    assert len(archive.webhook_pending("crm", 0, 10)) == 3
    assert archive.webhook_pending("crm", 0, 10, touched_from=1001) == []
    archive.append_events("conv-1", [late_activity(4)])  # a write: touched again
    (again,) = archive.webhook_pending("crm", 0, 10, touched_from=1001)
    assert (again.conversation_id, again.seq) == ("conv-1", 4)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ArchiveStore]:
    opened: ArchiveStore
    if request.param == "sqlite":
        opened = Archive(tmp_path / "backend.db")
    else:
        opened = PgArchive(request.getfixturevalue("postgres_dsn"))
    with opened:
        yield opened


def test_the_cursors_of_live_conversations_read_back_with_zero_where_none_was_kept(
    backend: ArchiveStore,
) -> None:
    backend.webhook_advance("crm", "live-1", 4)
    backend.webhook_advance("crm", "live-1", 2)  # never back
    backend.webhook_advance("other", "live-2", 9)
    ids = [f"live-{n}" for n in range(1, 1202)]  # more than one statement's worth

    delivered = backend.webhook_delivered("crm", ids)

    assert delivered == {**dict.fromkeys(ids, 0), "live-1": 4}


def test_a_redirect_is_not_followed_and_fails_the_delivery() -> None:
    """Following a 302 would send a GET without the body, whose 200 would count as
    delivered."""
    gets: list[str] = []

    class Redirecting(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(302)
            self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            gets.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirecting)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        assert post_http(url, b"{}", {"Content-Type": "application/json"}, 5.0) == 302
    finally:
        server.shutdown()
        server.server_close()
    assert gets == []
