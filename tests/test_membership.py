"""The pure membership table and failure detector: joins, heartbeats, suspicion after N missed
intervals, death after M, fencing of a dead incarnation and rejoin with a new one."""

from __future__ import annotations

import pytest

from domain.membership import (
    MOVES,
    Change,
    ChangeKind,
    DetectorSettings,
    Membership,
    MembershipError,
    NodeState,
    Signal,
    choose_node,
    move_for,
)

SETTINGS = DetectorSettings(interval=1.0, suspect_after=2, dead_after=4)


def table() -> Membership:
    return Membership(SETTINGS)


def test_join_reports_node_up_and_makes_it_alive() -> None:
    m = table()
    assert m.join("n1", 7, now=0.0) == [Change(ChangeKind.NODE_UP, "n1", 7)]
    member = m.get("n1")
    assert member is not None and member.state is NodeState.ALIVE
    assert m.reachable("n1")


def test_join_keeps_advertised_capabilities() -> None:
    m = table()
    m.join("n1", 1, now=0.0, capabilities={"cx.hosts": True, "cx.weight": 2})
    member = m.get("n1")
    assert member is not None and member.capabilities == {"cx.hosts": True, "cx.weight": 2}


def test_node_is_suspected_after_suspect_after_missed_intervals() -> None:
    m = table()
    m.join("n1", 1, now=0.0)
    assert m.tick(1.9) == []
    assert m.tick(2.0) == [Change(ChangeKind.NODE_SUSPECTED, "n1", 1)]
    assert not m.reachable("n1")


def test_suspicion_is_reported_once() -> None:
    m = table()
    m.join("n1", 1, now=0.0)
    m.tick(2.0)
    assert m.tick(3.0) == []


def test_node_is_declared_dead_after_dead_after_missed_intervals() -> None:
    m = table()
    m.join("n1", 1, now=0.0)
    m.tick(2.0)
    assert m.tick(4.0) == [Change(ChangeKind.NODE_DOWN, "n1", 1)]
    member = m.get("n1")
    assert member is not None and member.state is NodeState.DEAD
    assert m.tick(10.0) == []


def test_alive_node_silent_past_dead_after_goes_straight_to_dead() -> None:
    m = table()
    m.join("n1", 1, now=0.0)
    assert m.tick(5.0) == [Change(ChangeKind.NODE_DOWN, "n1", 1)]


def test_heartbeats_keep_a_node_alive() -> None:
    m = table()
    m.join("n1", 1, now=0.0)
    for t in range(1, 20):
        assert m.heartbeat("n1", 1, now=float(t)) == []
        assert m.tick(t + 1.5) == []
    assert m.reachable("n1")


def test_heartbeat_from_suspect_node_recovers_it() -> None:
    m = table()
    m.join("n1", 1, now=0.0)
    m.tick(2.5)
    assert m.heartbeat("n1", 1, now=3.0) == [Change(ChangeKind.NODE_RECOVERED, "n1", 1)]
    assert m.reachable("n1")
    assert m.tick(4.5) == []


def test_dead_incarnation_is_fenced_and_its_heartbeats_change_nothing() -> None:
    m = table()
    m.join("n1", 1, now=0.0)
    m.tick(4.0)
    assert m.fenced("n1", 1)
    assert m.heartbeat("n1", 1, now=5.0) == []
    assert m.join("n1", 1, now=5.0) == []
    member = m.get("n1")
    assert member is not None and member.state is NodeState.DEAD


def test_dead_node_rejoins_with_a_new_incarnation_and_old_one_stays_fenced() -> None:
    m = table()
    m.join("n1", 1, now=0.0)
    m.tick(4.0)
    assert m.join("n1", 2, now=6.0) == [Change(ChangeKind.NODE_UP, "n1", 2)]
    assert m.reachable("n1")
    assert m.fenced("n1", 1)
    assert not m.fenced("n1", 2)
    assert m.heartbeat("n1", 1, now=7.0) == []


def test_restart_faster_than_detector_declares_old_incarnation_dead() -> None:
    m = table()
    m.join("n1", 1, now=0.0)
    assert m.join("n1", 2, now=0.5) == [
        Change(ChangeKind.NODE_DOWN, "n1", 1),
        Change(ChangeKind.NODE_UP, "n1", 2),
    ]
    assert m.fenced("n1", 1)


