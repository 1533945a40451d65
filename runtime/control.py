"""``cx start`` and ``cx stop`` from the calling process: the daemon launched, awaited, stopped.

:func:`spawn` runs ``python -m runtime.daemon --config FILE`` (:mod:`runtime.daemon`) in a
session of its own, with standard input from ``/dev/null`` and standard output and error
appended to the log file (never a pipe: Thespian's detached admin inherits them, and a reader
of a pipe would never see its end), and returns once the engine answers a gateway; a daemon
that fails to start is stopped, and its own reason (the line it writes to the log) is raised
as :class:`StartError`.

:func:`stop` asks the daemon to stop (SIGTERM) and waits for it; without a daemon it shuts the
system down through the admin port itself. Either way it then ends whatever is left of the
recorded session.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from domain.errors import CxError, ErrorKind
from infra.config import ConfigError, Settings, load_config
from runtime import procs
from runtime.bind import restrict
from runtime.daemon import (
    EXIT_TIMEOUT_S,
    FAILURE_PREFIX,
    POLL_S,
    AlreadyRunningError,
    admin_alive,
    admin_answers,
    check_startable,
    describe,
    end_session,
)
from runtime.gateway import Gateway, GatewayError
from runtime.pidfile import Record, RunFiles, read_record, remove_record, running_record
from runtime.supervise import admin_processes
from runtime.system import join

__all__ = [
    "DAEMON_STOP_TIMEOUT_S",
    "START_TIMEOUT_S",
    "NotRunningError",
    "StartError",
    "StopError",
    "Stopped",
    "connect",
    "launch",
    "spawn",
    "stop",
    "wait_ready",
]

#: How long ``cx start`` waits for the engine to answer.
START_TIMEOUT_S = 60.0
#: How long ``cx stop`` waits for the daemon (Thespian's shutdown takes up to 10 s, then the
#: daemon's own wait of EXIT_TIMEOUT_S).
DAEMON_STOP_TIMEOUT_S = 30.0


class NotRunningError(CxError):
    """No system is running for this configuration."""
    kind = ErrorKind.UNAVAILABLE


class StartError(CxError):
    """The engine did not come up (its reason, and where its log is)."""
    kind = ErrorKind.UNAVAILABLE


class StopError(CxError):
    """Some processes of the system could not be ended."""


def _project_root() -> str:
    return str(Path(__file__).resolve().parent.parent)


def spawn(config: str, settings: Settings, *, timeout: float = START_TIMEOUT_S) -> Record:
    """``cx start``: run the daemon detached and return its record once the engine answers.

    Raises AlreadyRunningError, ConfigError (admin port taken) or StartError.
    """
    return wait_ready(launch(config, settings), config, settings, timeout=timeout)


def launch(config: str, settings: Settings) -> subprocess.Popen[bytes]:
    """Start the daemon for ``config`` detached: a session of its own, standard input from
    /dev/null, standard output and error appended to the log file.

    Raises AlreadyRunningError, or ConfigError when the admin port is taken.
    """
    current = running_record(settings)
    if current is not None:
        raise AlreadyRunningError(describe(current))
    restrict(settings)
    check_startable(settings)
    files = RunFiles.of(settings)
    files.directory.mkdir(parents=True, exist_ok=True)
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [_project_root(), environment.get("PYTHONPATH")])
    )
    environment["PYTHONUNBUFFERED"] = "1"
    try:
        output = files.log.open("ab")
    except OSError as error:
        raise ConfigError(
            settings.source, "logging.file", f"cannot open the log file {files.log}: {error}"
        ) from None
    command = [sys.executable, "-m", "runtime.daemon", "--config", str(Path(config).resolve())]
    if settings.storage.salvage_journal:
        command.append("--salvage-journal")
    with output:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            start_new_session=True,
            close_fds=True,
            env=environment,
        )


def wait_ready(
    daemon: subprocess.Popen[bytes],
    config: str,
    settings: Settings,
    *,
    timeout: float = START_TIMEOUT_S,
) -> Record:
    """Wait until the daemon has started the system and the engine answers a gateway (on a
    member node, which has no engine of its own: until its admin answers); its record. If it
    fails, or does not answer within ``timeout`` (or the wait is interrupted), the daemon is
    stopped and StartError (or the interruption) is raised."""
    files = RunFiles.of(settings)
    deadline = time.monotonic() + timeout
    last_error = "no answer yet"
    try:
        while time.monotonic() < deadline:
            code = daemon.poll()
            if code is not None:
                raise StartError(_failure(files.log, daemon.pid, code))
            record = read_record(files.pid)
            mine = record is not None and record.pid == daemon.pid
            if mine and record is not None and record.state == "member":
                if admin_answers(settings):
                    return record
            elif mine and record is not None and record.state == "running":
                try:
                    with Gateway.connect(config) as gateway:
                        gateway.status()
                    return record
                except GatewayError as error:
                    last_error = str(error)
            time.sleep(POLL_S)
        raise StartError(
            f"the engine did not answer within {timeout:g} s ({last_error}); see {files.log}"
        )
    except BaseException:
        _abort(daemon)
        raise


def _abort(daemon: subprocess.Popen[bytes]) -> None:
    """Stop a daemon that did not come up (on SIGTERM it shuts down what it started)."""
    if daemon.poll() is None:
        daemon.terminate()
        try:
            daemon.wait(DAEMON_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()


def _failure(log_file: Path, pid: int, code: int) -> str:
    """The daemon's own reason from its log, else its exit code and where the log is."""
    prefix = FAILURE_PREFIX.format(pid=pid)
    try:
        lines = log_file.read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    for line in reversed(lines):
        if line.startswith(prefix):
            return line[len(prefix) :]
    return f"the engine exited with code {code} before answering; see {log_file}"


