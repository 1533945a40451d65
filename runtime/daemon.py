"""The long-running system as a process: what ``cx start`` runs, and the pid file.

``cx start`` (:func:`runtime.control.spawn`) runs ``python -m runtime.daemon --config FILE``
detached; ``cx start --foreground`` runs the same :func:`serve` in the terminal.

:func:`serve` claims the pid file, checks that the admin port is free, starts the system
(``runtime.system.start``: the engine booted in a ``multiprocTCPBase`` system bound to
``system.bind``), records the session of the actor processes and the pids it watches in the pid
file, and supervises the engine (``runtime.supervise``: a TopicMonitor, AgentSupervisor, admin
or logger that dies is started again, with the live conversations restored from the journal)
until SIGTERM or SIGINT; then it shuts the system down through its admin, makes sure every
process of that session is gone (killing what is left after a bounded wait) and removes the
pid file. When restarts keep failing it gives up, cleans up the same way and exits with 3.
SIGHUP or SIGUSR1 opens the log file again (after logrotate renamed it: ``postrotate kill -HUP
$(jq .pid cx.pid)``); the actor processes open it again by themselves (infra.logs). In the
foreground under systemd (``NOTIFY_SOCKET``) it says ``READY=1`` once the engine answers and
``STOPPING=1`` when it begins to stop (runtime.sdnotify).

Files, in the directory that holds ``storage.journal`` (``data/`` with the shipped config):

- ``cx.pid``: one JSON object: ``pid`` (the daemon, or the ``cx start --foreground`` process),
  ``session`` (the session id shared by Thespian's admin, logger and every actor process),
  ``state`` (``starting``, ``running``, or ``recovering`` while a watched process is being
  restarted), ``admin``, ``config``, ``log``, ``cmdline``, ``started_at``, ``pids`` (the watched
  processes by role: ``admin``, ``logger``, ``monitor``, ``agents``) and ``down`` (the names of
  the watched processes found dead, while recovering);
- ``cx.log``: the engine's JSON log lines when ``logging.file`` is null, and whatever the
  processes write to standard output or error;
- ``thespian.log``: Thespian's own internal log (``THESPLOG_FILE``), unless set otherwise;
- ``cx.levels.json``: the log levels ``cx log-level`` set while it runs (removed at start).

Stopping (``cx stop``) is :func:`runtime.control.stop`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from actors.nodes import FENCE_SIGNAL, FENCE_SIGNAL_ENV
from domain.errors import CxError, ErrorKind
from infra import logs, proctitle
from infra.archive_errors import StorageError
from infra.config import ConfigError, Settings, load_config
from infra.logs import configure_logging, get_logger
from runtime import metrics_server, procs, sdnotify
from runtime.bind import restrict
from runtime.pidfile import (
    Record,
    RunFiles,
    read_record,
    remove_record,
    write_record,
)
from runtime.supervise import (
    ROLES,
    WATCH_INTERVAL_S,
    Engine,
    Watcher,
    abandon,
    start_engine,
)
from runtime.system import salvaging, start_member
from runtime.upkeep import Upkeep, gateway_to

log = get_logger("runtime.daemon")  # (not __name__: it runs as __main__ too)

#: How long the processes of a stopping system get to exit before they are killed.
EXIT_TIMEOUT_S = 15.0

#: A member daemon exits with this code when its node may not serve any more: the leader
#: fenced it (declared its incarnation dead while it still ran, e.g. after a partition), or it
#: heard nothing from its leader for as long as the leader takes to declare a node dead (the
#: leader stopped, or is cut off). Restarted, it joins as a new incarnation.
EXIT_REJOIN = 5
#: The daemon writes ``cx daemon[PID]: reason`` to its standard error (the log file) when it
#: cannot start; ``cx start`` shows the reason.
FAILURE_PREFIX = "cx daemon[{pid}]: "
POLL_S = 0.05
#: How often the waiting daemon looks at its stop flag.
_SIGNAL_POLL_S = 0.1


class AlreadyRunningError(CxError):
    """A system is already running for this configuration."""

    kind = ErrorKind.ILLEGAL_TRANSITION


# ------------------------------------------------------------------------------ checks


def admin_answers(settings: Settings) -> bool:
    """Whether something accepts connections on the admin port."""
    try:
        with socket.create_connection(
            (settings.system.bind, settings.system.admin_port), timeout=2.0
        ):
            return True
    except OSError:
        return False


def check_startable(settings: Settings) -> None:
    """Raise ConfigError (naming the file and the key) if ``cx start`` cannot use ``settings``:
    another system base than multiprocTCPBase, storage directories that cannot be created or
    written, or an admin port that is taken."""
    if settings.system.base != "multiprocTCPBase":
        raise ConfigError(
            settings.source,
            "system.base",
            f"cx start runs the long-running system on multiprocTCPBase, not {settings.system.base}",
        )
    for key, directory in (
        ("storage.archive", settings.storage.archive.parent),
        ("storage.journal", settings.storage.journal),
    ):
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(
                settings.source, key, f"cannot create the directory {directory}: {error}"
            ) from None
        if not os.access(directory, os.W_OK | os.X_OK):
            raise ConfigError(settings.source, key, f"the directory {directory} is not writable")
    host, port = settings.system.bind, settings.system.admin_port
    with socket.socket() as probe:
        # Thespian's admin sets SO_REUSEADDR too: a port in TIME_WAIT is usable, a listener not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ConfigError(
                settings.source,
                "system.admin_port",
                f"port {port} on {host} is not available ({error.strerror or error}): another "
                "program (or a cx system of another config) uses it",
            ) from None


# ------------------------------------------------------------------------------ serve


def _run_settings(settings: Settings, files: RunFiles, *, foreground: bool) -> Settings:
    """The settings the system runs with: logs to the log file (JSON unless configured
    otherwise), or readable lines on the terminal in the foreground."""
    if foreground:
        logging = dataclasses.replace(
            settings.logging, format="console", file=None, levels=files.levels
        )
    else:
        logging = dataclasses.replace(settings.logging, file=files.log, levels=files.levels)
    return dataclasses.replace(settings, logging=logging)


def _claim(files: RunFiles, record: Record) -> None:
    """Create the pid file, or raise AlreadyRunningError; a stale one is replaced."""
    for _ in range(3):
        try:
            write_record(files.pid, record, exclusive=True)
            return
        except FileExistsError:
            current = read_record(files.pid)
            if current is not None and current.running():
                raise AlreadyRunningError(describe(current)) from None
            files.pid.unlink(missing_ok=True)
    raise AlreadyRunningError(f"cannot claim the pid file {files.pid}")


#: The signals that stop the daemon, and those that open its log file again.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
REOPEN_SIGNALS = (signal.SIGHUP, signal.SIGUSR1)


class _StopFlag:
    """Set by SIGTERM or SIGINT; ``reopen`` by SIGHUP or SIGUSR1 (plain flags: a handler must
    not take locks, and the log's lock may be held by the code it interrupted)."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self.reopen: int | None = None

    def __bool__(self) -> bool:
        return self.signal is not None

    def set(self, signum: int, frame: object) -> None:
        if signum in REOPEN_SIGNALS:
            self.reopen = signum
        else:
            self.signal = signum

    def reopen_logs(self) -> None:
        """Open the log file again if a signal asked for it since the last call."""
        if self.reopen is None:
            return
        signum, self.reopen = self.reopen, None
        logs.reopen()
        log.info("log file reopened", signal=signal.Signals(signum).name)


@contextlib.contextmanager
def _stop_signals() -> Iterator[_StopFlag]:
    """A flag set by the stop and reopen signals while the block runs."""
    flag = _StopFlag()
    previous = {
        signum: signal.signal(signum, flag.set) for signum in (*STOP_SIGNALS, *REOPEN_SIGNALS)
    }
    try:
        yield flag
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def serve(settings: Settings, *, config: str | None, foreground: bool) -> int:
    """Run and supervise the system until a stop signal; 0 when it was stopped, 3 when it
    could not be kept running (restarts kept failing).

    Raises AlreadyRunningError, or ConfigError when the admin port is taken.
    """
    proctitle.set_title(proctitle.with_config("daemon", config))
    files = RunFiles.of(settings)
    settings = _run_settings(settings, files, foreground=foreground)
    configure_logging(settings.logging, force_console=foreground)
    files.directory.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("THESPLOG_FILE", str(files.thespian_log))
    me = os.getpid()
    record = Record(
        pid=me,
        session=None,
        state="starting",
        admin=f"{settings.system.bind}:{settings.system.admin_port}",
        config=config,
        log="(terminal)" if foreground else str(files.log),
        cmdline=procs.cmdline(me),
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    with _stop_signals() as stop:
        _claim(files, record)
        files.levels.unlink(missing_ok=True)  # a start begins at the configured level
        try:
            restrict(settings)
            check_startable(settings)
            if settings.system.convention_address is not None:
                return _serve_member(settings, record, files, stop)
            engine = start_engine(settings)
            if engine.session is None:
                log.warning(
                    "the admin process was not found in /proc: stopping will rely on the "
                    "admin alone to end the actor processes",
                    admin_port=settings.system.admin_port,
                )

            def report(state: str, current: Engine, down: tuple[str, ...]) -> None:
                nonlocal record
                record = dataclasses.replace(
                    record,
                    session=current.session,
                    state=state,
                    pids=dict(current.pids),
                    down=[ROLES[role] for role in down],
                )
                write_record(files.pid, record, exclusive=False)

            procs.reap_children()
            watcher = Watcher(engine, settings, report)
            report("running", engine, ())
            endpoint = None
            if config is not None:
                endpoint = metrics_server.start(settings, config, restarts=lambda: watcher.restarts)
            log.info(
                "engine started",
                admin=record.admin,
                pid=me,
                session=record.session,
                watched={ROLES[role]: pid for role, pid in engine.pids.items()},
                config=config,
                pid_file=str(files.pid),
            )
            if foreground:
                sdnotify.notify(sdnotify.READY)
            code = 0
            upkeep = Upkeep(settings, connect=gateway_to(config))  # webhooks, retention
            upkeep.start()
            try:
                checked = time.monotonic()
                while not stop and not code:
                    time.sleep(_SIGNAL_POLL_S)
                    stop.reopen_logs()
                    if time.monotonic() - checked >= WATCH_INTERVAL_S:
                        code = watcher.check() or 0
                        procs.reap_children()  # no zombie for the engine's life
                        checked = time.monotonic()
                if code:
                    log.error("the engine could not be kept running", exit_code=code)
                else:
                    log.info("stop requested", signal=signal.Signals(stop.signal or 15).name)
            finally:
                if foreground:
                    sdnotify.notify(sdnotify.STOPPING)
                if endpoint is not None:
                    endpoint.stop()
                upkeep.stop()
                log.info("engine stopping", admin=record.admin)
                _shutdown(watcher.engine.system, record)
                log.info("engine stopped", admin=record.admin)
            return code
        finally:
            remove_record(files.pid, me)


def _serve_member(settings: Settings, record: Record, files: RunFiles, stop: _StopFlag) -> int:
    """A member node (``system.convention_address`` set): its actor system joins the leader's
    convention and runs, with no engine actors of its own, until a stop signal (docs/NODES.md)."""
    os.environ[FENCE_SIGNAL_ENV] = str(os.getpid())  # the actors forked from here inherit it
    previous = signal.signal(FENCE_SIGNAL, stop.set)
    system = start_member(settings)
    record = dataclasses.replace(record, state="member")
    write_record(files.pid, record, exclusive=False)
    log.info("member started", admin=record.admin, leader=settings.system.convention_address)
    try:
        while not stop:
            time.sleep(_SIGNAL_POLL_S)
            stop.reopen_logs()
            procs.reap_children()
    finally:
        signal.signal(FENCE_SIGNAL, previous)
        if stop.signal == FENCE_SIGNAL:
            log.error("member fenced or without its leader: stopping", admin=record.admin)
        _shutdown(system, record)
        log.info("member stopped", admin=record.admin)
    return EXIT_REJOIN if stop.signal == FENCE_SIGNAL else 0


def _shutdown(system: Any, record: Record) -> None:
    """Shut the system down through its admin (if it is alive: a shutdown would wait for a dead
    one), then end what is left of its session."""
    if not admin_alive(record):
        abandon(system)
    else:
        try:
            system.shutdown()
        except Exception:
            log.exception("the actor system did not shut down cleanly")
    _, survivors = end_session(record)
    if survivors:
        log.error("processes of the system could not be ended", pids=sorted(survivors))


def end_session(
    record: Record, *, timeout: float = EXIT_TIMEOUT_S
) -> tuple[frozenset[int], frozenset[int]]:
    """Wait up to ``timeout`` for the system's processes to exit and kill (SIGKILL) the ones
    that remain. Returns the pids killed and those still alive after that (normally none)."""
    leftovers = _wait_gone(record, timeout)
    if not leftovers:
        return frozenset(), frozenset()
    log.warning("killing processes left after shutdown", pids=sorted(leftovers))
    procs.signal_all(leftovers, signal.SIGKILL)
    return frozenset(leftovers), frozenset(_wait_gone(record, 5.0))


def _wait_gone(record: Record, timeout: float) -> set[int]:
    deadline = time.monotonic() + timeout
    members = record.members()
    while members and time.monotonic() < deadline:
        time.sleep(POLL_S)
        members = record.members()
    return members


def describe(record: Record) -> str:
    where = f"config {record.config}" if record.config else "no config file"
    return f"pid {record.pid}, admin {record.admin}, {where}, log {record.log}"


def admin_alive(record: Record) -> bool:
    """Whether the recorded admin process is alive (True when none is recorded: ask the port)."""
    admin = record.pids.get("admin")
    return admin is None or procs.alive(admin)


# ------------------------------------------------------------------------------ entry point


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m runtime.daemon --config FILE``: what ``cx start`` runs detached."""
    parser = argparse.ArgumentParser(prog="python -m runtime.daemon")
    parser.add_argument("--config", required=True)
    parser.add_argument("--salvage-journal", action="store_true")
    args = parser.parse_args(argv)
    try:
        settings = load_config(args.config)
        if args.salvage_journal:
            settings = salvaging(settings)
        return serve(settings, config=args.config, foreground=False)
    except (ConfigError, AlreadyRunningError) as error:
        _fail(str(error))
        return 2 if isinstance(error, ConfigError) else 1
    except StorageError as error:  # what the storage holds stops the start: its reason says why
        log.error("the engine could not start", error=str(error))
        _fail(f"the engine could not start: {error}")
        return 3
    except Exception as error:
        log.exception("the engine could not start")
        _fail(f"the engine could not start: {error!r}")
        return 3


def _fail(reason: str) -> None:
    print(FAILURE_PREFIX.format(pid=os.getpid()) + reason, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