def test_stale_join_from_older_incarnation_changes_nothing() -> None:
    m = table()
    m.join("n1", 5, now=0.0)
    assert m.join("n1", 4, now=1.0) == []
    member = m.get("n1")
    assert member is not None and member.incarnation == 5


def test_heartbeat_from_unknown_node_changes_nothing() -> None:
    m = table()
    assert m.heartbeat("ghost", 1, now=0.0) == []
    assert m.get("ghost") is None
    assert not m.reachable("ghost")


def test_unknown_node_is_neither_reachable_nor_fenced() -> None:
    m = table()
    assert not m.reachable("n9")
    assert not m.fenced("n9", 1)


def test_repeated_join_of_same_incarnation_counts_as_heartbeat() -> None:
    m = table()
    m.join("n1", 1, now=0.0)
    m.tick(2.0)
    assert m.join("n1", 1, now=2.5) == [Change(ChangeKind.NODE_RECOVERED, "n1", 1)]


def test_alive_lists_only_alive_members_by_name() -> None:
    m = table()
    m.join("b", 1, now=0.0)
    m.join("a", 1, now=0.0)
    m.join("c", 1, now=1.5)
    m.tick(2.5)
    assert [x.name for x in m.alive()] == ["c"]
    assert [x.name for x in m] == ["a", "b", "c"]


def test_each_node_is_detected_on_its_own() -> None:
    m = table()
    m.join("n1", 1, now=0.0)
    m.join("n2", 1, now=0.0)
    m.heartbeat("n2", 1, now=3.0)
    assert m.tick(4.0) == [Change(ChangeKind.NODE_DOWN, "n1", 1)]
    assert m.reachable("n2")


def test_heartbeat_older_than_last_heard_does_not_move_time_back() -> None:
    m = table()
    m.join("n1", 1, now=3.0)
    m.heartbeat("n1", 1, now=1.0)
    assert m.tick(4.5) == []


def test_dead_has_no_way_out_in_the_table() -> None:
    assert all(source is not NodeState.DEAD for source, _ in MOVES)
    assert move_for(NodeState.DEAD, Signal.HEARD) is NodeState.DEAD


@pytest.mark.parametrize(
    ("interval", "suspect_after", "dead_after", "named"),
    [
        (0.0, 2, 4, "interval"),
        (-1.0, 2, 4, "interval"),
        (1.0, 0, 4, "suspect_after"),
        (1.0, 3, 3, "dead_after"),
    ],
)
def test_bad_detector_settings_are_refused_by_name(
    interval: float, suspect_after: int, dead_after: int, named: str
) -> None:
    with pytest.raises(MembershipError, match=named):
        DetectorSettings(interval, suspect_after, dead_after)


@pytest.mark.parametrize(("name", "incarnation"), [("", 1), ("n1", -1), ("n1", True)])
def test_bad_node_message_is_refused_and_changes_nothing(name: str, incarnation: int) -> None:
    m = table()
    with pytest.raises(MembershipError):
        m.join(name, incarnation, now=0.0)
    assert list(m) == []


def choose(m: Membership, load: dict[str, int]) -> str | None:
    return choose_node(m, load, hosts_key="hosts", weight_key="weight")


def test_choose_node_picks_the_least_loaded_alive_node() -> None:
    m = table()
    for name in ("a", "b", "c"):
        m.join(name, 1, now=0.0)
    assert choose(m, {"a": 3, "b": 1, "c": 2}) == "b"


def test_choose_node_divides_load_by_weight() -> None:
    m = table()
    m.join("a", 1, now=0.0, capabilities={"weight": 1})
    m.join("b", 1, now=0.0, capabilities={"weight": 4})
    assert choose(m, {"a": 1, "b": 3}) == "b"


def test_choose_node_skips_suspect_dead_and_non_hosting_nodes() -> None:
    m = table()
    m.join("a", 1, now=0.0)
    m.join("b", 1, now=0.0, capabilities={"hosts": False})
    m.join("c", 1, now=2.0)
    m.tick(2.5)
    assert choose(m, {"c": 100}) == "c"


def test_choose_node_without_candidates_is_none() -> None:
    assert choose(table(), {}) is None


def test_choose_node_breaks_ties_by_name() -> None:
    m = table()
    m.join("b", 1, now=0.0)
    m.join("a", 1, now=0.0)
    assert choose(m, {}) == "a"
