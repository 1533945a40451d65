"""The membership actor and the heartbeat actor in one simpleSystemBase, time moved by Tick:
joins, death after missed heartbeats, fencing, rejoin, least-loaded choice, members file."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs
from thespian.actors import Actor, ActorSystem, ActorSystemConventionUpdate, WakeupMessage

from actors.messages.nodes import (
    Fenced,
    Heartbeat,
    HeartbeatAck,
    Members,
    MembersQuery,
    NodeChoice,
    NodeDown,
    NodeUp,
    StartHeartbeat,
    StartMembership,
    Tick,
    WhichNode,
)
from actors.nodes import (
    ADMIN_CAPABILITY,
    FENCE_SIGNAL,
    FENCE_SIGNAL_ENV,
    INCARNATION_CAPABILITY,
    NODE_CAPABILITY,
    HeartbeatActor,
    MembershipActor,
    fits,
    node_requirements,
)
from domain.membership import Capacity, Detector, NodeState
from infra.archive_errors import StorageError
from infra.members_file import read_members, write_members

DETECTOR = Detector(interval_ms=100, suspect_after=2, dead_after=4)
ASK_S = 5.0


class Recorder(Actor):  # type: ignore[misc]
    """Keeps what it is sent; answers "get" with the list."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Any] = []

    def receiveMessage(self, message: Any, sender: Any) -> None:
        if message == "get":
            self.send(sender, list(self.seen))
        elif not isinstance(message, str):
            self.seen.append(message)


@pytest.fixture
def system() -> Iterator[Any]:
    capabilities = {NODE_CAPABILITY: "leader", INCARNATION_CAPABILITY: 1}
    actor_system = ActorSystem("simpleSystemBase", capabilities, transientUnique=True)
    try:
        yield actor_system
    finally:
        actor_system.shutdown()


def _leader(system: Any, members_file: Path | None = None) -> tuple[Any, Any]:
    monitor = system.createActor(Recorder)
    membership = system.createActor(MembershipActor)
    start = StartMembership(
        DETECTOR, "leader", 1, Capacity(), monitor, members_file, virtual=True, now_ms=0
    )
    system.tell(membership, start)
    return membership, monitor


def _reports(system: Any, monitor: Any) -> list[Any]:
    return [m for m in system.ask(monitor, "get", ASK_S) if isinstance(m, NodeUp | NodeDown)]


def test_a_node_heard_for_the_first_time_is_reported_up(system: Any) -> None:
    membership, monitor = _leader(system)
    answer = system.ask(membership, Heartbeat("n2", 5, Capacity()), ASK_S)
    assert answer == HeartbeatAck("n2", 5)
    assert NodeUp("n2", 5, Capacity()) in _reports(system, monitor)


def test_a_node_is_reported_up_with_what_it_offers(system: Any) -> None:
    membership, monitor = _leader(system)
    offer = Capacity(hosts=False, weight=3)
    system.ask(membership, Heartbeat("n3", 2, offer), ASK_S)
    assert NodeUp("n3", 2, offer) in _reports(system, monitor)


def test_node_changes_are_reported_to_the_agent_supervisor_too(system: Any) -> None:
    monitor, agents = system.createActor(Recorder), system.createActor(Recorder)
    membership = system.createActor(MembershipActor)
    start = StartMembership(
        DETECTOR, "leader", 1, Capacity(), monitor, None, virtual=True, now_ms=0, agents=agents
    )
    system.tell(membership, start)
    offer = Capacity(agent_hosts=True, archivists=False)
    system.ask(membership, Heartbeat("n2", 5, offer), ASK_S)
    system.tell(membership, Tick(400))
    reports = _reports(system, agents)
    assert NodeUp("n2", 5, offer) in reports
    assert NodeDown("n2", 5) in reports
    assert reports == _reports(system, monitor)


def test_the_leader_watches_its_own_node(system: Any) -> None:
    _, monitor = _leader(system)
    assert NodeUp("leader", 1, Capacity()) in _reports(system, monitor)


