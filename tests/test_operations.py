"""Deployment basics on a real engine started by ``cx start``: the configuration's paths found
from any directory, the log reopened on SIGHUP with the engine running on, levels changed at
run time in every process, titled processes and no zombie, systemd readiness, and ``cx``
commands that end in one line instead of a traceback."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra import proctitle
from runtime import cli, procs
from runtime.pidfile import PID_FILE, Record, read_record
from tests.multiproc_support import eventually, free_port, system_pids

CX = str(Path(sys.executable).parent / "cx")
#: Bounds each cx command of these tests (a limit on a hang, never a measurement).
COMMAND_LIMIT_S = 90


def _cx(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CX, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=COMMAND_LIMIT_S,
        env=env,
        check=False,
    )


def _config(directory: Path) -> Path:
    """A config.yaml whose storage paths are relative: they are the file's directory's."""
    directory.mkdir(parents=True)
    path = directory / "config.yaml"
    config = {
        "system": {"admin_port": free_port()},
        "storage": {"archive": "data/archive.sqlite3", "journal": "data/journal"},
        "logging": {"level": "info"},
    }
    path.write_text(yaml.safe_dump(config))
    return path


def _stop(config: Path) -> None:
    _cx("stop", "--config", str(config), cwd=config.parent)
    left = system_pids(config)
    procs.signal_all(left, signal.SIGKILL)
    assert not left, f"processes left behind by the test: {sorted(left)}"


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Record]]:
    config = _config(tmp_path_factory.mktemp("ops") / "etc")
    started = _cx("start", "--config", "config.yaml", cwd=config.parent)
    try:
        assert started.returncode == 0, started.stderr
        record = read_record(config.parent / "data" / PID_FILE)
        assert record is not None
        yield config, record
    finally:
        _stop(config)


def _log(config: Path) -> list[dict[str, Any]]:
    path = config.parent / "data" / "cx.log"
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    return [json.loads(line) for line in lines if line.startswith("{")]


def _open_session(config: Path, customer: str) -> str:
    sent = _cx(
        "send", "start_session", customer, "WEB", "v", "--config", "config.yaml", cwd=config.parent
    )
    assert sent.returncode == 0, sent.stderr
    return str(json.loads(sent.stdout)["conversation_id"])


@pytest.mark.multiproc
def test_cx_status_from_another_directory_finds_the_same_engine(
    engine: tuple[Path, Record], tmp_path: Path
) -> None:
    config, record = engine
    status = _cx("status", "--json", "--config", os.path.relpath(config, tmp_path), cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["engine"]["pid"] == record.pid
    assert list(tmp_path.iterdir()) == []  # nothing created where the command ran


@pytest.mark.multiproc
def test_sighup_reopens_the_log_and_the_engine_keeps_running(engine: tuple[Path, Record]) -> None:
    config, record = engine
    log = config.parent / "data" / "cx.log"
    log.rename(log.with_name("cx.log.1"))  # as logrotate does
    os.kill(record.pid, signal.SIGHUP)
    eventually(lambda: any(line["event"] == "log file reopened" for line in _log(config)))
    conversation_id = _open_session(config, "cust-hup")
    assert procs.alive(record.pid)
    opened = [line for line in _log(config) if line["event"] == "conversation_opened"]
    assert [line["conversation_id"] for line in opened] == [conversation_id]
    assert opened[0]["pid"] != record.pid  # written by the host's process, in the new file


@pytest.mark.multiproc
def test_cx_log_level_reaches_every_process_that_logs(engine: tuple[Path, Record]) -> None:
    config, _ = engine
    changed = _cx(
        "log-level",
        "debug",
        "--logger",
        "cx.conversation",
        "--config",
        "config.yaml",
        cwd=config.parent,
    )
    assert changed.returncode == 0, changed.stderr

    def debug_lines() -> list[dict[str, Any]]:
        _open_session(config, "cust-debug")
        return [line for line in _log(config) if line["event"] == "event"]

    eventually(lambda: bool(debug_lines()), timeout=30)
    told = {line["pid"] for line in _log(config) if line["event"] == "log levels changed"}
    assert {line["pid"] for line in debug_lines()} <= told


@pytest.mark.multiproc
def test_every_process_has_a_title_and_none_is_left_a_zombie(engine: tuple[Path, Record]) -> None:
    _, record = engine
    members = record.members()
    assert members and all(proctitle.is_engine_title(procs.cmdline(pid)) for pid in members)
    ours = {pid for pid in members if procs.cmdline(pid)[0].startswith(proctitle.PREFIX)}
    assert len(ours) >= len(members) - 2  # all but Thespian's admin and logger

    def zombies() -> list[int]:
        pids = map(int, filter(str.isdigit, os.listdir("/proc")))
        return [p for p in pids if procs.parent_of(p) == record.pid and not procs.alive(p)]

    eventually(lambda: zombies() == [], timeout=10)


@pytest.mark.multiproc
def test_the_foreground_engine_tells_systemd_ready_then_stopping(tmp_path: Path) -> None:
    config = _config(tmp_path / "etc")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(tmp_path / "notify"))
        notify.settimeout(COMMAND_LIMIT_S)
        environment = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify")}
        engine = subprocess.Popen(
            [CX, "start", "--foreground", "--config", "config.yaml"],
            cwd=config.parent,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            ready = notify.recv(64)
            engine.send_signal(signal.SIGTERM)
            stopping = notify.recv(64)
            assert engine.wait(COMMAND_LIMIT_S) == 0
        finally:
            with contextlib.suppress(ProcessLookupError):
                engine.kill()
            engine.wait()
            _stop(config)
    assert (ready, stopping) == (b"READY=1", b"STOPPING=1")


def test_cx_stop_against_a_port_held_by_another_program_says_so_in_one_line(
    tmp_path: Path,
) -> None:
    # Another program: a child of its own (this process may carry an engine's title, left by
    # a test that ran a cx command in it), holding a port until its standard input closes.
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_A_PORT], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout is not None
        port = int(holder.stdout.readline())
        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump({"system": {"admin_port": port}}))
        stopped = _cx("stop", "--config", "config.yaml", cwd=tmp_path)
    finally:
        holder.communicate(timeout=10)
    assert stopped.returncode == 1
    assert stopped.stderr.count("\n") == 1
    assert "held by another program" in stopped.stderr
    assert f"pid {holder.pid}" in stopped.stderr


_HOLD_A_PORT = """
import socket, sys
with socket.socket() as held:
    held.bind(("127.0.0.1", 0))
    held.listen()
    print(held.getsockname()[1], flush=True)
    sys.stdin.read()
"""


def test_cx_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"cx {version('cx-engine')}\n"


def test_sd_notify_sends_to_an_abstract_socket(tmp_path: Path) -> None:
    from runtime import sdnotify

    name = f"cx-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind("\0" + name)
        assert sdnotify.notify(sdnotify.READY, {"NOTIFY_SOCKET": "@" + name})
        assert listener.recv(64) == b"READY=1"


def test_sd_notify_without_a_socket_sends_nothing() -> None:
    from runtime import sdnotify

    assert not sdnotify.notify(sdnotify.READY, {})
    assert not sdnotify.notify(sdnotify.READY, {"NOTIFY_SOCKET": "/nonexistent/notify"})


def test_an_unexpected_failure_of_a_command_is_one_line_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["diagram", "--update", str(tmp_path / "missing.md")]) == 3
    err = capsys.readouterr().err
    assert err.startswith("cx diagram: failed: FileNotFoundError") and err.count("\n") == 1
