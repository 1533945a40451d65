"""A drain, then a stop, of a real multiprocTCPBase engine: every acknowledged message is in
the archive, and a client's next call is refused at once. Bounded; the system is always shut
down (every process of it ended, killed if need be). Also ``cx drain`` and ``cx reload``
without a running engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.archive_store import open_archive
from infra.config import load_config
from runtime.cli import main
from runtime.gateway import Gateway, UnavailableError
from tests.conftest import watchdog
from tests.multiproc_support import eventually, free_port, running_system, write_config

#: Only catches a hang: a refused call is answered in well under a second.
HANG_S = 10.0


@pytest.mark.multiproc
def test_a_drain_then_stop_loses_nothing_and_the_next_call_is_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    with running_system(config) as system, Gateway.connect(config) as gw:
        gw.agent_login("agent-1")
        gw.agent_ready("agent-1")
        ref = gw.start_session("cust-1", "WEB", "visitor-1")
        gw.customer_message(ref.channel_session_id, "I want an agent", message_id="m-1")
        eventually(lambda: gw.conversation(ref.conversation_id)["state"] == "ACTIVE")

        assert gw.drain_engine() == {"draining": True, "live": 1}
        with pytest.raises(UnavailableError, match="draining"):
            gw.start_session("cust-2", "WEB", "visitor-2")
        gw.agent_message("agent-1", ref.conversation_id, "How can I help?")
        gw.customer_message(ref.channel_session_id, "That was all", message_id="m-2")
        gw.end_conversation(ref.conversation_id)
        drain = ["drain", "--wait", "--timeout", str(HANG_S), "--config", str(config)]
        assert main(drain) == 0  # returns once the conversation is CLOSED and archived
        assert gw.drain_status() == {"draining": True, "live": 0}

        system.shutdown()
        with watchdog(HANG_S, "a call after the stop"), pytest.raises(UnavailableError):
            gw.customer_message(ref.channel_session_id, "after the stop", message_id="m-3")

    archive = open_archive(load_config(config).storage, create=False)
    try:
        events = archive.events(ref.conversation_id)
        record = archive.conversation(ref.conversation_id)
    finally:
        archive.close()
    texts = [(e.name, e.data.get("text")) for e in events]
    assert record is not None and record.state == "CLOSED"
    assert texts.count(("CUSTOMER_MESSAGE", "I want an agent")) == 1
    assert texts.count(("CUSTOMER_MESSAGE", "That was all")) == 1
    assert texts.count(("AGENT_MESSAGE", "How can I help?")) == 1
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


@pytest.mark.parametrize("command", [["drain"], ["drain", "--wait"], ["reload"]])
def test_drain_and_reload_without_a_running_engine_say_so_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    config = write_config(tmp_path, system={"admin_port": free_port()})

    assert main([*command, "--config", str(config)]) == 1

    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"cx {command[0]}: ")
    assert "no actor system" in lines[0] or "not running" in lines[0]
