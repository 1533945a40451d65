"""Node loss: how long until every conversation of a member killed with SIGKILL answers again
from the surviving node, and whether anything acknowledged before the kill was lost.

Two nodes on this machine (a leader on 127.0.0.2 and a member on 127.0.0.3, as
``tests/test_nodes_multiproc.py``), one journal and archive in PostgreSQL (a new database,
dropped after, on the server ``--postgres`` names, else ``CX_TEST_POSTGRES``, else a throwaway
cluster), ``storage.fsync: always`` unless ``--fsync`` says otherwise (an acknowledged message
is then durable, which is what is checked). The leader fills its boot host with
``--conversations`` conversations; the next ``--conversations`` go to a host that placement
starts on the member (the member's node name sorts first, so it wins the tie). Every
conversation, on both nodes, is sent one customer message with its own message id (pipelined,
each answered). Every process of the member is then killed with SIGKILL, and the conversations
of the member are asked for their snapshot (pipelined, 1,000 at a time, up to a second for
each thousand's answers) until every one has answered. Reported: when the first and the last
answer came in, counted from the kill (and when the round of queries that got the last one
ended), and how many were asked; then every conversation's stored events are read back and each acknowledged
customer message counted: lost (stored 0 times) or duplicated (more than once). No load runs
through the loss itself: the messages checked are those acknowledged before it.
``--restore-hosts`` sets ``placement.restore_hosts`` on the leader (2 by default; 1 is the
reference where one host replays every conversation of the member).

    python -m bench.node_loss --conversations 10000
    python -m bench.node_loss --conversations 10000 --restore-hosts 1
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
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from actors.messages import Ping
from actors.messages.nodes import Members, MembersQuery
from actors.nodes import MEMBERSHIP_NAME, MembershipActor
from bench import support
from bench.common import Population, open_conversations
from bench.fuzz import time_limit
from bench.journal import postgres
from domain.membership import NodeState
from runtime import procs, testing
from runtime.gateway import Gateway
from runtime.invariants import StoredEvent, conversation_problems
from tests import pg_cluster  # a new database on the server: no journal of an earlier run

LEADER_IP, MEMBER_IP = "127.0.0.2", "127.0.0.3"
DETECTOR = {"heartbeat_ms": 200, "suspect_after": 2, "dead_after": 5}
#: How long the member's conversations are given to answer again, and to be read back.
RECOVERY_LIMIT_S = 120.0
READ_LIMIT_S = 600.0


class TooLong(BaseException):
    """A phase ran past its limit (a BaseException: the gateway's and this module's
    ``except Exception`` let it through)."""


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


def answering(gw: Gateway, pending: set[str]) -> dict[str, float]:
    """The conversations of ``pending`` that answer a snapshot query within a second, each
    with when its answer came in (``time.monotonic()``)."""
    answered: dict[str, float] = {}
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
                    came = each.answered_at
                    answered[cid] = came if came is not None else time.monotonic()
            except Exception:
                continue
    return answered


def _acknowledge(gw: Gateway, population: Population) -> dict[str, str]:
    """One customer message to each conversation, each answered: the message id of each
    conversation whose message was acknowledged."""
    acked: dict[str, str] = {}
    pairs = list(zip(population.conversation_ids, population.session_ids, strict=True))
    for first in range(0, len(pairs), 1000):
        pipeline = gw.pipeline(acks="all")
        sent = [
            (
                cid,
                f"{cid}-before",
                pipeline.customer_message(sid, "before", message_id=f"{cid}-before"),
            )
            for cid, sid in pairs[first : first + 1000]
        ]
        with contextlib.suppress(Exception):  # a refusal is not an acknowledgement
            pipeline.wait(timeout=120)
        for cid, message_id, each in sent:
            with contextlib.suppress(Exception):
                if each.answered:
                    each.value  # noqa: B018  (raises the refusal, if it was one)
                    acked[cid] = message_id
    return acked


def stored_check(gw: Gateway, acked: dict[str, str]) -> dict[str, int]:
    """Each conversation's stored events read back: the acknowledged customer messages stored
    0 times (lost) and more than once (duplicated), and the problems the invariants of
    :mod:`runtime.invariants` find (gaps, states, ids twice)."""
    figures = {"checked": 0, "lost": 0, "duplicated": 0, "problems": 0, "gone": 0}
    with contextlib.suppress(TooLong), time_limit(READ_LIMIT_S, "reading back", error=TooLong):
        _read_back(gw, acked, figures)
    figures["unread"] = len(acked) - figures["checked"] - figures["gone"]
    return figures


def _read_back(gw: Gateway, acked: dict[str, str], figures: dict[str, int]) -> None:
    for cid, message_id in acked.items():
        try:
            events = [StoredEvent(e["seq"], e["name"], e.get("data") or {}) for e in gw.events(cid)]
        except Exception:  # the conversation itself is gone: its message with it
            figures["lost"] += 1
            figures["gone"] += 1
            continue
        figures["checked"] += 1
        count = Counter(e.data.get("message_id") for e in events if e.name == "CUSTOMER_MESSAGE")[
            message_id
        ]
        figures["lost"] += count == 0
        figures["duplicated"] += count > 1
        found = conversation_problems(
            cid, events, None, acknowledged=[("customer_message", message_id)]
        )
        figures["problems"] += len(found)


def recovered(
    gw: Gateway, pending: set[str], killed_at: float
) -> tuple[float | None, float | None, float | None, set[str]]:
    """Ask ``pending`` until each has answered, for :data:`RECOVERY_LIMIT_S` at most (a
    lookup the TopicMonitor does not answer is cut short too): when the first and the last
    answer came in, and when the round of queries that got the last one ended, counted from
    ``killed_at``, and those that never answered."""
    came: list[float] = []
    seen = None
    with contextlib.suppress(TooLong), time_limit(RECOVERY_LIMIT_S, "recovery", error=TooLong):
        while pending and time.monotonic() - killed_at < RECOVERY_LIMIT_S:
            answered = answering(gw, pending)
            came.extend(at - killed_at for at in answered.values())
            pending = pending - answered.keys()
            if not pending:
                seen = time.monotonic() - killed_at
    first = min(came) if came else None
    last = max(came) if came and not pending else None
    return first, last, seen, pending


def measure(
    dsn: str,
    conversations: int,
    directory: Path,
    *,
    fsync: str = "always",
    restore_hosts: int = 2,
) -> dict[str, Any]:
    leader = support.write_config(
        directory,
        {
            "system": {"bind": LEADER_IP, "node": "n2", **DETECTOR},
            "placement": {
                "hosts": 1,
                "per_host": conversations,
                "restore_hosts": restore_hosts,
            },
            "storage": {"postgres": dsn, "fsync": fsync},
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
            on_leader = open_conversations(gw, conversations, prefix="leader")
            member_population = open_conversations(gw, conversations, prefix="member")
            on_member = member_population.conversation_ids
            acked = _acknowledge(gw, on_leader) | _acknowledge(gw, member_population)
            pids = _member_pids(member, member_port)
            sample = system.ask(testing.host_of(gw, on_member[-1]), Ping("where"), 10)
            if sample.value["pid"] not in pids:
                raise RuntimeError("the second host was not placed on the member")
            killed_at = time.monotonic()
            _kill(pids)
            first, last, seen, pending = recovered(gw, set(on_member), killed_at)
            readable = {c: m for c, m in acked.items() if c not in pending}
            return {
                "conversations": len(on_member),
                "restore_hosts": restore_hosts,
                "first_s": first,
                "all_s": last,
                "seen_s": seen,
                "unanswered": len(pending),
                "acknowledged": len(acked),
                "sent": len(on_member) + len(on_leader),
                # the unanswered are not asked again: each would wait for its lookup's timeout
                "unreadable": len(acked) - len(readable),
                **stored_check(gw, readable),
            }
    finally:
        _kill(_member_pids(member, member_port))
        member.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.node_loss", description=__doc__)
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--postgres", help="a libpq connection string (default: a throwaway)")
    parser.add_argument(
        "--fsync",
        choices=("always", "interval", "never"),
        default="always",
        help="storage.fsync (default always: an acknowledged message is durable)",
    )
    parser.add_argument(
        "--restore-hosts",
        type=int,
        default=2,
        help="placement.restore_hosts: hosts the member's conversations are rebuilt on (default 2)",
    )
    options = parser.parse_args(argv)
    with (
        postgres(options.postgres) as server,
        pg_cluster.fresh_database(server, "cx_node_loss") as dsn,
        tempfile.TemporaryDirectory() as scratch,
    ):
        result = measure(
            dsn,
            options.conversations,
            Path(scratch),
            fsync=options.fsync,
            restore_hosts=options.restore_hosts,
        )
    print(report(result, options.fsync))
    failed = ("unanswered", "unreadable", "unread", "lost", "duplicated", "problems")
    complete = result["acknowledged"] == result["sent"]
    return 0 if complete and not any(result[key] for key in failed) else 1


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"


def report(result: dict[str, Any], fsync: str) -> str:
    """The benchmark's line: recovery times beside what became of the acknowledged messages."""
    return (
        f"node loss: {result['conversations']:,} conversations on the member killed with SIGKILL;"
        f" the first answered again after {_seconds(result['first_s'])}, all after"
        f" {_seconds(result['all_s'])} (when the answers came in; the round of queries that got"
        f" the last ended at {_seconds(result['seen_s'])}; {result['unanswered']} unanswered;"
        f" rebuilt on placement.restore_hosts {result['restore_hosts']})."
        f" Customer messages acknowledged before the kill (storage.fsync: {fsync}):"
        f" {result['acknowledged']:,} of {result['sent']:,} sent, {result['checked']:,}"
        f" conversations read back: {result['lost']} lost, {result['duplicated']} duplicated"
        f" ({result['unreadable']} in unanswered conversations and {result['unread']} past the"
        f" reading's time limit not read; {result['problems']} problems with the stored events)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
