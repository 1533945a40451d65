"""What the system's processes are, read with ``psutil`` and ``os.getsid``.

Thespian's admin puts itself in a session of its own (``setsid`` then a second fork), and every
process it starts (the logger, every actor) inherits that session: the session id is how
``cx stop`` finds every process of a system, also after the admin is gone. A process that is
gone, or that this user may not inspect, gives the empty answer (``False``, ``None``, ``[]``),
never an exception; a zombie not reaped yet is not alive. Listening TCP sockets (IPv4 and IPv6)
are matched to the processes that hold them through each process's own connection table
(``psutil``'s machine-wide one names a single process for a socket that several share, as
Thespian's admin shares its port with its logger): :func:`listening_on` finds the sharers among
the parent and children of the process the machine-wide table names.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable
from dataclasses import dataclass

import psutil

from infra import proctitle


@dataclass(frozen=True, slots=True, order=True)
class Listener:
    """A listening TCP socket: its local address and port."""

    address: str
    port: int


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        return _process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def session_of(pid: int) -> int | None:
    """The session id of ``pid`` (``None`` if it is gone)."""
    if pid <= 0:  # os.getsid(0) would answer for this process
        return None
    try:
        return os.getsid(pid)
    except OSError:
        return None


def parent_of(pid: int) -> int | None:
    """The parent's pid of ``pid`` (``None`` if it is gone)."""
    try:
        return _process(pid).ppid()
    except psutil.Error:
        return None


def cmdline(pid: int) -> list[str]:
    """The command line of ``pid`` (empty if it is gone or a zombie)."""
    try:
        return _process(pid).cmdline()
    except psutil.Error:
        return []


def session_members(sid: int) -> set[int]:
    """Live processes (not zombies) of session ``sid``."""
    return set(session_tree(sid))


def session_tree(sid: int) -> dict[int, int]:
    """Live processes (not zombies) of session ``sid``, each with its parent's pid."""
    members = {}
    for pid in psutil.pids():
        if session_of(pid) != sid:
            continue
        try:
            process = _process(pid)
            with process.oneshot():
                if process.status() != psutil.STATUS_ZOMBIE:
                    members[pid] = process.ppid()
        except psutil.Error:
            continue
    return members


def exists(pid: int) -> bool:
    """Whether ``pid`` is in the process table at all (a zombie not reaped yet counts)."""
    return pid > 0 and psutil.pid_exists(pid)


def signal_all(pids: Iterable[int], signum: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            continue


def listening(pids: Iterable[int]) -> dict[int, list[Listener]]:
    """The listening TCP sockets each of ``pids`` holds (none if it is gone or not ours)."""
    return {pid: _listeners_of(pid) for pid in pids}


def listening_on(port: int) -> set[int]:
    """Pids holding a listening socket on ``port`` (any address; only processes this user may
    inspect). psutil's machine-wide table names one holder of each socket: the processes that
    share it by fork (as Thespian's logger shares its admin's) are looked for among the holder's
    parent and children in its session, each in its own table (a reading of the machine's table
    per process asked)."""
    named = {
        c.pid
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid is not None
    }
    sessions = {session for pid in named if (session := session_of(pid)) is not None}
    tree = {pid: parent for session in sessions for pid, parent in session_tree(session).items()}
    near = {pid for pid, parent in tree.items() if parent in named}
    near |= {tree[pid] for pid in named if pid in tree} & tree.keys()
    return named | {pid for pid in near - named if any(s.port == port for s in _listeners_of(pid))}


def reap_children() -> list[int]:
    """Collect the exit of every child of this process that has ended (none is left a zombie);
    their pids. Thespian's admin leaves one behind in the process that starts a system: the
    first of its two forks, which exits at once (the admin is the second)."""
    reaped: list[int] = []
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid == 0:
            return reaped
        reaped.append(pid)


def foreign_listeners(port: int) -> dict[int, list[str]]:
    """The processes listening on ``port`` that are no process of an engine (by their title,
    :func:`infra.proctitle.is_engine_title`), with their command lines."""
    found = {pid: cmdline(pid) for pid in listening_on(port)}
    return {pid: line for pid, line in found.items() if not proctitle.is_engine_title(line)}


def node_pids(started: int, admin_port: int) -> set[int]:
    """Every process of a node started as process ``started`` (its session) whose admin listens
    on ``admin_port`` (the admin's own session too: Thespian's admin starts one), less this
    process and its session's leader."""
    pids = session_members(started) | {started}
    for pid in listening_on(admin_port):
        session = session_of(pid)
        pids |= {pid} | (session_members(session) if session is not None else set())
    pids.discard(os.getpid())
    pids.discard(os.getsid(0))
    return pids


def _listeners_of(pid: int) -> list[Listener]:
    try:
        connections = _process(pid).net_connections(kind="tcp")
    except psutil.Error:
        return []
    listen = psutil.CONN_LISTEN
    return sorted({Listener(c.laddr.ip, c.laddr.port) for c in connections if c.status == listen})


def _process(pid: int) -> psutil.Process:
    """``pid``'s process; :class:`psutil.NoSuchProcess` for no pid of a process (0 or less)."""
    if pid <= 0:
        raise psutil.NoSuchProcess(pid)
    return psutil.Process(pid)
