"""Support for the few tests that start a real multiprocTCPBase system: free ports, a config
file on temporary storage, and a guarantee that no process outlives the test."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from infra import proctitle
from infra.config import load_config
from runtime import procs
from runtime.system import start


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def same_program(config: Path | None = None) -> set[int]:
    """Pids of processes running this very command line (Thespian forks its actor processes
    from the process that starts the system, so they share it until they get a title of their
    own) and, given ``config``, the processes of the system started for it."""
    mine = Path("/proc/self/cmdline").read_bytes()
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes() == mine:
                    pids.add(int(entry.name))
            except OSError:
                continue
    if config is not None:
        pids |= system_pids(config)
    pids.discard(os.getpid())
    return pids


def system_pids(config: Path) -> set[int]:
    """The processes of the system started for ``config``: those whose title names it (the
    daemon, every actor: infra.proctitle), and the processes of their sessions that have the
    title of an engine process (Thespian's admin and logger)."""
    named = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        line = procs.cmdline(int(entry.name))
        if str(config) in " ".join(line) and (
            proctitle.is_engine_title(line) or "runtime.daemon" in line
        ):
            named.add(int(entry.name))
    sessions = {procs.session_of(pid) for pid in named} - {None, os.getsid(0)}
    found = set(named)
    for session in sessions:
        assert session is not None
        found |= {
            pid
            for pid in procs.session_members(session)
            if proctitle.is_engine_title(procs.cmdline(pid))
        }
    found.discard(os.getpid())
    return {pid for pid in found if procs.alive(pid)}


def write_config(directory: Path, **sections: Any) -> Path:
    config = {
        "system": {"admin_port": free_port()},
        "storage": {
            "archive": str(directory / "archive.sqlite3"),
            "journal": str(directory / "journal"),
        },
        "logging": {"level": "warning"},
        **sections,
    }
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@contextmanager
def running_system(config_path: Path, *, shutdown_timeout: float = 20.0) -> Iterator[Any]:
    """Start the engine on multiprocTCPBase; on exit shut it down and make sure every one of
    its processes is gone (killing leftovers, and failing, if it is not)."""
    before = same_program(config_path)
    system = start(load_config(config_path))
    try:
        yield system
    finally:
        system.shutdown()
        deadline = time.monotonic() + shutdown_timeout
        leftovers = same_program(config_path) - before
        while leftovers and time.monotonic() < deadline:
            time.sleep(0.05)
            leftovers = same_program(config_path) - before
        for pid in leftovers:
            os.kill(pid, signal.SIGKILL)
        assert not leftovers, f"processes left behind after shutdown: {sorted(leftovers)}"


def eventually(check: Callable[[], bool], *, timeout: float = 30.0) -> None:
    """Wait for an asynchronous outcome of a real-time system (not for a timer)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)
