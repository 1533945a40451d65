"""The engine's log lines: who wrote them (logger, pid, conversation), a log file that follows
logrotate, and levels changed at run time through the levels file."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from infra import logs
from infra.config import LoggingSettings


@pytest.fixture(autouse=True)
def _default_logging() -> Iterator[None]:
    yield
    logs.configure_logging(LoggingSettings(format="json", level="info", file=None))


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_an_actor_line_carries_its_logger_name_pid_and_conversation_id(tmp_path: Path) -> None:
    log_file = tmp_path / "cx.log"
    logs.configure_logging(LoggingSettings(format="json", level="info", file=log_file))
    structlog.get_logger("cx.host").info("host_started")
    structlog.get_logger("cx.conversation").bind(conversation_id="c-1").info("opened")
    first, second = _lines(log_file)
    assert (first["logger_name"], first["pid"], first["conversation_id"]) == (
        "cx.host",
        os.getpid(),
        None,
    )
    assert (second["logger_name"], second["conversation_id"]) == ("cx.conversation", "c-1")


def test_a_log_file_renamed_by_logrotate_is_opened_again_at_its_path(tmp_path: Path) -> None:
    log_file = tmp_path / "cx.log"
    logs.configure_logging(LoggingSettings(format="json", level="info", file=log_file))
    log = logs.get_logger("test.rotate")
    log.info("before")
    log_file.rename(tmp_path / "cx.log.1")
    log.info("after")
    assert [line["event"] for line in _lines(tmp_path / "cx.log.1")] == ["before"]
    assert [line["event"] for line in _lines(log_file)] == ["after"]


def test_reopen_creates_the_file_again_at_once(tmp_path: Path) -> None:
    log_file = tmp_path / "cx.log"
    logs.configure_logging(LoggingSettings(format="json", level="info", file=log_file))
    logs.get_logger("test.rotate").info("before")
    log_file.rename(tmp_path / "cx.log.1")
    logs.reopen()
    assert log_file.exists()


def test_the_levels_file_lowers_one_loggers_level_at_run_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logs, "LEVELS_CHECK_S", 0.0)
    log_file, levels = tmp_path / "cx.log", tmp_path / "levels.json"
    logs.configure_logging(
        LoggingSettings(format="json", level="info", file=log_file, levels=levels)
    )
    router, host = structlog.get_logger("cx.router"), structlog.get_logger("cx.host")
    router.debug("hidden")
    levels.write_text(json.dumps({"loggers": {"cx.router": "debug"}}))
    router.debug("shown")
    host.debug("still hidden")
    events = [line["event"] for line in _lines(log_file)]
    assert events == ["log levels changed", "shown"]


def test_a_process_says_once_that_its_levels_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logs, "LEVELS_CHECK_S", 0.0)
    log_file, levels = tmp_path / "cx.log", tmp_path / "levels.json"
    logs.configure_logging(
        LoggingSettings(format="json", level="info", file=log_file, levels=levels)
    )
    levels.write_text(json.dumps({"level": "warning"}))
    log = logs.get_logger("test.levels")
    log.warning("one")
    log.info("dropped")
    log.warning("two")
    lines = _lines(log_file)
    assert [line["event"] for line in lines] == ["log levels changed", "one", "two"]
    assert (lines[0]["default_level"], lines[0]["loggers"]) == ("warning", {})


def test_the_levels_file_holds_from_the_first_line(tmp_path: Path) -> None:
    log_file, levels = tmp_path / "cx.log", tmp_path / "levels.json"
    levels.write_text(json.dumps({"level": "error"}))
    logs.configure_logging(
        LoggingSettings(format="json", level="info", file=log_file, levels=levels)
    )
    log = logs.get_logger("test.levels")
    log.warning("dropped")
    log.error("kept")
    assert [line["event"] for line in _lines(log_file)] == ["kept"]


def test_a_levels_file_that_is_not_json_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logs, "LEVELS_CHECK_S", 0.0)
    log_file, levels = tmp_path / "cx.log", tmp_path / "levels.json"
    logs.configure_logging(
        LoggingSettings(format="json", level="info", file=log_file, levels=levels)
    )
    levels.write_text("{half")
    logs.get_logger("test.levels").info("kept")
    assert [line["event"] for line in _lines(log_file)][-1] == "kept"


def test_a_message_is_logged_by_its_shape_never_its_values() -> None:
    from actors.messages import Apply, Batch, Deliver
    from domain.commands import CustomerMessage

    message = Batch(0, (Deliver("s:cs-1", Apply(CustomerMessage("cs-1", "my pin is 1234", "m-1"))),))
    shown = logs.shape(message)
    assert shown == "Batch[1 x Deliver[Apply[CustomerMessage]]]"
    assert "1234" not in shown


def test_a_librarys_standard_logging_goes_through_structlog_from_its_level(
    tmp_path: Path,
) -> None:
    log_file = tmp_path / "cx.log"
    logs.configure_logging(LoggingSettings(format="json", level="info", file=log_file))
    logs.route_stdlib("somelib", level="warning")
    library = logging.getLogger("somelib.server")
    library.info("started")  # below the routed level: dropped
    library.warning("port %d busy", 7800)
    lines = _lines(log_file)
    assert [(line["logger_name"], line["event"], line["level"]) for line in lines] == [
        ("somelib.server", "port 7800 busy", "warning")
    ]
