"""Two nodes of one actor system on this machine (a leader on 127.0.0.2, a member daemon on
127.0.0.3): the member joins, a conversation host is placed on it by name, it is killed with
SIGKILL, the leader's failure detector declares it dead, and it rejoins as a new incarnation
after a restart. Bounded; every process of the member is killed at the end."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import psycopg
import pytest
import yaml

from actors.host import Host
from actors.messages import Ping, Reply
from actors.nodes import MEMBERSHIP_NAME, MembershipActor, node_requirements
from domain.membership import NodeState
from infra.config import load_config
from infra.members_file import read_members
from runtime import control, procs
from runtime.daemon import EXIT_REJOIN
from runtime.gateway import Gateway, UnavailableError
from runtime.pidfile import Record
from tests.multiproc_support import eventually, running_system
from tests.nodes_support import (
    HardTimeout,
    alive,
    host_pid,
    kill_member,
    member_ip,
    member_pids,
    node_configs,
    node_state,
    open_until_hosted_by,
    signal_member,
    start_member,
)

pytestmark = pytest.mark.multiproc

#: The whole test is stopped (TimeoutError, then the clean-up) after this long.
HARD_TIMEOUT_S = 90
#: How long a member is given to join (0.1-0.3 s on a quiet machine; seen over 15 s with
#: five other test runs on the same two cores).
JOIN_S = 30


def _one_member(
    tmp_path: Path, *, postgres: str | None = None, per_host: int = 10_000
) -> tuple[Path, Path, int]:
    """The leader's config, the member's, and the member's admin port."""
    leader_config, (member,) = node_configs(tmp_path, postgres=postgres, per_host=per_host)
    return leader_config, member.config, member.admin_port


def test_a_member_joins_hosts_dies_is_declared_dead_and_rejoins(tmp_path: Path) -> None:
    leader_config, member_config, member_port = _one_member(tmp_path)
    members: list[subprocess.Popen[bytes]] = []
    with HardTimeout(HARD_TIMEOUT_S):
        try:
            with running_system(leader_config) as system:
                membership = system.createActor(MembershipActor, globalName=MEMBERSHIP_NAME)
                members.append(start_member(member_config))

                eventually(lambda: alive(system, membership, "m1"), timeout=JOIN_S)
                first = node_state(system, membership, "m1")
                assert first is not None

                host = system.createActor(Host, targetActorRequirements=node_requirements("m1"))
                answer = system.ask(host, Ping("where"), 10)
                assert isinstance(answer, Reply)
                placed_on = answer.value["pid"]

                killed = kill_member(members[-1], member_port)
                assert placed_on in killed

                def dead() -> bool:
                    return node_state(system, membership, "m1") == (NodeState.DEAD, first[1])

                eventually(dead, timeout=10)

                members.append(start_member(member_config))

                def rejoined() -> bool:
                    node = node_state(system, membership, "m1")
                    return node is not None and node[0] is NodeState.ALIVE and node[1] > first[1]

                eventually(rejoined, timeout=15)
        finally:
            for member in members:
                if member.poll() is None:
                    kill_member(member, member_port)


def test_a_stopping_leader_stops_its_members_and_a_restarted_one_gets_them_back(
    tmp_path: Path,
) -> None:
    """The member runs under ``cx start`` (which returns once its admin answers). The leader
    stops: it fences its member, which stops itself. Started again while the leader is down
    (as its service manager would), the member is back as soon as the leader restarts (the
    leader invites the members it recorded), and ``cx stop`` stops it."""
    leader_config, member_config, member_port = _one_member(tmp_path)
    member_settings = load_config(member_config)
    started: list[Record] = []

    def stopped_by_itself() -> bool:
        return not procs.alive(started[-1].pid)

    with HardTimeout(HARD_TIMEOUT_S):
        try:
            with running_system(leader_config) as system:
                membership = system.createActor(MembershipActor, globalName=MEMBERSHIP_NAME)
                started.append(control.spawn(str(member_config), member_settings))
                assert started[-1].state == "member"
                eventually(lambda: alive(system, membership, "m1"), timeout=JOIN_S)
            eventually(stopped_by_itself, timeout=15)
            assert read_members(tmp_path / "members.json") == {
                "m1": f"{member_ip(0)}:{member_port}"
            }
            started.append(control.spawn(str(member_config), member_settings))
            with pytest.raises(UnavailableError, match="has not joined its leader"):
                Gateway.connect(member_config)  # beside a member that has no leader yet
            with running_system(leader_config) as system:
                membership = system.createActor(MembershipActor, globalName=MEMBERSHIP_NAME)
                eventually(lambda: alive(system, membership, "m1"), timeout=JOIN_S)
                control.stop(member_settings)
            assert not {
                pid for pid in procs.node_pids(started[-1].pid, member_port) if procs.alive(pid)
            }
        finally:
            for record in started:
                for pid in procs.node_pids(record.pid, member_port):
                    if procs.alive(pid):
                        os.kill(pid, signal.SIGKILL)


