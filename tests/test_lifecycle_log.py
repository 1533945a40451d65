"""The log tells a conversation's story at ``info``: one line per lifecycle step, each with its
logger, pid and conversation id, and never a customer's words."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from thespian.actors import ActorExitRequest

from infra import journal
from infra.config import LoggingSettings
from infra.logs import configure_logging
from runtime import testing
from runtime.gateway import Gateway, UnavailableError
from tests.test_storage_faults import FaultyDisk

SECRET_TEXT = "my card number is 4111 1111"


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "cx.log"
    configure_logging(LoggingSettings(format="json", level="info", file=None))


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _story(log_file: Path, level: str = "info") -> tuple[str, list[dict[str, Any]]]:
    storage = log_file.parent / f"storage-{level}"
    config = {
        "logging": {"file": str(log_file), "level": level},
        "storage": {"archive": str(storage / "archive.sqlite3"), "journal": str(storage / "j")},
    }
    with Gateway.embedded(config, seed=3) as gw:
        ref = gw.start_session("cust-1", "WEB", "visitor-1")
        gw.customer_message(ref.channel_session_id, SECRET_TEXT)
        gw.agent_login("alice")
        gw.agent_login("bob")
        gw.request_agent(ref.conversation_id)
        gw.agent_ready("alice")
        gw.agent_join("bob", ref.conversation_id, role="ASSISTANT")
        gw.agent_leave("alice", ref.conversation_id, reason="DIRECT_TRANSFER")
        gw.end_conversation(ref.conversation_id)
        gw.advance(5)
        gw.agent_logout("alice")
    return ref.conversation_id, _lines(log_file)


def test_each_lifecycle_step_is_one_info_line_about_its_conversation(log_file: Path) -> None:
    conversation_id, lines = _story(log_file)
    steps = [line["event"] for line in lines if line.get("conversation_id") == conversation_id]
    assert steps == [
        "conversation_opened",
        "agent_requested",
        "agent_assigned",
        "conversation_state_changed",
        "participant_role_changed",
        "agent_assigned",
        "conversation_transferred",
        "participant_role_changed",
        "conversation_ended",
        "conversation_closing",
        "agent_left",
        "conversation_closed",
    ]


def test_agent_login_and_logout_are_logged(log_file: Path) -> None:
    _, lines = _story(log_file)
    agents = [(line["event"], line.get("agent_id")) for line in lines if "logged" in line["event"]]
    assert agents == [
        ("agent_logged_in", "alice"),
        ("agent_logged_in", "bob"),
        ("agent_logged_out", "alice"),
    ]


def test_every_line_names_its_logger_and_pid(log_file: Path) -> None:
    _, lines = _story(log_file)
    assert lines
    assert all(line["logger_name"] and line["pid"] == os.getpid() for line in lines)
    assert all("conversation_id" in line for line in lines)


def test_no_line_holds_a_customers_message_even_at_debug(log_file: Path) -> None:
    _, lines = _story(log_file, "debug")
    assert "CUSTOMER_MESSAGE" in [line.get("name") for line in lines]
    assert "4111" not in log_file.read_text(encoding="utf-8")


def test_messages_and_timers_are_left_to_debug(log_file: Path) -> None:
    _, lines = _story(log_file)
    assert not [line for line in lines if line["event"] == "event"]
    _, lines = _story(log_file, "debug")
    assert {"CUSTOMER_MESSAGE", "BOT_MESSAGE", "AGENT_SLA_STARTED"} <= {
        line["name"] for line in lines if line["event"] == "event"
    }


def test_a_restart_logs_each_conversation_it_restores(log_file: Path) -> None:
    storage = log_file.parent / "restart"
    config = {
        "logging": {"file": str(log_file)},
        "storage": {"archive": str(storage / "archive.sqlite3"), "journal": str(storage / "j")},
    }
    with Gateway.embedded(config, seed=4) as gw:
        ref = gw.start_session("cust-9", "WEB", "visitor-9")
    with Gateway.embedded(config, seed=4) as gw:
        assert gw.boot["restored"] == 1
    lines = _lines(log_file)
    assert [
        line["conversations"] for line in lines if line["event"] == "restoring_after_restart"
    ] == [1]
    restored = [line for line in lines if line["event"] == "conversation_restored"]
    assert [(line["conversation_id"], line["state"]) for line in restored] == [
        (ref.conversation_id, "CREATED")
    ]


def test_a_lost_host_logs_its_loss_and_each_conversation_rebuilt_elsewhere(
    log_file: Path,
) -> None:
    storage = log_file.parent / "lost"
    config = {
        "logging": {"file": str(log_file)},
        "storage": {"archive": str(storage / "archive.sqlite3"), "journal": str(storage / "j")},
    }
    with Gateway.embedded(config, seed=5) as gw:
        ref = gw.start_session("cust-7", "WEB", "visitor-7")
        dead = testing.host_of(gw, ref.conversation_id)
        testing.system(gw).tell(dead, ActorExitRequest())
        testing.forget_host(gw, ref.conversation_id)
        assert testing.host_of(gw, ref.conversation_id) != dead
    lines = _lines(log_file)
    exited = [line for line in lines if line["event"] == "host_exited"]
    recovered = [line for line in lines if line["event"] == "host_recovered"]
    assert [(line["level"], line["conversations"]) for line in exited] == [("error", 1)]
    assert [(line["level"], line["host"]) for line in recovered] == [("info", exited[0]["host"])]
    restored = [line for line in lines if line["event"] == "conversation_restored"]
    assert [line["conversation_id"] for line in restored] == [ref.conversation_id]
    dealt = [line for line in lines if line["event"] == "restore_dealt"]
    assert [(line["conversations"], line["hosts"]) for line in dealt] == [
        (1, {restored[0]["host"]: 1})
    ]


def test_a_step_undone_by_a_failed_journal_write_is_not_logged(
    log_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = FaultyDisk()
    monkeypatch.setattr(journal, "DISK", disk)
    storage = log_file.parent / "storage"
    config = {
        "logging": {"file": str(log_file), "level": "info"},
        "storage": {"archive": str(storage / "archive.sqlite3"), "journal": str(storage / "j")},
    }
    with Gateway.embedded(config, seed=3) as gw:
        ref = gw.start_session("cust-1", "WEB", "visitor-1")
        disk.full = True
        with pytest.raises(UnavailableError):
            gw.end_conversation(ref.conversation_id)
    steps = [
        line["event"]
        for line in _lines(log_file)
        if line.get("conversation_id") == ref.conversation_id
    ]
    assert "conversation_ended" not in steps and "conversation_closing" not in steps
    assert steps[0] == "conversation_opened"
