"""A closing conversation asks its Archivist itself (``Wiring.archivist_of``): the TopicMonitor
never carries its events, hears only the outcome, and a request that went to an Archivist
which died is asked of its successor (actors/conversation.py, actors/archivist_parent.py)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from thespian.actors import ActorExitRequest

from actors.archivist import Archivist
from actors.host import Host
from actors.messages import ArchiveOutcome, ArchiveRequest, Deliver
from actors.topic_monitor import TopicMonitor
from domain.routing import partition_of
from runtime import testing
from runtime.gateway import Gateway, SessionRef
from tests.conftest import MakeGateway

POOL = 2


def monitor(gw: Gateway) -> TopicMonitor:
    found: TopicMonitor = testing.actor(gw, testing.addresses(gw).monitor)
    return found


def hosts(gw: Gateway) -> list[Host]:
    return [testing.actor(gw, a) for a in monitor(gw).placement.addresses()]


def by_partition(gw: Gateway, count: int) -> dict[int, list[SessionRef]]:
    """``count`` conversations of archivist 0 and ``count`` of archivist 1."""
    found: dict[int, list[SessionRef]] = {0: [], 1: []}
    for n in range(200):
        ref = gw.start_session(f"cust-{n}", "WEB", f"v-{n}")
        part = found[partition_of(ref.conversation_id, POOL)]
        if len(part) < count:
            part.append(ref)
        if all(len(p) == count for p in found.values()):
            return found
    raise AssertionError("too few conversation ids hashed to one of the archivists")


@pytest.fixture
def monitor_payloads(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every payload the TopicMonitor handles, in order."""
    seen: list[Any] = []
    deliver = TopicMonitor.on_deliver

    def spy(self: TopicMonitor, item: Deliver, sender: Any) -> None:
        seen.append(item.payload)
        deliver(self, item, sender)

    monkeypatch.setattr(TopicMonitor, "on_deliver", spy)
    return seen


@pytest.fixture
def archive_requests(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How many archive requests the Archivists received, by conversation id."""
    received: Counter[str] = Counter()
    deliver = Archivist.on_deliver

    def spy(self: Archivist, item: Deliver, sender: Any) -> None:
        if isinstance(item.payload, ArchiveRequest):
            received[item.payload.record.id] += 1
        deliver(self, item, sender)

    monkeypatch.setattr(Archivist, "on_deliver", spy)
    return received


def test_a_closing_conversation_is_archived_without_the_monitor_carrying_its_events(
    make_gateway: MakeGateway, monitor_payloads: list[Any], archive_requests: Counter[str]
) -> None:
    gw = make_gateway(placement={"archivists": POOL})
    ref = gw.start_session("cust-1", "WEB", "browser-1")
    gw.customer_message(ref.channel_session_id, "hello")
    gw.end_session(ref.channel_session_id)
    assert gw.conversation(ref.conversation_id)["state"] == "CLOSED"
    assert archive_requests == {ref.conversation_id: 1}
    assert not [p for p in monitor_payloads if isinstance(p, ArchiveRequest)]
    outcomes = [p for p in monitor_payloads if isinstance(p, ArchiveOutcome)]
    assert outcomes == [ArchiveOutcome(ref.conversation_id, True)]
    assert monitor(gw).closings_archived == 1 and not monitor(gw).jobs


def test_every_conversation_host_knows_the_archivists_once_the_pool_has_started(
    make_gateway: MakeGateway,
) -> None:
    gw = make_gateway(placement={"archivists": 3, "hosts": 2})
    pool = tuple(monitor(gw).archivists)
    assert len(pool) == 3
    for host in hosts(gw):
        assert host.wired().archivists == pool


def test_a_request_lost_with_a_dead_archivist_is_asked_of_its_successor_and_archived_once(
    make_gateway: MakeGateway, archive_requests: Counter[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Archivist 0 takes its requests and dies before writing them (as if they were lost on
    the way): its conversations stay CLOSING, ask the new one, and close; archivist 1's
    conversations are asked once and written once."""
    gw = make_gateway(placement={"archivists": POOL})
    refs = by_partition(gw, 3)
    dying = monitor(gw).archivists[0]
    deliver = Archivist.on_deliver

    def loses_closings(self: Archivist, item: Deliver, sender: Any) -> None:
        if self.myAddress == dying and isinstance(item.payload, ArchiveRequest):
            archive_requests[item.payload.record.id] += 1
            return
        deliver(self, item, sender)

    monkeypatch.setattr(Archivist, "on_deliver", loses_closings)
    for ref in refs[0] + refs[1]:
        gw.end_session(ref.channel_session_id)
    for ref in refs[0]:
        assert gw.conversation(ref.conversation_id)["state"] == "CLOSING"
    testing.system(gw).tell(dying, ActorExitRequest())
    gw.drain()
    assert monitor(gw).archivists[0] != dying
    for host in hosts(gw):
        assert host.wired().archivists == tuple(monitor(gw).archivists)
    gw.advance(1)
    assert gw.status()["conversations"] == {}
    for ref in refs[0] + refs[1]:
        assert gw.conversation(ref.conversation_id)["state"] == "CLOSED"
        events = gw.events(ref.conversation_id)
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert [e["data"].get("to") for e in events].count("CLOSED") == 1
    assert all(archive_requests[r.conversation_id] == 2 for r in refs[0])
    assert all(archive_requests[r.conversation_id] == 1 for r in refs[1])
