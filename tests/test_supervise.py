"""The daemon's supervision of the engine (runtime/supervise.py) and what ``cx status`` says.

The restart policy, the choice of processes an engine restart ends and the watcher's reports
are tested without processes, fed observations. The tests marked ``multiproc`` start a real
system with the daemon (``cx start``'s code), kill one of the watched processes with SIGKILL,
and check that the daemon replaces it and the engine serves again with its conversations; they
always stop the system and fail if a process is left.
"""

from __future__ import annotations

import contextlib
import dataclasses
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

from infra.config import Settings, load_config
from runtime import control, pidfile, procs, supervise, testing
from runtime.cli import main
from runtime.cli_status import EXIT_DEGRADED
from runtime.gateway import Gateway
from runtime.supervise import (
    GIVE_UP,
    HEALTHY,
    RESTART_ENGINE,
    RESTART_SYSTEM,
    WAIT,
    Engine,
    RestartPolicy,
    Watcher,
    down_roles,
    engine_victims,
)
from tests.multiproc_support import eventually, free_port, system_pids, write_config

# ------------------------------------------------------------------------------ the policy


def test_nothing_down_is_healthy() -> None:
    assert RestartPolicy().decide((), 0.0).action == HEALTHY


def test_a_dead_supervisor_restarts_the_engine_at_once() -> None:
    decision = RestartPolicy().decide({"monitor"}, 10.0)
    assert (decision.action, decision.down) == (RESTART_ENGINE, ("monitor",))
    assert RestartPolicy().decide({"agents"}, 10.0).action == RESTART_ENGINE


def test_a_dead_admin_or_logger_restarts_the_whole_system() -> None:
    assert RestartPolicy().decide({"logger"}, 0.0).action == RESTART_SYSTEM
    decision = RestartPolicy().decide({"monitor", "admin"}, 0.0)
    assert (decision.action, decision.down) == (RESTART_SYSTEM, ("admin", "monitor"))


def test_consecutive_restarts_back_off() -> None:
    policy = RestartPolicy(backoff_s=(0.0, 1.0, 4.0))
    policy.restarted(100.0, ok=True)
    assert policy.decide({"monitor"}, 100.5).action == WAIT
    assert policy.decide({"monitor"}, 101.0).action == RESTART_ENGINE
    policy.restarted(101.0, ok=True)
    assert policy.decide({"monitor"}, 104.9).action == WAIT
    assert policy.decide({"monitor"}, 105.0).action == RESTART_ENGINE
    policy.restarted(105.0, ok=True)
    assert policy.decide({"monitor"}, 108.9).action == WAIT  # the last delay repeats


def test_too_many_restarts_within_the_window_give_up() -> None:
    policy = RestartPolicy(max_restarts=3, window_s=60.0, backoff_s=(0.0,))
    for moment in (0.0, 10.0, 20.0):
        assert policy.decide({"agents"}, moment).action == RESTART_ENGINE
        policy.restarted(moment, ok=True)
    decision = policy.decide({"agents"}, 30.0)
    assert (decision.action, decision.restarts) == (GIVE_UP, 3)


def test_restarts_older_than_the_window_are_forgotten() -> None:
    policy = RestartPolicy(max_restarts=2, window_s=60.0, backoff_s=(0.0,))
    policy.restarted(0.0, ok=True)
    policy.restarted(10.0, ok=True)
    assert policy.decide({"monitor"}, 50.0).action == GIVE_UP
    decision = policy.decide({"monitor"}, 65.0)
    assert (decision.action, decision.restarts) == (RESTART_ENGINE, 1)


def test_a_failed_engine_restart_is_followed_by_a_system_restart() -> None:
    policy = RestartPolicy(backoff_s=(0.0,))
    policy.restarted(1.0, ok=False)
    assert policy.decide({"monitor"}, 2.0).action == RESTART_SYSTEM
    policy.restarted(3.0, ok=True)
    assert policy.decide({"monitor"}, 4.0).action == RESTART_ENGINE


def test_down_roles_are_the_recorded_processes_not_alive() -> None:
    pids = {"admin": 10, "logger": 11, "monitor": 12, "agents": 13}
    assert down_roles(pids, lambda pid: pid not in (12, 11)) == ("logger", "monitor")
    assert down_roles({"monitor": 12}, lambda pid: False) == ("monitor",)  # others not recorded


def test_an_engine_restart_ends_everything_below_the_admin_but_new_unwired_supervisors() -> None:
    admin, logger, monitor, agents = 100, 101, 102, 103
    tree = {
        admin: 1,
        logger: admin,
        agents: admin,
        104: agents,  # an agent host
        105: 1,  # a conversation host orphaned by the dead TopicMonitor
        106: 1,  # the orphaned Router
        107: admin,  # a TopicMonitor a gateway created once the dead one's name was freed
    }
    victims = engine_victims(tree, admin=admin, keep={logger}, supervisors={monitor, agents})
    assert victims == {agents, 104, 105, 106}


# ------------------------------------------------------------------------------ the watcher


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


