"""Room get-or-create partitioned over ``placement.room_desks`` desks: every room of a customer
is decided by the one desk its customer id hashes to, so one live conversation per room holds
with any number of desks; the TopicMonitor keeps the registry that a drain, a host's death and
a desk's own death need."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from thespian.actors import ActorExitRequest

from actors.room_desk_actor import RoomDeskActor
from actors.topic_monitor import TopicMonitor
from domain.routing import partition_of
from runtime import testing
from runtime.gateway import Gateway, UnavailableError
from tests.conftest import MakeGateway
from tests.multiproc_support import eventually, running_system, write_config

DeskGateway = Callable[..., Gateway]


@pytest.fixture(params=[2, 3], ids=lambda n: f"{n}-desks")
def desk_gateway(request: pytest.FixtureRequest, make_gateway: MakeGateway) -> DeskGateway:
    """An embedded engine with 2 or 3 room desks."""

    def make(**overrides: Any) -> Gateway:
        placement = {"room_desks": request.param, **overrides.pop("placement", {})}
        return make_gateway(placement=placement, **overrides)

    return make


def monitor(gw: Gateway) -> TopicMonitor:
    return testing.actor(gw, testing.addresses(gw).monitor)  # type: ignore[no-any-return]


def desks(gw: Gateway) -> list[RoomDeskActor]:
    return [testing.actor(gw, d) for d in monitor(gw).wired().desks]


def customers_on_every_desk(gw: Gateway) -> list[str]:
    """One customer id per desk, desk 0's first."""
    count = len(monitor(gw).wired().desks)
    found: dict[int, str] = {}
    for n in range(100):
        found.setdefault(partition_of(f"cust-{n}", count), f"cust-{n}")
    return [found[i] for i in range(count)]


def test_the_monitor_starts_the_configured_desks_and_gateways_learn_them(
    desk_gateway: DeskGateway,
) -> None:
    gw = desk_gateway()
    started = monitor(gw).wired().desks
    assert len({str(d) for d in started}) >= 2
    assert testing.addresses(gw).desks == started


def test_one_desk_is_the_monitor_alone(make_gateway: MakeGateway) -> None:
    gw = make_gateway()
    assert monitor(gw).wired().desks == ()
    assert gw.start_session("cust-1", "WEB", "v").conversation_id in monitor(gw).live


def test_two_first_messages_of_one_customer_open_one_conversation(
    desk_gateway: DeskGateway,
) -> None:
    gw = desk_gateway()
    pipeline = gw.pipeline()
    for customer in customers_on_every_desk(gw):
        pipeline.start_session(customer, "WEB", f"{customer}-web")
        pipeline.start_session(customer, "SMS", f"{customer}-sms")
    refs = pipeline.wait()
    pairs = list(zip(refs[::2], refs[1::2], strict=True))
    assert all(a.conversation_id == b.conversation_id for a, b in pairs)
    assert len({a.conversation_id for a, _ in pairs}) == len(pairs)
    assert gw.status()["conversations"] == {"CREATED": len(pairs)}
    channels = [len(gw.conversation(a.conversation_id)["channel_sessions"]) for a, _ in pairs]
    assert channels == [2] * len(pairs)


def test_each_customer_is_decided_by_the_desk_its_id_hashes_to(
    desk_gateway: DeskGateway,
) -> None:
    gw = desk_gateway()
    refs = {f"cust-{n}": gw.start_session(f"cust-{n}", "WEB", f"v-{n}") for n in range(12)}
    tables = [set(desk.live) for desk in desks(gw)]
    count = len(tables)
    for customer, ref in refs.items():
        holders = [i for i, table in enumerate(tables) if ref.conversation_id in table]
        assert holders == [partition_of(customer, count)]
    assert all(tables)  # every desk took some
    assert set(monitor(gw).live) == {r.conversation_id for r in refs.values()}


def test_a_session_after_the_close_opens_a_new_conversation(desk_gateway: DeskGateway) -> None:
    gw = desk_gateway()
    for customer in customers_on_every_desk(gw):
        first = gw.start_session(customer, "WEB", "v")
        gw.end_session(first.channel_session_id)
        assert gw.conversation(first.conversation_id)["state"] == "CLOSED"
        again = gw.start_session(customer, "WEB", "v")
        assert again.conversation_id != first.conversation_id
        assert again.room_id == first.room_id


def test_private_rooms_and_outbound_contacts_keep_one_live_conversation_per_room(
    desk_gateway: DeskGateway,
) -> None:
    gw = desk_gateway()
    gw.agent_login("ann")
    for customer in customers_on_every_desk(gw):
        center = gw.start_session(customer, "WEB", "visitor")
        private = str(gw.create_room("PRIVATE", ["bob"], customer_id=customer)["room_id"])
        in_private = gw.start_session(customer, "WEB", "visitor", room_id=private)
        again = gw.start_session(customer, "SMS", "+1555", room_id=private)
        outbound = gw.start_outbound("ann", customer, "SMS", "+1556")
        assert in_private.conversation_id != center.conversation_id
        assert again.conversation_id == in_private.conversation_id
        assert outbound.conversation_id == center.conversation_id


