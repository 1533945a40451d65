"""The pid file of a system started by ``cx start``, and where its logs go.

``cx.pid`` (beside the journal directory) holds one JSON object, a :class:`Record`: the daemon's
pid, the session of the actor processes, the state (``starting``, ``running``, ``recovering``),
the watched processes' pids and which of them are down (docs/OPERATIONS.md, "Files"). It is
written atomically (a temporary file, then a link or a rename).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from infra import proctitle
from infra.config import Settings
from runtime import procs
from runtime.supervise import ROLES

PID_FILE = "cx.pid"
LOG_FILE = "cx.log"
THESPIAN_LOG_FILE = "thespian.log"
LEVELS_FILE = "cx.levels.json"


@dataclass(frozen=True, slots=True)
class RunFiles:
    """Where a system's pid file and logs are: beside the journal directory; ``levels``: the
    log levels ``cx log-level`` sets (infra.logs)."""

    directory: Path
    pid: Path
    log: Path
    thespian_log: Path
    levels: Path

    @classmethod
    def of(cls, settings: Settings) -> RunFiles:
        directory = settings.storage.journal.parent
        return cls(
            directory=directory,
            pid=directory / PID_FILE,
            log=settings.logging.file or directory / LOG_FILE,
            thespian_log=directory / THESPIAN_LOG_FILE,
            levels=directory / LEVELS_FILE,
        )


@dataclass(frozen=True, slots=True)
class Record:
    """What the pid file says."""

    pid: int
    session: int | None
    state: str
    admin: str
    config: str | None
    log: str
    cmdline: list[str]
    started_at: str
    pids: dict[str, int] = field(default_factory=dict)
    down: list[str] = field(default_factory=list)

    def belongs(self, pid: int) -> bool:
        """Whether ``pid`` is a process of this system: it runs the recorded command line
        (Thespian forks its processes from the daemon) or the title of an engine process
        (``cx: router ...``, or Thespian's ``ActorClass ActorAddr-...``: infra.proctitle)."""
        line = procs.cmdline(pid)
        return bool(line) and (line == self.cmdline or proctitle.is_engine_title(line))

    def daemon_alive(self) -> bool:
        return procs.alive(self.pid) and self.belongs(self.pid)

    def members(self) -> set[int]:
        """The live processes of the system's session (not the daemon)."""
        if self.session is None:
            return set()
        return {pid for pid in procs.session_members(self.session) if self.belongs(pid)}

    def running(self) -> bool:
        return self.daemon_alive() or bool(self.members())

    def down_now(self) -> list[str]:
        """The watched processes that are down: those the daemon reported, and those whose
        recorded pid is no longer a process of the session (it may not have noticed yet)."""
        down = list(self.down)
        for role, pid in self.pids.items():
            name = ROLES.get(role, role)
            gone = not procs.alive(pid) or (
                self.session is not None and procs.session_of(pid) != self.session
            )
            if gone and name not in down:
                down.append(name)
        return down


def read_record(path: Path) -> Record | None:
    """The pid file's record, or ``None`` if there is none (or it is not one of ours)."""
    try:
        data = json.loads(path.read_text())
        return Record(**data)
    except (OSError, ValueError, TypeError):
        return None


def write_record(path: Path, record: Record, *, exclusive: bool) -> None:
    """Write the pid file atomically; ``exclusive``: fail if it exists (FileExistsError)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps(dataclasses.asdict(record), indent=1) + "\n")
    try:
        if exclusive:
            os.link(temporary, path)
        else:
            os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def remove_record(path: Path, pid: int) -> None:
    """Remove the pid file if it is still the one of ``pid``."""
    record = read_record(path)
    if record is not None and record.pid == pid:
        path.unlink(missing_ok=True)


def running_record(settings: Settings) -> Record | None:
    """The record of the system running for ``settings``; a stale pid file is removed."""
    path = RunFiles.of(settings).pid
    record = read_record(path)
    if record is None or record.running():
        return record
    path.unlink(missing_ok=True)
    return None
