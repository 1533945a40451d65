"""Nodes of one actor system on this machine for the multi-node tests: a leader on 127.0.0.2
and member daemons on 127.0.0.3, 127.0.0.4, ...; each member's processes found, signalled and
killed by its admin port and session."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from actors.messages import Ping
from actors.messages.nodes import Members, MembersQuery
from domain.errors import UnavailableError
from domain.membership import NodeState
from runtime import procs, testing
from runtime.gateway import Gateway
from tests.multiproc_support import eventually, free_port, write_config

LEADER_IP = "127.0.0.2"
DETECTOR = {"heartbeat_ms": 200, "suspect_after": 2, "dead_after": 5}


@dataclass(frozen=True, slots=True)
class MemberSpec:
    """A member node: its name, its configuration file and its admin port."""

    name: str
    config: Path
    admin_port: int


def member_ip(index: int) -> str:
    """The loopback address of member ``index`` (0: 127.0.0.3)."""
    return f"127.0.0.{3 + index}"


def _member_config(directory: Path, name: str, ip: str, leader_port: int) -> MemberSpec:
    directory.mkdir()
    port = free_port()
    config = {
        "system": {
            "admin_port": port,
            "bind": ip,
            "node": name,
            "convention_address": f"{LEADER_IP}:{leader_port}",
            **DETECTOR,
        },
        "storage": {"journal": str(directory / "journal")},
        "logging": {"level": "warning"},
    }
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return MemberSpec(name, path, port)


def node_configs(
    tmp_path: Path, *, members: int = 1, postgres: str | None = None, per_host: int = 10_000
) -> tuple[Path, list[MemberSpec]]:
    """The leader's configuration and ``members`` members' (named m1, m2, ...)."""
    storage = {
        "archive": str(tmp_path / "archive.sqlite3"),
        "journal": str(tmp_path / "journal"),
        "postgres": postgres,
    }
    leader_config = write_config(
        tmp_path, placement={"hosts": 1, "per_host": per_host}, storage=storage
    )
    settings = yaml.safe_load(leader_config.read_text())
    settings["system"].update({"bind": LEADER_IP, "node": "leader", **DETECTOR})
    leader_config.write_text(yaml.safe_dump(settings))
    leader_port = settings["system"]["admin_port"]
    specs = [
        _member_config(tmp_path / f"m{n + 1}", f"m{n + 1}", member_ip(n), leader_port)
        for n in range(members)
    ]
    return leader_config, specs


def start_member(config: Path) -> subprocess.Popen[bytes]:
    """A member daemon for ``config``, in a session of its own."""
    return subprocess.Popen(
        [sys.executable, "-m", "runtime.daemon", "--config", str(config)],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def member_pids(member: subprocess.Popen[bytes], admin_port: int) -> set[int]:
    return procs.node_pids(member.pid, admin_port)


def signal_member(member: subprocess.Popen[bytes], admin_port: int, signum: int) -> set[int]:
    """Send ``signum`` to every process of the member; the pids signalled."""
    pids = member_pids(member, admin_port)
    for pid in pids:
        if procs.alive(pid):
            os.kill(pid, signum)
    return pids


def kill_member(member: subprocess.Popen[bytes], admin_port: int) -> set[int]:
    """SIGKILL every process of the member (resumed first, if it was stopped); the pids."""
    signal_member(member, admin_port, signal.SIGCONT)
    pids = signal_member(member, admin_port, signal.SIGKILL)
    member.wait(timeout=10)
    return pids


def node_state(system: Any, membership: Any, name: str) -> tuple[NodeState, int] | None:
    """The state and incarnation the leader's membership actor has for node ``name``."""
    answer = system.ask(membership, MembersQuery(), 5)
    assert isinstance(answer, Members)
    found = {r.name: (r.state, r.incarnation) for r in answer.records}
    return found.get(name)


def alive(system: Any, membership: Any, name: str) -> bool:
    node = node_state(system, membership, name)
    return node is not None and node[0] is NodeState.ALIVE


class HardTimeout:
    """SIGALRM after ``seconds``: the test stops with TimeoutError and runs its clean-up."""

    def __init__(self, seconds: int) -> None:
        self.seconds = seconds

    def _expired(self, signum: int, frame: object) -> None:
        raise TimeoutError(f"the multi-node test ran past {self.seconds} s")

    def __enter__(self) -> HardTimeout:
        signal.signal(signal.SIGALRM, self._expired)
        signal.alarm(self.seconds)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.alarm(0)


def host_pid(system: Any, gw: Gateway, conversation_id: str) -> int:
    """The pid of the process hosting a live conversation."""
    answer = system.ask(testing.host_of(gw, conversation_id), Ping("where"), 10)
    return int(answer.value["pid"])


def open_until_hosted_by(
    system: Any,
    gw: Gateway,
    pids: Callable[[], set[int]],
    *,
    first: int = 0,
    timeout: float = 15,
) -> list[tuple[str, str, int]]:
    """Open conversations (customers cust-FIRST, cust-FIRST+1, ...) until one is hosted by a
    process of ``pids()``: each opened, as (conversation id, channel session id, host pid), that
    one last. With ``placement.per_host`` 1 each conversation starts a host, on the node
    placement chose."""
    placed: list[tuple[str, str, int]] = []

    def one_more() -> bool:
        n = first + len(placed)
        ref = gw.start_session(f"cust-{n}", "WEB", f"visitor-{n}")
        pid = host_pid(system, gw, ref.conversation_id)
        placed.append((ref.conversation_id, ref.channel_session_id, pid))
        return pid in pids()

    eventually(one_more, timeout=timeout)
    return placed


def connect_beside(config: Path, *, timeout: float = 20) -> Gateway:
    """A gateway beside a member node, once the leader has told that node where the engine's
    actors are (a member reported alive may not have been told yet: ``connect`` then says it
    has not joined)."""
    gateways: list[Gateway] = []

    def connected() -> bool:
        try:
            gateways.append(Gateway.connect(config))
        except UnavailableError:
            return False
        return True

    eventually(connected, timeout=timeout)
    return gateways[0]
