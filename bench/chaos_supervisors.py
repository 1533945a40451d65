"""The supervisors in the chaos run: the TopicMonitor, the AgentSupervisor, the admin, the logger.

Their restart is the daemon's work (runtime.supervise), so with any of these targets the run
starts the engine as ``cx start`` does (the daemon, detached) instead of in its own process,
and stops it with ``cx stop``'s code at the end. A strike kills the role's process (its pid is
in the pid file) with SIGKILL and measures until the daemon has replaced it and the engine
acknowledges a new customer through the run's own gateway, which must find the engine again by
itself (a killed admin or logger restarts the whole actor system).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

from infra.config import load_config
from runtime import control, procs
from runtime.gateway import Gateway, GatewayError
from runtime.pidfile import RunFiles, read_record

#: Target name -> the role in the pid file.
SUPERVISORS = {"monitor": "monitor", "supervisor": "agents", "admin": "admin", "logger": "logger"}
RECOVERY_LIMIT_S = 30.0


@contextlib.contextmanager
def daemon_system(config: Path) -> Iterator[set[int]]:
    """The engine under its daemon; yields the set of every session it has had (filled as
    strikes restart the system), and on the way out stops it and ends what is left of them."""
    settings = load_config(config)
    record = control.spawn(str(config), settings)
    sessions = {record.session} - {None}
    try:
        yield sessions  # type: ignore[misc]
    finally:
        current = read_record(RunFiles.of(settings).pid)
        if current is not None and current.session is not None:
            sessions.add(current.session)
        with contextlib.suppress(control.NotRunningError, control.StopError):
            control.stop(settings)


def left_over(sessions: set[int]) -> list[int]:
    """Processes of any of ``sessions`` still alive (they are killed)."""
    left = sorted({pid for session in sessions for pid in procs.session_members(session)})
    if left:
        procs.signal_all(left, signal.SIGKILL)
    return left


class Supervisors:
    def __init__(self, gw: Gateway, config: Path, sessions: set[int]) -> None:
        self.gw = gw
        self.pidfile = RunFiles.of(load_config(config)).pid
        self.sessions = sessions
        self.probes = 0

    def strike(self, target: str) -> tuple[int, float | None, str]:
        """Kill ``target``; (its pid, seconds until replaced and serving or None, a note)."""
        record = read_record(self.pidfile)
        role = SUPERVISORS[target]
        if record is None or role not in record.pids:
            return 0, None, f"no {role} in the pid file"
        victim = record.pids[role]
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            return victim, None, "gone before the kill"
        killed = time.monotonic()
        deadline = killed + RECOVERY_LIMIT_S
        last = ""
        while time.monotonic() < deadline:
            time.sleep(0.05)
            current = read_record(self.pidfile)
            if current is None or current.state != "running" or current.pids.get(role) == victim:
                last = "not replaced yet" if current is None else f"state {current.state}"
                continue
            if current.session is not None:
                self.sessions.add(current.session)
            self.probes += 1
            try:
                self.gw.start_session(f"chaos-sup-probe-{self.probes}", "WEB", "probe")
            except GatewayError as error:
                last = f"replaced, not serving: {str(error)[:120]}"
                continue
            return victim, round(time.monotonic() - killed, 3), ""
        return victim, None, f"not serving again within {RECOVERY_LIMIT_S:g} s ({last})"
