"""A private room's agent requests go to every advisor of the room, without the queue
(embedded gateway, virtual clock): the longest-idle advisor that is READY with a free slot
gets the offer; a request none can take waits for the first that can, and ends in
NO_AGENT_AVAILABLE (the bot PRIMARY again) when none takes it in the request's time to live;
a conversation journaled with one advisor keeps it."""

from __future__ import annotations

from typing import Any

from domain.commands import StartSession
from domain.conversation import ConversationMachine
from domain.enums import Channel
from domain.policy import Policy
from infra.journal_records import open_record, parse_open
from runtime.gateway import Gateway
from tests.conftest import MakeGateway

OFFERS = {
    "routing": {"auto_accept": False, "accept_timeout_seconds": 20, "request_ttl_seconds": 50}
}


def private_room(gw: Gateway, *advisors: str, customer_id: str = "cust-1") -> str:
    return str(gw.create_room("PRIVATE", list(advisors), customer_id=customer_id)["room_id"])


def named(gw: Gateway, conversation_id: str, name: str) -> list[dict[str, Any]]:
    return [e["data"] for e in gw.events(conversation_id) if e["name"] == name]


def offered_to(gw: Gateway, conversation_id: str) -> list[str]:
    return [d["agent_id"] for d in named(gw, conversation_id, "AGENT_OFFERED")]


def login(gw: Gateway, *agent_ids: str, ready: bool = True, slots: int = 3) -> None:
    for agent_id in agent_ids:
        gw.agent_login(agent_id, max_conversations=slots)
        if ready:
            gw.agent_ready(agent_id)


def test_a_private_rooms_request_is_offered_to_the_advisor_who_is_ready(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway(**OFFERS) as gw:
        login(gw, "ann", ready=False)  # the first advisor, logged in but NOT_READY
        login(gw, "bob", "queue-agent")
        room = private_room(gw, "ann", "bob")
        cid = gw.start_session("cust-1", "WEB", "v", room_id=room).conversation_id
        gw.request_agent(cid)
        assert offered_to(gw, cid) == ["bob"]
        assert named(gw, cid, "AGENT_REQUESTED")[0]["to_agent_ids"] == ["ann", "bob"]


def test_the_longest_idle_ready_advisor_gets_the_request(make_gateway: MakeGateway) -> None:
    with make_gateway(**OFFERS) as gw:
        login(gw, "ann", "bob")
        room = private_room(gw, "ann", "bob", customer_id="cust-1")
        other = private_room(gw, "ann", "bob", customer_id="cust-2")
        gw.advance(1)  # ann, offered the first, has been idle for less time than bob
        first = gw.start_session("cust-1", "WEB", "v1", room_id=room).conversation_id
        gw.request_agent(first)
        second = gw.start_session("cust-2", "WEB", "v2", room_id=other).conversation_id
        gw.request_agent(second)
        assert (offered_to(gw, first), offered_to(gw, second)) == (["ann"], ["bob"])


def test_a_request_both_busy_advisors_cannot_take_goes_to_the_first_that_frees(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway(**OFFERS) as gw:
        login(gw, "ann", "bob", slots=1)
        login(gw, "queue-agent")
        for agent_id, visitor in (("ann", "va"), ("bob", "vb")):  # one slot each, both used
            busy = gw.start_session(f"cust-{agent_id}", "WEB", visitor).conversation_id
            gw.agent_join(agent_id, busy)
        room = private_room(gw, "ann", "bob")
        cid = gw.start_session("cust-1", "WEB", "v", room_id=room).conversation_id
        gw.request_agent(cid)
        assert offered_to(gw, cid) == []  # waiting for an advisor, not for the queue
        bobs = next(c["conversation_id"] for c in gw.agent_conversations("bob"))
        gw.agent_leave("bob", bobs)
        assert offered_to(gw, cid) == ["bob"]


def test_an_advisor_who_lets_the_offer_ring_out_leaves_it_to_another(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway(**OFFERS) as gw:
        login(gw, "ann")
        gw.advance(1)
        login(gw, "bob")  # READY later: ann has waited longer and is offered first
        room = private_room(gw, "ann", "bob")
        cid = gw.start_session("cust-1", "WEB", "v", room_id=room).conversation_id
        gw.request_agent(cid)
        gw.advance(21)  # past the accept timeout: RONA, ann NOT_READY
        assert offered_to(gw, cid) == ["ann", "bob"]
        assert [d["agent_id"] for d in named(gw, cid, "RONA")] == ["ann"]


def test_a_request_no_advisor_takes_ends_with_no_agent_available(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway(**OFFERS) as gw:
        login(gw, "ann", "bob", ready=False)
        login(gw, "queue-agent")
        room = private_room(gw, "ann", "bob")
        cid = gw.start_session("cust-1", "WEB", "v", room_id=room).conversation_id
        gw.request_agent(cid)
        gw.advance(51)  # past the request's time to live
        assert offered_to(gw, cid) == []
        assert len(named(gw, cid, "NO_AGENT_AVAILABLE")) == 1
        roles = {p["id"]: p["role"] for p in gw.conversation(cid)["participants"]}
        assert roles["bot"] == "PRIMARY"


def test_a_policy_journaled_with_one_advisor_reads_back_as_that_advisor_alone() -> None:
    first = StartSession("cs-1", Channel.WEB, "v")
    machine, _ = ConversationMachine.open(
        conversation_id="conv-1",
        room_id="room-p",
        customer_id="cust-1",
        first=first,
        policy=Policy(),
        now=1_000,
    )
    record = open_record(machine, first, 1_000)
    policy = dict(record["policy"])
    del policy["advisors"]
    policy["advisor"] = "ann"  # how a conversation of a private room was journaled before
    assert parse_open({**record, "policy": policy}).policy.advisors == ("ann",)
