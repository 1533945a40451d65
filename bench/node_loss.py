"""Node loss: how long until every conversation of a member killed with SIGKILL answers again
from the surviving node.

Two nodes on this machine (a leader on 127.0.0.2 and a member on 127.0.0.3, as
``tests/test_nodes_multiproc.py``), one journal and archive in PostgreSQL (``--postgres``, else
``CX_TEST_POSTGRES``, else a throwaway cluster). The leader fills its boot host with
``--conversations`` conversations; the next ``--conversations`` go to a host that placement
starts on the member (the member's node name sorts first, so it wins the tie). Every process of
the member is then killed with SIGKILL, and the conversations of the member are asked for their
snapshot (pipelined, 1,000 at a time) until every one has answered. Reported: when the first
and the last answered, counted from the kill, and how many were asked.

    python -m bench.node_loss --conversations 10000
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from actors.messages import Ping
from actors.messages.nodes import Members, MembersQuery
from actors.nodes import MEMBERSHIP_NAME, MembershipActor
from bench import support
from bench.common import open_conversations
from bench.journal import postgres
from domain.membership import NodeState
from runtime import procs, testing
from runtime.gateway import Gateway

LEADER_IP, MEMBER_IP = "127.0.0.2", "127.0.0.3"
DETECTOR = {"heartbeat_ms": 200, "suspect_after": 2, "dead_after": 5}


def _member_pids(member: subprocess.Popen[bytes], admin_port: int) -> set[int]:
    return procs.node_pids(member.pid, admin_port)


def _kill(pids: set[int]) -> None:
    for pid in pids:
        if procs.alive(pid):
            os.kill(pid, signal.SIGKILL)


def _alive(system: Any, membership: Any, name: str) -> bool:
    answer = system.ask(membership, MembersQuery(), 5)
    if not isinstance(answer, Members):
        return False
    return any(r.name == name and r.state is NodeState.ALIVE for r in answer.records)


def _wait(check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached in time")
        time.sleep(0.05)


def _answering(gw: Gateway, pending: set[str]) -> set[str]:
    """The conversations of ``pending`` that answer a snapshot query within a second."""
    answered: set[str] = set()
    ids = list(pending)
    for first in range(0, len(ids), 1000):
        pipeline = gw.pipeline()
        asked = [(cid, pipeline.conversation(cid)) for cid in ids[first : first + 1000]]
        sent = pipeline.send()
        # a refusal or a dead host's silence raises here: each is counted below, one by one
        with contextlib.suppress(Exception):
            pipeline.wait(sent, timeout=1.0)
        for cid, each in asked:
            try:
                if each.answered and each.value is not None:
                    answered.add(cid)
            except Exception:
                continue
    return answered


def measure(dsn: str, conversations: int, directory: Path) -> dict[str, Any]:
    leader = support.write_config(
        directory,
        {
            "system": {"bind": LEADER_IP, "node": "n2", **DETECTOR},
            "placement": {"hosts": 1, "per_host": conversations},
            "storage": {"postgres": dsn, "fsync": "interval"},
        },
    )
    leader_port = yaml.safe_load(leader.read_text())["system"]["admin_port"]
    member_port = support.free_port()
    member_config = directory / "member.yaml"
    member_config.write_text(
        yaml.safe_dump(
            {
                "system": {
                    "admin_port": member_port,
                    "bind": MEMBER_IP,
                    "node": "n1",
                    "convention_address": f"{LEADER_IP}:{leader_port}",
                    **DETECTOR,
                },
                "storage": {"journal": str(directory / "member-journal")},
                "logging": {"level": "error", "file": str(directory / "member.log")},
            }
        )
    )
    member = subprocess.Popen(
        [sys.executable, "-m", "runtime.daemon", "--config", str(member_config)],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with support.engine(leader) as running, Gateway.connect(leader) as gw:
            system = running.system
            membership = system.createActor(MembershipActor, globalName=MEMBERSHIP_NAME)
            _wait(lambda: _alive(system, membership, "n1"), 30)
            open_conversations(gw, conversations, prefix="leader")
            on_member = open_conversations(gw, conversations, prefix="member").conversation_ids
            pids = _member_pids(member, member_port)
            sample = system.ask(testing.host_of(gw, on_member[-1]), Ping("where"), 10)
            if sample.value["pid"] not in pids:
                raise RuntimeError("the second host was not placed on the member")
            killed_at = time.monotonic()
            _kill(pids)
            pending = set(on_member)
            first = last = None
            while pending and time.monotonic() - killed_at < 120:
                answered = _answering(gw, pending)
                now = time.monotonic() - killed_at
                if answered and first is None:
                    first = now
                pending -= answered
                if not pending:
                    last = now
            return {
                "conversations": len(on_member),
                "first_s": first,
                "all_s": last,
                "unanswered": len(pending),
            }
    finally:
        _kill(_member_pids(member, member_port))
        member.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.node_loss", description=__doc__)
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--postgres", help="a libpq connection string (default: a throwaway)")
    options = parser.parse_args(argv)
    with postgres(options.postgres) as dsn, tempfile.TemporaryDirectory() as scratch:
        result = measure(dsn, options.conversations, Path(scratch))
    print(
        f"node loss: {result['conversations']:,} conversations on the member killed with SIGKILL;"
        f" the first answered again after {result['first_s']:.2f} s, all after"
        f" {result['all_s'] if result['all_s'] is None else round(result['all_s'], 2)} s"
        f" ({result['unanswered']} unanswered)"
    )
    return 0 if result["unanswered"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
