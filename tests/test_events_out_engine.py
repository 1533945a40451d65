"""Events out on a real engine started by ``cx start``: the daemon's upkeep POSTs a
conversation's events to a webhook in order, signed, while it is live and after it closes;
``cx forget`` is refused while the customer's conversation is live and deletes their data
once it is closed."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime import procs
from runtime.gateway import Gateway
from runtime.webhooks import verify
from tests.multiproc_support import eventually, system_pids, write_config
from tests.test_cli import cx
from tests.webhook_support import Receiver

SECRET = "a-secret-of-some-length"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver.on_free_port() as receiving:
        yield receiving


@pytest.mark.multiproc
def test_a_conversation_reaches_the_webhook_while_live_and_cx_forget_deletes_it_closed(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.up()
    url = f"http://127.0.0.1:{receiver.port}/hook"
    config = write_config(tmp_path, webhooks=[{"name": "crm", "url": url, "secret": SECRET}])
    assert cx("start", "--config", str(config), cwd=tmp_path).returncode == 0
    try:
        with Gateway.connect(config) as gw:
            ref = gw.start_session("cust-1", "WEB", "browser-1")
            gw.customer_message(ref.channel_session_id, "hello")
            live = [(ref.conversation_id, e["seq"]) for e in gw.events(ref.conversation_id)]
            eventually(lambda: receiver.received == live)  # before it closes
            refused = cx("forget", "cust-1", "--config", str(config), cwd=tmp_path)
            assert refused.returncode == 2 and ref.conversation_id in refused.stderr
            gw.end_conversation(ref.conversation_id)
            eventually(lambda: gw.conversation(ref.conversation_id)["state"] == "CLOSED")
            last = gw.conversation(ref.conversation_id)["seq"]

        eventually(lambda: len(receiver.received) == last)
        assert receiver.received == [(ref.conversation_id, seq) for seq in range(1, last + 1)]
        body, signature = receiver.bodies[-1]
        assert verify(SECRET, signature, body)
        document = json.loads(body)
        assert (document["conversation_id"], document["seq"]) == (ref.conversation_id, last)

        forgot = cx("forget", "cust-1", "--config", str(config), cwd=tmp_path)
        assert forgot.returncode == 0, forgot.stderr
        assert "1 conversations" in forgot.stdout
        assert cx("history", ref.room_id, "--config", str(config), cwd=tmp_path).returncode == 2
    finally:
        cx("stop", "--config", str(config), cwd=tmp_path)
        left = system_pids(config)
        procs.signal_all(left, signal.SIGKILL)
        assert not left