def test_a_team_room_is_refused_a_customer_session_on_every_desk(
    desk_gateway: DeskGateway,
) -> None:
    gw = desk_gateway()
    team = str(gw.create_room("TEAM", ["ann", "bob"])["room_id"])
    for customer in customers_on_every_desk(gw):
        with pytest.raises(Exception, match="TEAM room"):
            gw.start_session(customer, "WEB", "v", room_id=team)
    assert gw.status()["conversations"] == {}


def test_a_drain_refuses_new_conversations_on_every_desk(desk_gateway: DeskGateway) -> None:
    gw = desk_gateway()
    customers = customers_on_every_desk(gw)
    live = {c: gw.start_session(c, "WEB", "v") for c in customers}
    gw.drain_engine()
    for customer in customers:
        with pytest.raises(UnavailableError, match="draining"):
            gw.start_session(f"{customer}-new", "WEB", "v")
        joined = gw.start_session(customer, "SMS", "+1555")  # a live room still takes sessions
        assert joined.conversation_id == live[customer].conversation_id
    assert all(desk.draining for desk in desks(gw))


def test_a_dead_hosts_conversations_are_rebuilt_and_their_desks_follow_them(
    desk_gateway: DeskGateway,
) -> None:
    gw = desk_gateway()
    refs = {c: gw.start_session(c, "WEB", "v") for c in customers_on_every_desk(gw)}
    host = testing.host_of(gw, next(iter(refs.values())).conversation_id)
    testing.system(gw).tell(host, ActorExitRequest())  # rebuilt elsewhere from its journal
    for customer, ref in refs.items():
        testing.forget_host(gw, ref.conversation_id)
        assert gw.conversation(ref.conversation_id)["state"] == "CREATED"
        joined = gw.start_session(customer, "SMS", "+1555")
        assert joined.conversation_id == ref.conversation_id
    assert gw.status()["conversations"] == {"CREATED": len(refs)}


def test_a_dead_desk_is_replaced_with_its_customers_live_conversations(
    desk_gateway: DeskGateway,
) -> None:
    gw = desk_gateway()
    customers = customers_on_every_desk(gw)
    refs = {c: gw.start_session(c, "WEB", "v") for c in customers}
    dead = monitor(gw).wired().desks[0]
    testing.system(gw).tell(dead, ActorExitRequest())
    assert monitor(gw).wired().desks[0] != dead
    for customer, ref in refs.items():
        joined = gw.start_session(customer, "SMS", "+1555")
        assert joined.conversation_id == ref.conversation_id
    assert testing.addresses(gw).desks[0] != dead  # the gateway was told (DesksMoved)
    assert gw.metrics()["restarts"]["room_desk"] == 1


def test_a_customer_is_forgotten_through_their_desk_once_nothing_is_live(
    desk_gateway: DeskGateway,
) -> None:
    gw = desk_gateway()
    for customer in customers_on_every_desk(gw):
        ref = gw.start_session(customer, "WEB", "v")
        with pytest.raises(Exception, match="live conversation"):
            gw.forget_customer(customer)
        gw.end_session(ref.channel_session_id)
        assert gw.forget_customer(customer)
        assert gw.rooms(customer_id=customer) == []


@pytest.mark.multiproc
def test_desks_in_their_own_processes_open_one_conversation_per_customer(tmp_path: Path) -> None:
    """A running system with 2 desks, a connected gateway: each customer's sessions reach one
    conversation, opened by the desk process its id hashes to; it closes and is archived."""
    config = write_config(tmp_path, placement={"room_desks": 2})
    with running_system(config), Gateway.connect(config) as gw:
        pipeline = gw.pipeline()
        customers = [f"cust-{n}" for n in range(6)]
        for customer in customers:
            pipeline.start_session(customer, "WEB", f"{customer}-web")
            pipeline.start_session(customer, "SMS", f"{customer}-sms")
        refs = pipeline.wait()
        pairs = list(zip(refs[::2], refs[1::2], strict=True))
        assert all(a.conversation_id == b.conversation_id for a, b in pairs)
        assert gw.status()["conversations"] == {"CREATED": len(customers)}
        for web, sms in pairs:
            gw.end_session(web.channel_session_id)
            gw.end_session(sms.channel_session_id)
        for web, _ in pairs:
            eventually(lambda web=web: gw.conversation(web.conversation_id)["state"] == "CLOSED")