def test_a_silent_node_is_reported_down_after_dead_after_intervals(system: Any) -> None:
    membership, monitor = _leader(system)
    system.ask(membership, Heartbeat("n2", 5, Capacity()), ASK_S)
    system.tell(membership, Tick(399))
    assert NodeDown("n2", 5) not in _reports(system, monitor)
    system.tell(membership, Tick(400))
    assert _reports(system, monitor).count(NodeDown("n2", 5)) == 1


def test_a_dead_incarnation_that_speaks_is_fenced(system: Any) -> None:
    membership, _ = _leader(system)
    system.ask(membership, Heartbeat("n2", 5, Capacity()), ASK_S)
    system.tell(membership, Tick(400))
    assert system.ask(membership, Heartbeat("n2", 5, Capacity()), ASK_S) == Fenced("n2", 5)


def test_a_restarted_node_rejoins_as_a_new_incarnation(system: Any) -> None:
    membership, monitor = _leader(system)
    system.ask(membership, Heartbeat("n2", 5, Capacity()), ASK_S)
    system.tell(membership, Tick(400))
    assert system.ask(membership, Heartbeat("n2", 6, Capacity()), ASK_S) == HeartbeatAck("n2", 6)
    assert _reports(system, monitor)[-1] == NodeUp("n2", 6, Capacity())


def test_the_members_query_lists_each_node_with_its_state(system: Any) -> None:
    membership, _ = _leader(system)
    system.ask(membership, Heartbeat("n2", 5, Capacity()), ASK_S)
    system.tell(membership, Tick(400))
    members = system.ask(membership, MembersQuery(), ASK_S)
    assert isinstance(members, Members)
    assert {r.name: r.state for r in members.records}["n2"] is NodeState.DEAD


def test_the_next_host_goes_to_the_least_loaded_live_node(system: Any) -> None:
    membership, _ = _leader(system)
    system.ask(membership, Heartbeat("n2", 5, Capacity()), ASK_S)
    choice = system.ask(membership, WhichNode({"leader": 2, "n2": 1}), ASK_S)
    assert choice == NodeChoice("n2")


def test_a_member_joining_the_convention_is_recorded_in_the_members_file(
    system: Any, tmp_path: Path
) -> None:
    members_file = tmp_path / "members.json"
    membership, _ = _leader(system, members_file)
    capabilities = {
        NODE_CAPABILITY: "leader",  # fits this one system, so that its heartbeat actor starts
        INCARNATION_CAPABILITY: 1,
        ADMIN_CAPABILITY: "127.0.0.2:1900",
    }
    system.tell(membership, ActorSystemConventionUpdate("remote", capabilities, True))
    system.ask(membership, MembersQuery(), ASK_S)
    assert read_members(members_file) == {"leader": "127.0.0.2:1900"}


def test_a_heartbeat_actor_beats_to_its_leader(system: Any) -> None:
    leader = system.createActor(Recorder)
    beater = system.createActor(HeartbeatActor, targetActorRequirements=node_requirements("leader"))
    system.tell(beater, StartHeartbeat("leader", 1, Capacity(), leader, 60_000))
    assert system.ask(leader, "get", ASK_S) == [Heartbeat("leader", 1, Capacity())]


def test_a_fenced_heartbeat_actor_never_beats_again(system: Any) -> None:
    leader = system.createActor(Recorder)
    beater = system.createActor(HeartbeatActor)
    system.tell(beater, Fenced("leader", 1))
    system.tell(beater, StartHeartbeat("leader", 1, Capacity(), leader, 60_000))
    assert system.ask(leader, "get", ASK_S) == []


def test_requirements_fit_only_the_named_node() -> None:
    capabilities = {NODE_CAPABILITY: "n2", INCARNATION_CAPABILITY: 7}
    assert fits(capabilities, node_requirements("n2", 7))
    assert not fits(capabilities, node_requirements("n3"))
    assert not fits(capabilities, node_requirements("n2", 6))
    assert fits(capabilities, None)


def test_the_members_file_reads_back_what_was_written(tmp_path: Path) -> None:
    path = tmp_path / "members.json"
    write_members(path, {"n2": "127.0.0.2:1900", "n3": "127.0.0.3:1900"})
    assert read_members(path) == {"n2": "127.0.0.2:1900", "n3": "127.0.0.3:1900"}


