"""The ``cx`` command line: start, stop, status, send, history, demo, and their errors.

The tests marked ``multiproc`` run ``cx`` in subprocesses against a real multiprocTCPBase system
on a temporary config (free admin port, temporary storage). The ``cx_system`` fixture makes sure
that no process of that system outlives the test: it stops the system if the test did not,
kills what is left, and fails if it had to.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from infra.config import ConfigError, load_config
from runtime import procs
from runtime.bind import ADDRESS_VARIABLE, restrict
from runtime.cli import main
from runtime.cli_send import OPS
from runtime.gateway import Gateway
from tests.multiproc_support import eventually, free_port, system_pids, write_config

ROOT = Path(__file__).resolve().parent.parent
#: Bound on one ``cx`` command (``cx stop`` waits at most about 30 s for a stuck system).
COMMAND_TIMEOUT_S = 90.0


def cx(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``cx ARGS`` as a separate process (as an operator would)."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "runtime.cli", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )


@pytest.fixture
def cx_system(tmp_path: Path) -> Iterator[Path]:
    """A config for a real system (started by the test); every process is gone afterwards."""
    config = write_config(tmp_path, logging={"level": "info"})
    try:
        yield config
    finally:
        left = system_pids(config)
        if left:
            cx("stop", "--config", str(config), cwd=tmp_path)
            procs.signal_all(system_pids(config), signal.SIGKILL)
        assert not left, f"processes left behind by the test: {sorted(left)}"


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got: {text!r}"
    return lines[0]


# ------------------------------------------------------------------------------ real systems


@pytest.mark.multiproc
def test_start_drive_status_history_send_stop(cx_system: Path, tmp_path: Path) -> None:
    config = str(cx_system)
    started = cx("start", "--config", config, cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    assert "engine running" in started.stdout
    record = json.loads((tmp_path / "cx.pid").read_text())
    assert record["state"] == "running" and record["session"] is not None

    again = cx("start", "--config", config, cwd=tmp_path)
    assert again.returncode == 1
    assert "already running" in one_line(again.stderr)

    # Every listening socket of every process of the system is on 127.0.0.1.
    pids = system_pids(cx_system)
    listening = procs.listening(pids)
    sockets = {listener for found in listening.values() for listener in found}
    assert {listener.address for listener in sockets} == {"127.0.0.1"}, listening
    port = load_config(cx_system).system.admin_port
    assert port in {listener.port for listener in sockets}
    # the daemon's endpoint, the admin, the logger, four actors and a host at least
    assert len({listener.port for listener in sockets}) >= 7, listening

    with Gateway.connect(cx_system) as gw:
        gw.agent_login("alice")
        gw.agent_ready("alice")
        ref = gw.start_session("cust-1", "WEB", "visitor-1")
        gw.customer_message(ref.channel_session_id, "I want an agent please")
        eventually(lambda: gw.conversation(ref.conversation_id)["state"] == "ACTIVE")
        gw.agent_message("alice", ref.conversation_id, "Hello, Alice here")

        status = cx("status", "--config", config, cwd=tmp_path)
        assert status.returncode == 0, status.stderr
        assert "conversations" in status.stdout and "ACTIVE" in status.stdout

        refused = cx(
            "send", "hold", "bob", ref.conversation_id, "30", "--config", config, cwd=tmp_path
        )
        assert refused.returncode == 2
        assert ref.conversation_id in one_line(refused.stderr)

        gw.end_session(ref.channel_session_id)
        gw.agent_leave("alice", ref.conversation_id)
        eventually(lambda: gw.conversation(ref.conversation_id)["state"] == "CLOSED")

    as_json = cx("status", "--json", "--config", config, cwd=tmp_path)
    status_data = json.loads(as_json.stdout)
    assert status_data["conversations"] == {}
    assert status_data["agents"]["READY"] == 1
    assert status_data["engine"]["pid"] == record["pid"]

    history = cx("history", ref.room_id, "--json", "--config", config, cwd=tmp_path)
    assert history.returncode == 0, history.stderr
    [archived] = json.loads(history.stdout)
    assert archived["id"] == ref.conversation_id and archived["state"] == "CLOSED"
    assert "AGENT_MESSAGE" in [event["name"] for event in archived["events"]]
    readable = cx("history", ref.room_id, "--config", config, cwd=tmp_path)
    assert ref.conversation_id in readable.stdout

    sent = cx(
        "send", "start_session", "cust-2", "SMS", "+1 555 0100", "--config", config, cwd=tmp_path
    )
    assert sent.returncode == 0, sent.stderr
    session = json.loads(sent.stdout)
    said = cx(
        "send",
        "customer_message",
        session["channel_session_id"],
        "hello",
        "--config",
        config,
        cwd=tmp_path,
    )
    assert (said.returncode, said.stdout.strip()) == (0, "null")
    snapshot = cx(
        "send", "conversation", session["conversation_id"], "--config", config, cwd=tmp_path
    )
    assert json.loads(snapshot.stdout)["state"] == "CREATED"

    # The engine logs JSON lines to the log file beside the pid file.
    events = [
        json.loads(line)["event"]
        for line in (tmp_path / "cx.log").read_text().splitlines()
        if line.startswith("{")
    ]
    assert "engine started" in events

    stopped = cx("stop", "--config", config, cwd=tmp_path)
    assert stopped.returncode == 0, stopped.stderr
    assert not system_pids(cx_system)
    assert not (tmp_path / "cx.pid").exists()

    not_running = cx("stop", "--config", config, cwd=tmp_path)
    assert not_running.returncode == 1
    assert "not running" in one_line(not_running.stderr)
    status_after = cx("status", "--config", config, cwd=tmp_path)
    assert status_after.returncode == 1
    assert str(port) in one_line(status_after.stderr)


@pytest.mark.multiproc
def test_stop_ends_every_process_when_the_daemon_was_killed(
    cx_system: Path, tmp_path: Path
) -> None:
    config = str(cx_system)
    assert cx("start", "--config", config, cwd=tmp_path).returncode == 0
    record = json.loads((tmp_path / "cx.pid").read_text())
    os.kill(record["pid"], signal.SIGKILL)  # the actor processes run on without it
    eventually(lambda: not procs.alive(record["pid"]))
    assert procs.session_members(record["session"])

    again = cx("start", "--config", config, cwd=tmp_path)
    assert again.returncode == 1 and "already running" in again.stderr

    stopped = cx("stop", "--config", config, cwd=tmp_path)
    assert stopped.returncode == 0, stopped.stderr
    assert not system_pids(cx_system)
    assert not procs.session_members(record["session"])


@pytest.mark.multiproc
def test_foreground_runs_until_sigterm_with_readable_logs(cx_system: Path, tmp_path: Path) -> None:
    output = tmp_path / "foreground.out"
    with output.open("w") as sink:  # a file, not a pipe: the admin inherits it
        foreground = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "runtime.cli",
                "start",
                "--foreground",
                "--config",
                str(cx_system),
            ],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
        )
    try:
        eventually(lambda: "engine started" in output.read_text(), timeout=30)
        status = cx("status", "--config", str(cx_system), cwd=tmp_path)
        assert status.returncode == 0, status.stderr
        foreground.send_signal(signal.SIGTERM)
        assert foreground.wait(COMMAND_TIMEOUT_S) == 0
    finally:
        if foreground.poll() is None:
            foreground.kill()
            foreground.wait()
    text = output.read_text()
    assert "[info     ] engine started" in text and "engine stopped" in text
    assert not system_pids(cx_system)
    assert not (tmp_path / "cx.pid").exists()


@pytest.mark.multiproc
def test_demo_runs_a_real_system_and_stops_it(tmp_path: Path) -> None:
    demo = cx("demo", cwd=tmp_path)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "engine stopped; no process left" in demo.stdout
    storage = next(line for line in demo.stdout.splitlines() if "storage" in line)
    directory = storage.rsplit("storage ", 1)[1].rstrip(")")
    assert not Path(directory).exists()  # the temporary config and storage are removed
    leftovers = [
        pid
        for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
        if any(directory in part for part in procs.cmdline(pid))
    ]
    assert not leftovers


# ------------------------------------------------------------------------------ without a system


def test_embedded_demo_still_available(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {"storage": {"archive": str(tmp_path / "a.sqlite3"), "journal": str(tmp_path / "j")}}
        )
    )
    assert main(["demo", "--embedded", "--config", str(config)]) == 0
    assert "CLOSED" in capsys.readouterr().out


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    return code, one_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ({"timers": {"agent_sal": {"seconds": 5}}}, "timers.agent_sal"),
        ({"system": {"admin_port": 0}}, "system.admin_port"),
        ({"system": {"bind": "0.0.0.0"}}, "system.bind"),
        ({"system": {"base": "simpleSystemBase"}}, "system.base"),
        ({"storage": {"archive": "/proc/no-such/archive.sqlite3"}}, "storage.archive"),
    ],
)
def test_config_errors_are_one_line_naming_file_and_key(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    content: dict[str, object],
    named: str,
) -> None:
    monkeypatch.chdir(tmp_path)  # the default storage (data/) is relative
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump(content))
    code, line = run(["start", "--config", str(config)], capsys)
    assert code == 2
    assert str(config) in line and named in line
    assert not (tmp_path / "data" / "cx.pid").exists()


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yaml"
    for command in ("start", "stop", "status"):
        code, line = run([command, "--config", str(missing)], capsys)
        assert code == 2 and str(missing) in line and "not found" in line


def test_start_refuses_an_admin_port_in_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path, system={"admin_port": port})
        code, line = run(["start", "--config", str(config)], capsys)
    assert code == 2
    assert str(config) in line and "system.admin_port" in line and str(port) in line
    assert not (tmp_path / "cx.pid").exists()


def test_commands_without_a_running_system(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, system={"admin_port": free_port()})
    for argv in (["status"], ["stop"], ["history", "room-1"], ["send", "status"]):
        code, line = run([*argv, "--config", str(config)], capsys)
        assert code == 1, argv
        assert "not running" in line or "no actor system" in line


def test_send_checks_its_arguments_before_connecting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, system={"admin_port": free_port()})
    code, line = run(["send", "hold", "alice", "--config", str(config)], capsys)
    assert code == 2 and "usage: hold AGENT_ID CONVERSATION_ID SECONDS" in line
    code, line = run(
        ["send", "agent_login", "a", "--json-args", "[1]", "--config", str(config)], capsys
    )
    assert code == 2 and "JSON object" in line
    code, line = run(
        ["send", "agent_login", "a", "--json-args", "{", "--config", str(config)], capsys
    )
    assert code == 2 and "not JSON" in line


def test_send_offers_the_gateway_operations() -> None:
    assert {"start_session", "customer_message", "conversation", "status", "history"} <= set(OPS)
    assert not {"advance", "close", "drain", "connect", "embedded"} & set(OPS)
    assert not [op for op in OPS if op.startswith("_")]


# ------------------------------------------------------------------------------ the bind patch


def test_restrict_binds_wildcard_addresses_to_the_configured_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from runtime.bind import binds_to

    monkeypatch.setenv(ADDRESS_VARIABLE, "127.0.0.1")  # restored after the test
    settings = load_config(None)
    restrict(settings)
    # What Thespian's TCPTransport binds: an "external" address is ('', port) unpatched.
    assert binds_to(None, 0, external=True) == (("127.0.0.1", 0),)
    assert binds_to(None, 1234, external=("", 1234)) == (("127.0.0.1", 1234),)
    assert binds_to("127.0.0.2", 99) == (("127.0.0.2", 99),)  # explicit: kept

    wide = dataclasses.replace(settings.system, bind="10.1.2.3", allow_wide_bind=False)
    with pytest.raises(ConfigError, match=r"system\.bind"):
        restrict(dataclasses.replace(settings, system=wide))
    ipv6 = dataclasses.replace(settings.system, bind="::1")
    with pytest.raises(ConfigError, match="IPv4"):
        restrict(dataclasses.replace(settings, system=ipv6))
    assert os.environ[ADDRESS_VARIABLE] == "127.0.0.1"
