"""Placement: which host a conversation goes to, and when a host starts or stops."""

from __future__ import annotations

from actors.placement import Placement
from domain.membership import Capacity
from runtime import testing
from tests.conftest import MakeGateway


class Hosts:
    """Stands in for the TopicMonitor's actor calls: what was started and stopped."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.nodes: list[str | None] = []
        self.stopped: list[str] = []

    def start(self, host_id: str, node: str | None = None) -> str:
        self.started.append(host_id)
        self.nodes.append(node)
        return f"address-of-{host_id}"

    def stop(self, address: str) -> None:
        self.stopped.append(address)


def test_a_conversation_goes_to_a_host_with_room() -> None:
    hosts = Hosts()
    placement = Placement(hosts.start, hosts.stop)
    first, second = placement.new_host(), placement.new_host()
    first.conversations = 2
    assert placement.place(per_host=2) is second
    assert (first.conversations, second.conversations) == (2, 1)


def test_a_new_host_starts_when_every_host_is_full() -> None:
    hosts = Hosts()
    placement = Placement(hosts.start, hosts.stop)
    placement.place(per_host=1)
    placement.place(per_host=1)
    assert len(hosts.started) == 2 and len(placement.hosts) == 2


def test_an_empty_host_beyond_the_minimum_is_stopped() -> None:
    hosts = Hosts()
    placement = Placement(hosts.start, hosts.stop)
    kept, extra = placement.place(per_host=1), placement.place(per_host=1)
    placement.release(extra, keep=1)
    placement.release(kept, keep=1)
    assert hosts.stopped == [extra.address]
    assert list(placement.hosts) == [kept.host_id]


def test_a_lost_host_is_placed_on_no_more() -> None:
    hosts = Hosts()
    placement = Placement(hosts.start, hosts.stop)
    lost = placement.place(per_host=5)
    assert placement.lost(lost.address) is lost
    assert placement.lost("elsewhere") is None
    assert placement.place(per_host=5) is not lost


def test_conversations_alternate_between_two_started_hosts() -> None:
    hosts = Hosts()
    placement = Placement(hosts.start, hosts.stop)
    first, second = placement.new_host(), placement.new_host()
    placed = [placement.place(per_host=10000) for _ in range(4)]
    assert placed == [first, second, first, second]


def test_a_conversation_goes_to_the_least_loaded_host_not_the_first_with_room() -> None:
    hosts = Hosts()
    placement = Placement(hosts.start, hosts.stop)
    first, second = placement.new_host(), placement.new_host()
    first.conversations, second.conversations = 3, 1
    assert placement.place(per_host=10) is second


def test_no_host_starts_while_one_has_room() -> None:
    hosts = Hosts()
    placement = Placement(hosts.start, hosts.stop)
    placement.new_host()
    placement.new_host()
    for _ in range(4):
        placement.place(per_host=2)
    assert len(hosts.started) == 2
    placement.place(per_host=2)
    assert len(hosts.started) == 3


def test_an_engine_with_two_hosts_puts_consecutive_conversations_on_both(
    make_gateway: MakeGateway,
) -> None:
    gw = make_gateway(placement={"hosts": 2})
    refs = [gw.start_session(f"cust-{i}", "WEB", f"browser-{i}") for i in range(4)]
    hosts = [str(testing.host_of(gw, ref.conversation_id)) for ref in refs]
    assert hosts[0] != hosts[1]
    assert (hosts[2], hosts[3]) == (hosts[0], hosts[1])


def test_hosts_start_on_this_node_while_no_node_is_known() -> None:
    hosts = Hosts()
    placement = Placement(hosts.start, hosts.stop)
    placement.place(per_host=1)
    assert hosts.nodes == [None]


def test_a_new_host_goes_to_the_live_node_with_the_fewest_hosts_per_weight() -> None:
    hosts = Hosts()
    placement = Placement(hosts.start, hosts.stop)
    placement.node_up("n1", Capacity(weight=1))
    placement.node_up("n2", Capacity(weight=2))
    placement.node_up("n3", Capacity(hosts=False))  # offers no hosts
    for _ in range(6):
        placement.place(per_host=1)
    assert sorted(hosts.nodes) == ["n1", "n1", "n2", "n2", "n2", "n2"]


def test_a_dead_nodes_hosts_are_named_and_it_takes_no_new_host() -> None:
    hosts = Hosts()
    placement = Placement(hosts.start, hosts.stop)
    placement.node_up("n1", Capacity())
    placement.node_up("n2", Capacity())
    on_n1, on_n2 = placement.place(per_host=1), placement.place(per_host=1)
    assert (on_n1.node, on_n2.node) == ("n1", "n2")
    assert placement.node_down("n2") == [on_n2]
    assert placement.place(per_host=1).node == "n1"


def test_conversations_placed_at_once_are_dealt_over_width_hosts() -> None:
    hosts = Hosts()
    placement = Placement(hosts.start, hosts.stop)
    full = placement.new_host()
    full.conversations = 10
    placed = placement.place_many(6, per_host=10, width=3)
    dealt = {h.host_id for h in placed}
    assert len(dealt) == 3 and full.host_id not in dealt
    assert sorted(h.conversations for h in placement if h is not full) == [2, 2, 2]


def test_conversations_placed_at_once_go_to_hosts_with_room_before_new_ones() -> None:
    hosts = Hosts()
    placement = Placement(hosts.start, hosts.stop)
    roomy = placement.new_host()
    placed = placement.place_many(4, per_host=10, width=2)
    assert len(hosts.started) == 2  # the roomy one, then one more for the deal
    assert placed.count(roomy) == 2


def test_conversations_placed_at_once_start_no_more_hosts_than_conversations() -> None:
    hosts = Hosts()
    placement = Placement(hosts.start, hosts.stop)
    placement.place_many(1, per_host=10, width=4)
    assert len(hosts.started) == 1


def test_conversations_placed_at_once_overflow_to_a_new_host_when_the_dealt_ones_fill() -> None:
    hosts = Hosts()
    placement = Placement(hosts.start, hosts.stop)
    placed = placement.place_many(5, per_host=2, width=2)
    assert len(hosts.started) == 3
    assert all(h.conversations <= 2 for h in placement)
    assert len(placed) == 5