def test_no_members_file_means_no_members(tmp_path: Path) -> None:
    assert read_members(tmp_path / "members.json") == {}


def test_a_members_file_that_is_not_a_mapping_is_a_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "members.json"
    path.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(StorageError, match=r"members\.json"):
        read_members(path)


def test_the_leader_invites_every_recorded_member_when_it_starts(
    system: Any, tmp_path: Path
) -> None:
    members_file = tmp_path / "members.json"
    write_members(members_file, {"n2": "127.0.0.2:1900", "n3": "127.0.0.3:1900"})
    with capture_logs() as logs:
        membership, _ = _leader(system, members_file)
        system.ask(membership, MembersQuery(), ASK_S)
    invited = {e["node"]: e["admin"] for e in logs if e["event"] == "member_invited"}
    assert invited == {"n2": "127.0.0.2:1900", "n3": "127.0.0.3:1900"}


def test_a_repeated_start_reports_to_the_new_monitor_and_keeps_the_table(system: Any) -> None:
    membership, old_monitor = _leader(system)
    system.ask(membership, Heartbeat("n2", 5, Capacity()), ASK_S)
    new_monitor = system.createActor(Recorder)
    again = StartMembership(
        DETECTOR, "leader", 1, Capacity(), new_monitor, None, virtual=True, now_ms=0
    )
    system.tell(membership, again)
    system.tell(membership, Tick(400))
    assert NodeDown("n2", 5) in _reports(system, new_monitor)
    assert NodeDown("n2", 5) not in _reports(system, old_monitor)


def test_a_repeated_start_tells_the_new_monitor_every_live_node(system: Any) -> None:
    membership, _ = _leader(system)
    offer = Capacity(weight=2, archivists=False)
    system.ask(membership, Heartbeat("n2", 5, offer), ASK_S)
    new_monitor = system.createActor(Recorder)
    again = StartMembership(
        DETECTOR, "leader", 1, Capacity(), new_monitor, None, virtual=True, now_ms=0
    )
    system.tell(membership, again)
    assert NodeUp("n2", 5, offer) in _reports(system, new_monitor)


def test_a_member_heartbeat_actor_stops_its_node_after_beats_without_answer(
    system: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No HeartbeatAck for ``give_up_after`` beats in a row: the member daemon (here this
    process, named in the environment) is sent FENCE_SIGNAL and no more beats leave."""
    stops: list[int] = []
    monkeypatch.setenv(FENCE_SIGNAL_ENV, str(os.getpid()))
    previous = signal.signal(FENCE_SIGNAL, lambda signum, frame: stops.append(signum))
    try:
        leader = system.createActor(Recorder)
        beater = system.createActor(HeartbeatActor)
        system.tell(beater, StartHeartbeat("m1", 1, Capacity(), leader, 60_000, 2))
        for _ in range(3):  # the first start's wakeups (payload 1), as the interval elapses
            system.tell(beater, WakeupMessage(60, payload=1))
        assert system.ask(leader, "get", ASK_S) == [Heartbeat("m1", 1, Capacity())] * 2
        assert stops == [FENCE_SIGNAL]
    finally:
        signal.signal(FENCE_SIGNAL, previous)


def test_a_heartbeat_answered_keeps_the_member_running(
    system: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    stops: list[int] = []
    monkeypatch.setenv(FENCE_SIGNAL_ENV, str(os.getpid()))
    previous = signal.signal(FENCE_SIGNAL, lambda signum, frame: stops.append(signum))
    try:
        leader = system.createActor(Recorder)
        beater = system.createActor(HeartbeatActor)
        system.tell(beater, StartHeartbeat("m1", 1, Capacity(), leader, 60_000, 2))
        for _ in range(3):
            system.tell(beater, HeartbeatAck("m1", 1))
            system.tell(beater, WakeupMessage(60, payload=1))
        assert system.ask(leader, "get", ASK_S) == [Heartbeat("m1", 1, Capacity())] * 4
        assert stops == []
    finally:
        signal.signal(FENCE_SIGNAL, previous)
