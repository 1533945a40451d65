"""Rooms through the embedded gateway (virtual clock): a customer's private rooms beside the
contact-center room, each with its own live conversation and its advisors, who get its agent
requests without the queue; team rooms whose members write to each other, with a kept
history; listing rooms and members; bad input refused, changing nothing."""

from __future__ import annotations

import pytest

from runtime.gateway import BadArgumentError, Gateway, UnknownIdError
from tests.conftest import MakeGateway

OFFERS = {"routing": {"auto_accept": False, "accept_timeout_seconds": 20, "request_ttl_seconds": 50}}


def private_room(gw: Gateway, *advisors: str, customer_id: str = "cust-1") -> str:
    return str(gw.create_room("PRIVATE", list(advisors), customer_id=customer_id)["room_id"])


def test_two_private_rooms_of_one_customer_each_hold_their_own_live_conversation(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway() as gw:
        center = gw.start_session("cust-1", "WEB", "visitor-1")
        first, second = private_room(gw, "ann"), private_room(gw, "bob")
        in_first = gw.start_session("cust-1", "WEB", "visitor-1", room_id=first)
        in_second = gw.start_session("cust-1", "WHATSAPP", "+1555", room_id=second)
        again = gw.start_session("cust-1", "SMS", "+1555", room_id=first)
        conversations = {
            center.conversation_id,
            in_first.conversation_id,
            in_second.conversation_id,
        }
        assert len(conversations) == 3
        assert again.conversation_id == in_first.conversation_id  # one live per room
        assert gw.conversation(in_second.conversation_id)["room_id"] == second


def test_a_private_rooms_agent_request_is_offered_to_its_advisor_without_the_queue(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway(**OFFERS) as gw:
        for agent_id in ("queue-agent", "ann"):
            gw.agent_login(agent_id)  # both serve "default"
        gw.agent_ready("queue-agent")  # READY first: the queue would pick it
        gw.agent_ready("ann")
        room = private_room(gw, "ann")
        cid = gw.start_session("cust-1", "WEB", "v", room_id=room).conversation_id
        gw.request_agent(cid)
        offered = [e["data"] for e in gw.events(cid) if e["name"] == "AGENT_OFFERED"]
        assert [o["agent_id"] for o in offered] == ["ann"]
        requested = [e["data"] for e in gw.events(cid) if e["name"] == "AGENT_REQUESTED"]
        assert requested[0]["to_agent_id"] == "ann"
        assert [c["conversation_id"] for c in gw.agent_conversations("ann")] == [cid]
        assert gw.agent_conversations("queue-agent") == []


def test_a_contact_center_rooms_request_still_goes_to_the_queue(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway(**OFFERS) as gw:
        gw.agent_login("queue-agent")
        gw.agent_ready("queue-agent")
        private_room(gw, "ann")
        cid = gw.start_session("cust-1", "WEB", "v").conversation_id
        gw.request_agent(cid)
        offered = [e["data"]["agent_id"] for e in gw.events(cid) if e["name"] == "AGENT_OFFERED"]
        assert offered == ["queue-agent"]


def test_a_team_rooms_members_write_to_each_other_and_its_history_is_kept(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway() as gw:
        room = gw.create_room("TEAM", ["ann", "sue"])
        assert room["type"] == "TEAM" and room["customer_id"] is None
        rid = room["room_id"]
        gw.room_message("ann", rid, "who takes the 3pm?", message_id="m-1")
        gw.room_message("sue", rid, "I do")
        gw.room_message("ann", rid, "who takes the 3pm?", message_id="m-1")  # re-sent
        gw.advance(3600)
        history = gw.room_history(rid)
        assert [(m["seq"], m["agent_id"], m["text"]) for m in history] == [
            (1, "ann", "who takes the 3pm?"),
            (2, "sue", "I do"),
        ]


def test_rooms_and_members_are_listed(make_gateway: MakeGateway) -> None:
    with make_gateway() as gw:
        gw.start_session("cust-1", "WEB", "v")
        private = private_room(gw, "ann", "bob")
        team = gw.create_room("TEAM", ["bob", "sue"])["room_id"]
        customer_rooms = gw.rooms(customer_id="cust-1")
        assert sorted(r["mode"] for r in customer_rooms) == ["CONTACT_CENTER", "PRIVATE"]
        assert gw.room_members(private) == ["ann", "bob"]
        assert gw.room_members(team) == ["bob", "sue"]
        assert sorted(r["room_id"] for r in gw.rooms(agent_id="bob")) == sorted([private, team])
        assert [r["room_id"] for r in gw.rooms(agent_id="ann")] == [private]


def test_a_customer_rooms_history_lists_its_archived_conversations(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway() as gw:
        room = private_room(gw, "ann")
        ref = gw.start_session("cust-1", "WEB", "v", room_id=room)
        gw.end_conversation(ref.conversation_id)
        history = gw.room_history(room)
        assert [(h["conversation_id"], h["state"]) for h in history] == [
            (ref.conversation_id, "CLOSED")
        ]


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda gw: gw.create_room("LOBBY", ["ann"]), BadArgumentError, "kind"),
        (lambda gw: gw.create_room("TEAM", []), BadArgumentError, "members"),
        (lambda gw: gw.create_room("TEAM", "ann"), BadArgumentError, "members"),
        (lambda gw: gw.create_room("TEAM", ["ann", "ann"]), BadArgumentError, "distinct"),
        (lambda gw: gw.create_room("TEAM", ["ann"], customer_id="c"), BadArgumentError, "TEAM"),
        (lambda gw: gw.create_room("PRIVATE", ["ann"]), BadArgumentError, "customer_id"),
        (lambda gw: gw.rooms(), BadArgumentError, "exactly one"),
        (lambda gw: gw.rooms(customer_id="c", agent_id="a"), BadArgumentError, "exactly one"),
        (lambda gw: gw.room_members("room-nope"), UnknownIdError, "room-nope"),
        (lambda gw: gw.room_history("room-nope"), UnknownIdError, "room-nope"),
        (lambda gw: gw.room_message("ann", "room-nope", "hi"), UnknownIdError, "room-nope"),
        (lambda gw: gw.room_message("ann", "room-nope", None), BadArgumentError, "text"),
    ],
)
def test_bad_room_requests_are_refused_and_change_nothing(
    make_gateway: MakeGateway, call: object, error: type[Exception], match: str
) -> None:
    with make_gateway() as gw:
        with pytest.raises(error, match=match):
            call(gw)  # type: ignore[operator]
        assert gw.rooms(agent_id="ann") == []


def test_writing_in_a_room_one_is_not_a_member_of_or_a_customer_room_is_refused(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway() as gw:
        team = gw.create_room("TEAM", ["ann"])["room_id"]
        private = private_room(gw, "ann")
        with pytest.raises(BadArgumentError, match="not a member"):
            gw.room_message("sue", team, "hi")
        with pytest.raises(BadArgumentError, match="only TEAM rooms"):
            gw.room_message("ann", private, "hi")
        with pytest.raises(BadArgumentError, match="TEAM room"):
            gw.start_session("cust-1", "WEB", "v", room_id=team)
        assert gw.room_history(team) == []
        assert gw.rooms(customer_id="cust-1")[0]["room_id"] == private


def test_cx_send_offers_outbound_contacts_and_the_room_operations() -> None:
    from runtime.cli_send import OPS

    rooms_ops = {"start_outbound", "create_room", "rooms", "room_members", "room_message"}
    assert rooms_ops | {"room_history"} <= set(OPS)