def test_a_dead_members_conversation_answers_from_the_leader_with_nothing_lost(
    tmp_path: Path, postgres_dsn: str
) -> None:
    """With one journal in PostgreSQL, a conversation host is placed on the member; the member
    is killed with SIGKILL; once it is declared dead, its conversation is rebuilt on the
    leader from the shared journal and answers, its acknowledged message kept."""
    leader_config, member_config, member_port = _one_member(
        tmp_path, postgres=postgres_dsn, per_host=1
    )
    members: list[subprocess.Popen[bytes]] = []
    with HardTimeout(HARD_TIMEOUT_S):
        try:
            with running_system(leader_config) as system, Gateway.connect(leader_config) as gw:
                membership = system.createActor(MembershipActor, globalName=MEMBERSHIP_NAME)
                members.append(start_member(member_config))
                eventually(lambda: alive(system, membership, "m1"), timeout=JOIN_S)
                placed = open_until_hosted_by(
                    system, gw, lambda: member_pids(members[-1], member_port)
                )
                conversation_id, session_id, pid = placed[-1]
                gw.customer_message(session_id, "before the member died", message_id="m-1")

                killed = kill_member(members[-1], member_port)
                assert pid in killed

                def answered() -> bool:
                    try:
                        gw.customer_message(session_id, "after", message_id="m-2")
                    except UnavailableError:
                        return False
                    return True

                eventually(answered, timeout=20)
                texts = [
                    e["data"]["text"]
                    for e in gw.events(conversation_id)
                    if e["name"] == "CUSTOMER_MESSAGE"
                ]
                assert texts == ["before the member died", "after"]
                assert host_pid(system, gw, conversation_id) not in killed
        finally:
            for member in members:
                if member.poll() is None:
                    kill_member(member, member_port)


def test_a_frozen_member_is_fenced_and_its_conversation_answers_once_from_the_leader(
    tmp_path: Path, postgres_dsn: str
) -> None:
    """A partition, not a death: every process of the member is stopped (SIGSTOP), so its
    sockets stay open and it answers nothing. The leader keeps serving its own conversations,
    declares the member dead, rebuilds the member's conversation from the shared journal and
    answers it; when the member runs again (SIGCONT) it is fenced and stops itself, the
    conversation keeps exactly the messages that were acknowledged, once each, and nothing
    was written in the fenced writer's name after its rows were read and deleted (the sends
    the gateway tried while the member was frozen reach it when it runs again)."""
    leader_config, member_config, member_port = _one_member(
        tmp_path, postgres=postgres_dsn, per_host=1
    )
    members: list[subprocess.Popen[bytes]] = []
    with HardTimeout(HARD_TIMEOUT_S):
        try:
            with running_system(leader_config) as system, Gateway.connect(leader_config) as gw:
                membership = system.createActor(MembershipActor, globalName=MEMBERSHIP_NAME)
                members.append(start_member(member_config))
                eventually(lambda: alive(system, membership, "m1"), timeout=JOIN_S)
                first = node_state(system, membership, "m1")
                assert first is not None
                placed = open_until_hosted_by(
                    system, gw, lambda: member_pids(members[-1], member_port)
                )
                conversation_id, session_id, pid = placed[-1]
                on_leader = [p for p in placed if p[2] not in member_pids(members[-1], member_port)]
                assert on_leader, "placement put every conversation on the member"
                gw.customer_message(session_id, "before the cut", message_id="m-1")

                frozen = signal_member(members[-1], member_port, signal.SIGSTOP)
                assert pid in frozen
                # the leader's own conversation answers during the cut
                gw.customer_message(on_leader[0][1], "while the member is frozen")

                def answered() -> bool:
                    try:
                        gw.customer_message(session_id, "after the cut", message_id="m-2")
                    except UnavailableError:
                        return False
                    return True

                eventually(answered, timeout=25)
                assert node_state(system, membership, "m1") == (NodeState.DEAD, first[1])

                signal_member(members[-1], member_port, signal.SIGCONT)
                # its next heartbeat is answered Fenced, and the member stops itself
                assert members[-1].wait(timeout=20) == EXIT_REJOIN
                gw.customer_message(session_id, "after the member ran again", message_id="m-3")
                texts = [
                    e["data"]["text"]
                    for e in gw.events(conversation_id)
                    if e["name"] == "CUSTOMER_MESSAGE"
                ]
                assert texts == ["before the cut", "after the cut", "after the member ran again"]
                assert host_pid(system, gw, conversation_id) not in frozen
                fenced, rows = _rows_of_fenced_writers(postgres_dsn)
                assert fenced >= 1 and rows == 0
        finally:
            for member in members:
                if member.poll() is None:
                    kill_member(member, member_port)