class _Reports:
    def __init__(self) -> None:
        self.seen: list[tuple[str, tuple[str, ...]]] = []

    def __call__(self, state: str, engine: Engine, down: tuple[str, ...]) -> None:
        self.seen.append((state, down))


def _engine(pids: dict[str, int]) -> Engine:
    return Engine(system=None, addresses=None, session=None, pids=pids)  # type: ignore[arg-type]


def test_the_watcher_restarts_a_dead_supervisor_and_reports_recovering_then_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dead, me = _dead_pid(), os.getpid()
    replacement = _engine({"admin": me, "monitor": me})
    restarts: list[dict[str, int]] = []

    def restart_engine(engine: Engine, settings: Settings) -> Engine:
        restarts.append(dict(engine.pids))
        return replacement

    monkeypatch.setattr(supervise, "restart_engine", restart_engine)
    reports = _Reports()
    watcher = Watcher(_engine({"admin": me, "monitor": dead}), load_config(None), reports)
    assert watcher.check() is None
    assert restarts == [{"admin": me, "monitor": dead}]
    assert reports.seen == [("recovering", ("monitor",)), ("running", ())]
    assert watcher.engine is replacement
    assert watcher.check() is None  # healthy: nothing more
    assert len(restarts) == 1 and len(reports.seen) == 2


def test_the_watcher_gives_up_with_an_exit_code_when_restarts_keep_failing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def failing(engine: Engine, settings: Settings) -> Engine:
        raise supervise.RestartError("the admin did not answer")

    monkeypatch.setattr(supervise, "restart_system", failing)
    moments = iter(range(0, 1000, 10))
    reports = _Reports()
    watcher = Watcher(
        _engine({"admin": _dead_pid()}),
        load_config(None),
        reports,
        policy=RestartPolicy(max_restarts=2, window_s=600.0, backoff_s=(0.0,)),
        clock=lambda: float(next(moments)),
    )
    codes = [watcher.check() for _ in range(3)]
    assert codes == [None, None, supervise.EXIT_GAVE_UP]
    assert watcher.policy.last_failed
    assert reports.seen == [("recovering", ("admin",))]  # reported once, never running


# ------------------------------------------------------------------------------ cx status


def test_status_says_recovering_and_what_is_down_without_asking_the_engine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, system={"admin_port": free_port()})  # nothing listens there
    me = os.getpid()
    record = pidfile.Record(
        pid=me,  # a live process that belongs to the record: the system counts as running
        session=None,
        state="running",
        admin="127.0.0.1:1",
        config=str(config),
        log="",
        cmdline=procs.cmdline(me),
        started_at="2026-01-01T00:00:00+00:00",
        pids={"admin": me, "monitor": _dead_pid()},
    )
    (tmp_path / pidfile.PID_FILE).write_text(json.dumps(dataclasses.asdict(record)))
    assert main(["status", "--config", str(config)]) == EXIT_DEGRADED
    out = capsys.readouterr().out
    assert "recovering" in out and "TopicMonitor down" in out
    assert main(["status", "--json", "--config", str(config)]) == EXIT_DEGRADED
    engine = json.loads(capsys.readouterr().out)["engine"]
    assert (engine["state"], engine["down"]) == ("recovering", ["TopicMonitor"])


# ------------------------------------------------------------------------------ real systems


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[tuple[Path, Settings, pidfile.Record]]:
    """A system started by the daemon (as ``cx start`` does); stopped and checked after."""
    config = write_config(tmp_path, logging={"level": "info"})
    settings = load_config(config)
    try:
        yield config, settings, control.spawn(str(config), settings)
    finally:
        record = pidfile.read_record(tmp_path / pidfile.PID_FILE)
        if record is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(record.pid, signal.SIGCONT)  # in case a test left it held
        with contextlib.suppress(control.NotRunningError):
            control.stop(settings)
        left = system_pids(config)
        procs.signal_all(left, signal.SIGKILL)
        assert not left, f"processes left behind by the test: {sorted(left)}"


def _pid(gw: Gateway, role: str) -> int:
    return testing.pid_of(gw, getattr(testing.addresses(gw), role))


def _replaced(settings: Settings, role: str, old: int) -> pidfile.Record:
    """The pid file once the daemon says the engine runs again with a new ``role`` process."""
    path = pidfile.RunFiles.of(settings).pid
    found: list[pidfile.Record] = []

    def replaced() -> bool:
        record = pidfile.read_record(path)
        if record is None or record.state != "running" or record.pids.get(role, old) == old:
            return False
        found.append(record)
        return True

    eventually(replaced, timeout=20)
    return found[-1]


def _logged(settings: Settings) -> list[dict[str, Any]]:
    lines = pidfile.RunFiles.of(settings).log.read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


