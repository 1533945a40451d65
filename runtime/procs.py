"""What the system's processes are, read from Linux's ``/proc``.

Thespian's admin puts itself in a session of its own (``setsid`` then a second fork), and every
process it starts (the logger, every actor) inherits that session: the session id is how
``cx stop`` finds every process of a system, also after the admin is gone. Listening sockets are
matched to processes through the socket inodes of ``/proc/net/tcp`` and ``/proc/PID/fd``.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from infra import proctitle

PROC = Path("/proc")
_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's "st" column


@dataclass(frozen=True, slots=True)
class Listener:
    """A listening TCP socket: its local address and port, and its inode."""

    address: str
    port: int
    inode: int


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        return _stat_fields(pid)[0] != "Z"
    except OSError:
        return False


def session_of(pid: int) -> int | None:
    """The session id of ``pid`` (``None`` if it is gone)."""
    try:
        return int(_stat_fields(pid)[3])
    except (OSError, ValueError, IndexError):
        return None


def parent_of(pid: int) -> int | None:
    """The parent's pid of ``pid`` (``None`` if it is gone)."""
    try:
        return int(_stat_fields(pid)[1])
    except (OSError, ValueError, IndexError):
        return None


def cmdline(pid: int) -> list[str]:
    """The command line of ``pid`` (empty if it is gone)."""
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0")[:-1]]


def session_members(sid: int) -> set[int]:
    """Live processes (not zombies) of session ``sid``."""
    return set(session_tree(sid))


def session_tree(sid: int) -> dict[int, int]:
    """Live processes (not zombies) of session ``sid``, each with its parent's pid."""
    members = {}
    for pid in _pids():
        try:
            fields = _stat_fields(pid)
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[3]) == sid:
            members[pid] = int(fields[1])
    return members


def exists(pid: int) -> bool:
    """Whether ``pid`` is in the process table at all (a zombie not reaped yet counts)."""
    return (PROC / str(pid)).exists()


def signal_all(pids: Iterable[int], signum: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            continue


def listeners() -> dict[int, Listener]:
    """Every listening TCP socket of this machine (IPv4 and IPv6), by inode."""
    found: dict[int, Listener] = {}
    for name, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        try:
            lines = (PROC / "net" / name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] != _LISTEN:
                continue
            host, port = fields[1].split(":")
            inode = int(fields[9])
            found[inode] = Listener(_address(host, family), int(port, 16), inode)
    return found


def socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets ``pid`` holds open (empty if it is gone or not ours)."""
    inodes: set[int] = set()
    try:
        entries = list((PROC / str(pid) / "fd").iterdir())
    except OSError:
        return inodes
    for entry in entries:
        try:
            target = os.readlink(entry)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def listening(pids: Iterable[int]) -> dict[int, list[Listener]]:
    """The listening TCP sockets each of ``pids`` holds."""
    table = listeners()
    return {
        pid: [table[inode] for inode in sorted(socket_inodes(pid)) if inode in table]
        for pid in pids
    }


def listening_on(port: int) -> set[int]:
    """Pids holding a listening socket on ``port`` (any address)."""
    inodes = {inode for inode, listener in listeners().items() if listener.port == port}
    return {pid for pid in _pids() if socket_inodes(pid) & inodes} if inodes else set()


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


def _pids() -> Iterator[int]:
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            yield int(entry.name)


def _stat_fields(pid: int) -> list[str]:
    """``/proc/PID/stat`` after the command name: state, ppid, pgrp, session, ..."""
    text = (PROC / str(pid) / "stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def _address(hexadecimal: str, family: socket.AddressFamily) -> str:
    raw = bytes.fromhex(hexadecimal)
    # /proc/net/tcp prints the address as 32-bit words in host byte order.
    words = struct.unpack(f"={len(raw) // 4}I", raw)
    return socket.inet_ntop(family, struct.pack(f">{len(words)}I", *words))