def connect(config: str) -> Gateway:
    """A gateway to the running system; NotRunningError (one line) if there is none."""
    settings = load_config(config)
    restrict(settings)  # this process's own Thespian endpoint listens on system.bind too
    try:
        return Gateway.connect(config)
    except GatewayError as error:
        raise NotRunningError(str(error)) from None
    except Exception as error:  # Thespian's own, when the admin port answers but no admin
        raise NotRunningError(
            f"cannot reach the actor system on {settings.system.bind}:"
            f"{settings.system.admin_port} (system.admin_port in {settings.source}): {error}"
        ) from None


# ------------------------------------------------------------------------------ cx stop


@dataclass(frozen=True, slots=True)
class Stopped:
    """What :func:`stop` did: ``record``: the system's, ``killed``: pids it had to kill."""

    record: Record
    killed: frozenset[int]


def stop(settings: Settings) -> Stopped:
    """Stop the system running for ``settings`` and every one of its processes.

    Raises NotRunningError if none runs, StopError if some process survived SIGKILL.
    """
    files = RunFiles.of(settings)
    restrict(settings)
    record = read_record(files.pid)
    if record is None:
        record = _unrecorded(settings, files)
        shutdown_through_admin(settings)
    elif not record.running():
        files.pid.unlink(missing_ok=True)
        raise NotRunningError(f"not running (removed the stale pid file {files.pid})")
    elif record.daemon_alive():
        os.kill(record.pid, signal.SIGTERM)  # the daemon shuts the system down
        deadline = time.monotonic() + DAEMON_STOP_TIMEOUT_S
        while record.daemon_alive() and time.monotonic() < deadline:
            time.sleep(POLL_S)
    elif admin_alive(record) and admin_answers(settings):
        shutdown_through_admin(settings)
    # Without an admin nothing asks the actor processes to exit: kill them without waiting.
    killed, survivors = end_session(record, timeout=EXIT_TIMEOUT_S if admin_alive(record) else 0)
    if record.daemon_alive():
        os.kill(record.pid, signal.SIGKILL)
        killed |= {record.pid}
    remove_record(files.pid, record.pid)
    if survivors:
        raise StopError(f"processes of the system survived SIGKILL: {sorted(survivors)}")
    return Stopped(record, killed)


def _unrecorded(settings: Settings, files: RunFiles) -> Record:
    """A record for a system found on the admin port without a pid file (not started by
    ``cx start``, or its pid file was removed); NotRunningError if there is none."""
    if not admin_answers(settings):
        raise NotRunningError(
            f"not running: no pid file at {files.pid} and no actor system on "
            f"{settings.system.bind}:{settings.system.admin_port} "
            f"(system.admin_port in {settings.source})"
        )
    others = procs.foreign_listeners(settings.system.admin_port)
    if others:
        pid, line = min(others.items())
        raise NotRunningError(
            f"not running: port {settings.system.admin_port} (system.admin_port in "
            f"{settings.source}) is held by another program, pid {pid}: {' '.join(' '.join(line).split())[:80]}"
        )
    session, found = admin_processes(settings)
    pid = found.get("admin", -1)
    return Record(
        pid=-1,
        session=session,
        state="running",
        admin=f"{settings.system.bind}:{settings.system.admin_port}",
        config=None,
        log="",
        cmdline=procs.cmdline(pid) if pid > 0 else [],
        started_at="",
    )


def shutdown_through_admin(settings: Settings) -> None:
    join(settings).shutdown()
