"""Placement: which host a conversation goes to, and when a host starts or stops."""

from __future__ import annotations

from actors.placement import Placement


class Hosts:
    """Stands in for the TopicMonitor's actor calls: what was started and stopped."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.stopped: list[str] = []

    def start(self, host_id: str) -> str:
        self.started.append(host_id)
        return f"address-of-{host_id}"

    def stop(self, address: str) -> None:
        self.stopped.append(address)


def test_a_conversation_goes_to_the_first_host_with_room() -> None:
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
