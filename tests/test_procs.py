"""runtime.procs: processes by session, zombies, parents and listening sockets, on processes and
sockets these tests make themselves (each is ended and reaped, also on failure)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from runtime import procs

#: Bounds the wait for a child to end (a limit on a hang, never a measurement).
CHILD_LIMIT_S = 30


@pytest.fixture
def zombie() -> Iterator[int]:
    """A child that has exited and is not reaped yet."""
    child = subprocess.Popen([sys.executable, "-c", ""])
    try:
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # ended, left in the table
        yield child.pid
    finally:
        child.kill()
        child.wait(CHILD_LIMIT_S)


@pytest.fixture
def session_leader() -> Iterator[int]:
    """A running child in a session of its own (its session id is its pid)."""
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"],
        stdin=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        yield child.pid
    finally:
        child.kill()
        child.wait(CHILD_LIMIT_S)


@pytest.fixture
def listening_child() -> Iterator[tuple[int, int]]:
    """A running child (plain ``python``, no engine's title) listening on 127.0.0.1: its pid
    and port."""
    child = subprocess.Popen(
        [sys.executable, "-c", _LISTENING_CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        yield child.pid, int(child.stdout.readline())
    finally:
        child.kill()
        child.wait(CHILD_LIMIT_S)


_LISTENING_CHILD = """
import socket, sys
sock = socket.create_server(("127.0.0.1", 0))
print(sock.getsockname()[1], flush=True)
sys.stdin.read()
"""


def _listen(family: socket.AddressFamily, address: str) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.bind((address, 0))
    sock.listen()
    return sock


def test_a_listener_is_found_by_its_port_with_its_pid() -> None:
    with _listen(socket.AF_INET, "127.0.0.1") as sock:
        port = sock.getsockname()[1]
        assert os.getpid() in procs.listening_on(port)


def test_a_listening_socket_shared_with_a_child_is_found_in_both() -> None:
    with _listen(socket.AF_INET, "127.0.0.1") as sock:
        child = subprocess.Popen(
            [sys.executable, "-c", "import sys; sys.stdin.read()"],
            stdin=subprocess.PIPE,
            pass_fds=[sock.fileno()],  # as Thespian's logger inherits the admin's socket
        )
        try:
            found = procs.listening_on(sock.getsockname()[1])
        finally:
            child.kill()
            child.wait(CHILD_LIMIT_S)
        assert {os.getpid(), child.pid} <= found


def test_a_process_lists_its_ipv4_and_ipv6_listeners_with_their_addresses() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    with _listen(socket.AF_INET, "127.0.0.1") as four, _listen(socket.AF_INET6, "::1") as six:
        mine = procs.listening([os.getpid()])[os.getpid()]
        assert procs.Listener("127.0.0.1", four.getsockname()[1]) in mine
        assert procs.Listener("::1", six.getsockname()[1]) in mine


def test_a_listener_without_an_engine_title_is_foreign(listening_child: tuple[int, int]) -> None:
    pid, port = listening_child
    assert procs.foreign_listeners(port) == {pid: procs.cmdline(pid)}


def test_a_zombie_is_not_alive(zombie: int) -> None:
    assert not procs.alive(zombie)


def test_a_zombie_is_still_in_the_table_with_its_parent(zombie: int) -> None:
    assert procs.exists(zombie) and procs.parent_of(zombie) == os.getpid()


def test_a_zombie_is_no_member_of_its_session(zombie: int) -> None:
    session = procs.session_of(zombie)
    assert session is not None and zombie not in procs.session_members(session)


def test_a_session_lists_its_live_processes_with_their_parents(session_leader: int) -> None:
    assert procs.session_tree(session_leader) == {session_leader: os.getpid()}


def test_a_gone_pid_gives_the_empty_answers() -> None:
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait(CHILD_LIMIT_S)  # reaped: the pid is no process any more
    assert procs.session_of(child.pid) is None
    assert procs.parent_of(child.pid) is None
    assert procs.cmdline(child.pid) == []
    assert not procs.alive(child.pid) and not procs.exists(child.pid)


def test_pid_zero_is_no_process() -> None:
    assert procs.session_of(0) is None and not procs.alive(0) and not procs.exists(0)
