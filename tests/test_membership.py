"""The membership table and failure detector: joins, suspicion after N missed heartbeats, death
after M, fencing of a dead incarnation, rejoin as a new incarnation, least-loaded choice."""

from __future__ import annotations

import pytest

from domain.membership import (
    TRANSITIONS,
    Capacity,
    Change,
    Detector,
    Membership,
    MembershipError,
    NodeChange,
    NodeState,
    Observation,
    choose_host_node,
    empty,
    heard,
    reachable,
    tick,
)

DETECTOR = Detector(interval_ms=100, suspect_after=2, dead_after=5)
HOSTS = Capacity()


def _joined(*nodes: str, now: int = 0) -> Membership:
    table = empty(DETECTOR, now)
    for node in nodes:
        table, _ = heard(table, node, 1, HOSTS, now)
    return table


def test_every_state_has_a_row_for_every_observation() -> None:
    assert set(TRANSITIONS) == {(s, o) for s in NodeState for o in Observation}


def test_a_first_heartbeat_joins_the_node_alive() -> None:
    table, reports = heard(empty(DETECTOR, 0), "n1", 7, HOSTS, 0)
    assert reports == (NodeChange(Change.UP, "n1", 7),)
    assert table.members["n1"].state is NodeState.ALIVE
    assert reachable(table, "n1")


def test_a_node_heard_in_time_stays_alive_without_reports() -> None:
    table = _joined("n1")
    table, reports = heard(table, "n1", 1, HOSTS, 150)
    table, more = tick(table, 300)
    assert reports + more == ()
    assert table.members["n1"].state is NodeState.ALIVE


def test_a_node_is_suspected_after_suspect_after_missed_heartbeats() -> None:
    table, early = tick(_joined("n1"), 199)
    table, reports = tick(table, 200)
    assert early == ()
    assert reports == (NodeChange(Change.SUSPECTED, "n1", 1),)
    assert not reachable(table, "n1")


def test_a_suspected_node_is_reported_once() -> None:
    table, _ = tick(_joined("n1"), 200)
    _, reports = tick(table, 300)
    assert reports == ()


def test_a_suspected_node_heard_again_is_trusted() -> None:
    table, _ = tick(_joined("n1"), 250)
    table, reports = heard(table, "n1", 1, HOSTS, 260)
    assert reports == (NodeChange(Change.TRUSTED, "n1", 1),)
    assert reachable(table, "n1")


def test_a_node_is_declared_dead_after_dead_after_missed_heartbeats() -> None:
    table, _ = tick(_joined("n1"), 200)
    table, early = tick(table, 499)
    table, reports = tick(table, 500)
    assert early == ()
    assert reports == (NodeChange(Change.DOWN, "n1", 1),)
    assert table.members["n1"].state is NodeState.DEAD


def test_a_node_silent_past_dead_after_at_one_tick_goes_straight_to_dead() -> None:
    _, reports = tick(_joined("n1"), 10_000)
    assert reports == (NodeChange(Change.DOWN, "n1", 1),)


def test_a_dead_node_is_reported_down_once() -> None:
    table, _ = tick(_joined("n1"), 500)
    _, reports = tick(table, 900)
    assert reports == ()


def test_a_heartbeat_of_a_dead_incarnation_is_fenced_and_changes_nothing() -> None:
    table, _ = tick(_joined("n1"), 500)
    after, reports = heard(table, "n1", 1, HOSTS, 600)
    assert reports == (NodeChange(Change.FENCED, "n1", 1),)
    assert after.members == table.members
    assert not reachable(after, "n1")


def test_a_dead_node_restarted_rejoins_as_a_new_incarnation() -> None:
    table, _ = tick(_joined("n1"), 500)
    table, reports = heard(table, "n1", 2, HOSTS, 600)
    assert reports == (NodeChange(Change.UP, "n1", 2),)
    assert table.members["n1"].incarnation == 2
    assert reachable(table, "n1")


def test_the_old_incarnation_stays_fenced_after_the_rejoin() -> None:
    table, _ = tick(_joined("n1"), 500)
    table, _ = heard(table, "n1", 2, HOSTS, 600)
    after, reports = heard(table, "n1", 1, HOSTS, 650)
    assert reports == (NodeChange(Change.FENCED, "n1", 1),)
    assert after.members == table.members


def test_a_restart_before_detection_reports_the_old_incarnation_down_then_the_new_up() -> None:
    table, reports = heard(_joined("n1"), "n1", 2, HOSTS, 50)
    assert reports == (NodeChange(Change.DOWN, "n1", 1), NodeChange(Change.UP, "n1", 2))
    assert table.members["n1"].state is NodeState.ALIVE


def test_one_silent_node_does_not_affect_another() -> None:
    table = _joined("n1", "n2")
    table, _ = heard(table, "n2", 1, HOSTS, 400)
    table, reports = tick(table, 500)
    assert reports == (NodeChange(Change.DOWN, "n1", 1),)
    assert reachable(table, "n2")


def test_an_unknown_node_is_not_reachable() -> None:
    assert not reachable(_joined("n1"), "n9")


def test_time_going_back_is_refused() -> None:
    table = _joined("n1", now=100)
    with pytest.raises(MembershipError, match="time went back"):
        tick(table, 99)


def test_a_heartbeat_without_a_name_is_refused() -> None:
    with pytest.raises(MembershipError, match="node name"):
        heard(empty(DETECTOR, 0), " ", 1, HOSTS, 0)


def test_a_negative_incarnation_is_refused() -> None:
    with pytest.raises(MembershipError, match="incarnation"):
        heard(empty(DETECTOR, 0), "n1", -1, HOSTS, 0)


def test_a_weight_below_one_is_refused() -> None:
    with pytest.raises(MembershipError, match="weight"):
        heard(empty(DETECTOR, 0), "n1", 1, Capacity(weight=0), 0)


@pytest.mark.parametrize(("suspect", "dead"), [(0, 3), (3, 3), (4, 2)])
def test_a_detector_needs_suspicion_before_death(suspect: int, dead: int) -> None:
    with pytest.raises(MembershipError, match="suspect_after"):
        Detector(interval_ms=100, suspect_after=suspect, dead_after=dead)


def test_a_detector_needs_a_positive_interval() -> None:
    with pytest.raises(MembershipError, match="interval_ms"):
        Detector(interval_ms=0, suspect_after=1, dead_after=2)


def test_the_least_loaded_live_node_gets_the_next_host() -> None:
    table = _joined("n1", "n2", "n3")
    assert choose_host_node(table, {"n1": 3, "n2": 1, "n3": 2}) == "n2"


def test_placement_weighs_hosts_by_capacity() -> None:
    table = _joined("n1")
    table, _ = heard(table, "n2", 1, Capacity(weight=4), 0)
    assert choose_host_node(table, {"n1": 1, "n2": 3}) == "n2"


def test_placement_skips_nodes_that_offer_no_hosts() -> None:
    table = _joined("n1")
    table, _ = heard(table, "n2", 1, Capacity(hosts=False), 0)
    assert choose_host_node(table, {"n1": 5}) == "n1"


def test_placement_skips_suspected_and_dead_nodes() -> None:
    table = _joined("n1", "n2")
    table, _ = heard(table, "n2", 1, HOSTS, 300)
    table, _ = tick(table, 300)
    assert table.members["n1"].state is NodeState.SUSPECT
    assert choose_host_node(table, {"n2": 9}) == "n2"


def test_placement_has_no_node_when_none_is_live() -> None:
    table, _ = tick(_joined("n1"), 500)
    assert choose_host_node(table, {}) is None