def _rows_of_fenced_writers(dsn: str) -> tuple[int, int]:
    """How many journal writers are fenced, and how many journal rows are in their names."""
    with psycopg.connect(dsn) as db:
        fenced = db.execute("SELECT count(*) FROM journal_writer WHERE fenced").fetchone()
        rows = db.execute(
            "SELECT count(*) FROM journal_frame JOIN journal_writer USING (writer_id)"
            " WHERE journal_writer.fenced"
        ).fetchone()
    assert fenced is not None and rows is not None
    return int(fenced[0]), int(rows[0])


def _agent_host_pids(pids: set[int]) -> set[int]:
    """Of ``pids``, the processes of agent hosts (by their title)."""
    return {pid for pid in pids if "cx: host agents" in " ".join(procs.cmdline(pid))}


def _has_joined(gw: Gateway, agent_id: str, conversation_id: str) -> bool:
    participants = gw.conversation(conversation_id)["participants"]
    return any(p["id"] == agent_id and p["state"] == "SUBSCRIBED" for p in participants)


def test_an_agent_host_on_a_dead_member_is_rebuilt_and_its_agent_keeps_working(
    tmp_path: Path, postgres_dsn: str
) -> None:
    """With PostgreSQL storage and a leader that offers no agent hosts, the agent host goes to
    the member. The member is killed with SIGKILL; once it is declared dead the agent host is
    rebuilt on the leader: the agent, still logged in and READY, answers its presence calls,
    is routed a new conversation and still holds the one it had."""
    leader_config, member_config, member_port = _one_member(tmp_path, postgres=postgres_dsn)
    settings = yaml.safe_load(leader_config.read_text())
    settings["system"]["offers_agent_hosts"] = False
    leader_config.write_text(yaml.safe_dump(settings))
    members: list[subprocess.Popen[bytes]] = []
    with HardTimeout(HARD_TIMEOUT_S):
        try:
            with running_system(leader_config) as system, Gateway.connect(leader_config) as gw:
                membership = system.createActor(MembershipActor, globalName=MEMBERSHIP_NAME)
                members.append(start_member(member_config))
                eventually(lambda: alive(system, membership, "m1"), timeout=JOIN_S)
                gw.agent_login("alice")
                gw.agent_ready("alice")
                on_member = _agent_host_pids(member_pids(members[-1], member_port))
                assert len(on_member) == 1
                first = gw.start_session("cust-1", "WEB", "visitor-1")
                gw.request_agent(first.conversation_id)
                eventually(lambda: _has_joined(gw, "alice", first.conversation_id), timeout=10)

                killed = kill_member(members[-1], member_port)
                assert on_member <= killed

                def ready_again() -> bool:
                    try:
                        gw.agent_ready("alice")  # unavailable until the host is rebuilt
                    except UnavailableError:
                        return False
                    return True

                eventually(ready_again, timeout=20)
                second = gw.start_session("cust-2", "WEB", "visitor-2")
                gw.request_agent(second.conversation_id)
                eventually(lambda: _has_joined(gw, "alice", second.conversation_id), timeout=10)
                held = [c["conversation_id"] for c in gw.agent_conversations("alice")]
                assert held == sorted([first.conversation_id, second.conversation_id])
        finally:
            for member in members:
                if member.poll() is None:
                    kill_member(member, member_port)