@pytest.mark.multiproc
def test_a_killed_topic_monitor_is_replaced_and_its_live_conversation_kept(
    engine: tuple[Path, Settings, pidfile.Record],
) -> None:
    config, settings, record = engine
    with Gateway.connect(config) as gw:
        ref = gw.start_session("cust-1", "WEB", "v")
        gw.customer_message(ref.channel_session_id, "before", message_id="m-1")
        events = gw.events(ref.conversation_id)
        old = _pid(gw, "monitor")
    assert old == record.pids["monitor"]

    os.kill(old, signal.SIGKILL)
    replaced = _replaced(settings, "monitor", old)

    with Gateway.connect(config) as gw:
        assert _pid(gw, "monitor") == replaced.pids["monitor"]
        eventually(lambda: gw.status()["conversations"] == {"CREATED": 1}, timeout=20)
        assert gw.events(ref.conversation_id)[: len(events)] == events  # nothing lost
        assert gw.start_session("cust-1", "SMS", "+1").conversation_id == ref.conversation_id
        other = gw.start_session("cust-2", "WEB", "w")
        assert gw.conversation(other.conversation_id)["state"] == "CREATED"
    logged = _logged(settings)
    down = [e for e in logged if e["event"] == "supervised process down"]
    assert [e["down"] for e in down] == [["TopicMonitor"]]
    assert [e["logger_name"] for e in logged if e["event"] == "engine restarted"] == [
        "runtime.supervise"
    ]


@pytest.mark.multiproc
def test_a_killed_agent_supervisor_is_replaced_and_agents_log_in_again(
    engine: tuple[Path, Settings, pidfile.Record],
) -> None:
    config, settings, _record = engine
    with Gateway.connect(config) as gw:
        gw.agent_login("alice")
        ref = gw.start_session("cust-1", "WEB", "v")
        gw.agent_join("alice", ref.conversation_id)
        old = _pid(gw, "agents")

    os.kill(old, signal.SIGKILL)
    _replaced(settings, "agents", old)

    with Gateway.connect(config) as gw:
        eventually(lambda: gw.status()["conversations"] == {"ACTIVE": 1}, timeout=20)
        gw.agent_login("alice")  # logged out with the old supervisor's hosts: logs in again
        gw.agent_ready("alice")
        gw.agent_message("alice", ref.conversation_id, "back again")
        texts = [
            e["data"]["text"]
            for e in gw.events(ref.conversation_id)
            if e["name"] == "AGENT_MESSAGE"
        ]
        assert texts == ["back again"]
        eventually(lambda: gw.status()["agents"]["READY"] == 1, timeout=20)


@pytest.mark.multiproc
def test_a_killed_admin_restarts_the_system_with_its_conversations(
    engine: tuple[Path, Settings, pidfile.Record], capsys: pytest.CaptureFixture[str]
) -> None:
    config, settings, record = engine
    with Gateway.connect(config) as gw:
        ref = gw.start_session("cust-1", "WEB", "v")
        gw.customer_message(ref.channel_session_id, "before", message_id="m-1")
        events = gw.events(ref.conversation_id)

    os.kill(record.pid, signal.SIGSTOP)  # the daemon is held: cx status must tell the truth
    try:
        os.kill(record.pids["admin"], signal.SIGKILL)
        eventually(lambda: not procs.alive(record.pids["admin"]))
        assert main(["status", "--config", str(config)]) == EXIT_DEGRADED
        assert "Thespian admin down" in capsys.readouterr().out
    finally:
        os.kill(record.pid, signal.SIGCONT)
    replaced = _replaced(settings, "admin", record.pids["admin"])

    assert replaced.session != record.session
    assert record.session is not None and not procs.session_members(record.session)
    with Gateway.connect(config) as gw:
        eventually(lambda: gw.status()["conversations"] == {"CREATED": 1}, timeout=20)
        assert gw.events(ref.conversation_id)[: len(events)] == events  # nothing lost
        assert gw.start_session("cust-1", "SMS", "+1").conversation_id == ref.conversation_id
    assert main(["status", "--config", str(config)]) == 0
    assert "engine         running" in capsys.readouterr().out


@pytest.mark.multiproc
def test_stop_kills_a_system_whose_daemon_and_admin_died_without_asking_the_dead_admin(
    engine: tuple[Path, Settings, pidfile.Record], monkeypatch: pytest.MonkeyPatch
) -> None:
    config, settings, record = engine
    for pid in (record.pid, record.pids["admin"]):
        os.kill(pid, signal.SIGKILL)
        eventually(lambda pid=pid: not procs.alive(pid))

    def shutdown_through_admin(settings: Settings) -> None:
        raise AssertionError("cx stop asked a dead admin to shut the system down")

    monkeypatch.setattr(control, "shutdown_through_admin", shutdown_through_admin)
    stopped = control.stop(settings)
    assert {record.pids["logger"], record.pids["monitor"]} <= stopped.killed
    assert record.session is not None and not procs.session_members(record.session)
    assert not system_pids(config)


def test_status_gives_up_on_an_engine_that_does_not_answer(tmp_path: Path) -> None:
    """Something accepts connections on the admin port but never answers: ``cx status``
    returns within its bound and says so (exit code 4)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        config = write_config(tmp_path, system={"admin_port": silent.getsockname()[1]})
        status = subprocess.run(
            [sys.executable, "-m", "runtime.cli", "status", "--config", str(config)],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert status.returncode == EXIT_DEGRADED, status.stderr
    assert "did not answer within 2 s" in status.stderr
