"""Outbound contacts through the embedded gateway (virtual clock) and once through the network
gateway: an agent contacts a customer first, in the customer's room or a named one; a live
conversation of that room takes the new channel session; an agent answers on a channel
session it names."""

from __future__ import annotations

from pathlib import Path

import pytest

from domain.commands import StartSession
from domain.conversation import ConversationMachine
from domain.enums import Channel, Direction
from domain.policy import Policy
from infra.journal_records import open_record, parse_open
from runtime.gateway import (
    BadArgumentError,
    Gateway,
    IllegalTransitionError,
    UnknownIdError,
)
from runtime.netgateway import serve
from tests.conftest import MakeGateway
from tests.multiproc_support import eventually, running_system, write_config
from tests.test_netgateway import MAX_FRAME, TOKEN, RawClient


def agents(gw: Gateway, conversation_id: str) -> dict[str, str]:
    return {
        p["id"]: p["role"]
        for p in gw.conversation(conversation_id)["participants"]
        if p["type"] == "AGENT" and p["state"] == "SUBSCRIBED"
    }


def test_an_outbound_contact_opens_a_conversation_with_the_agent_primary_and_outbound(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway() as gw:
        gw.agent_login("ann")  # not READY: outbound needs no routing
        ref = gw.start_outbound("ann", "cust-1", "SMS", "+15550100")
        snapshot = gw.conversation(ref.conversation_id)
        assert snapshot["direction"] == "OUTBOUND"
        assert snapshot["state"] == "ACTIVE"
        assert agents(gw, ref.conversation_id) == {"ann": "PRIMARY"}
        names = [e["name"] for e in gw.events(ref.conversation_id)]
        assert not {"AGENT_REQUESTED", "BOT_SUBSCRIBED", "BOT_MESSAGE"} & set(names)
        assert gw.agent_conversations("ann")[0]["conversation_id"] == ref.conversation_id


def test_an_outbound_contact_to_a_customer_in_a_live_conversation_joins_it_on_a_new_channel(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway() as gw:
        web = gw.start_session("cust-1", "WEB", "visitor-1")
        gw.agent_login("ann")
        sms = gw.start_outbound("ann", "cust-1", "SMS", "+15550100")
        assert sms.conversation_id == web.conversation_id
        assert sms.channel_session_id != web.channel_session_id
        snapshot = gw.conversation(web.conversation_id)
        assert snapshot["direction"] == "INBOUND"
        channels = sorted(s["channel"] for s in snapshot["channel_sessions"])
        assert channels == ["SMS", "WEB"]
        assert agents(gw, web.conversation_id) == {"ann": "PRIMARY"}


def test_an_outbound_contact_by_an_agent_already_in_the_conversation_adds_only_the_channel(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway() as gw:
        gw.agent_login("ann")
        gw.agent_login("bob")
        first = gw.start_outbound("ann", "cust-1", "SMS", "+15550100")
        second = gw.start_outbound("ann", "cust-1", "WHATSAPP", "+15550100")
        third = gw.start_outbound("bob", "cust-1", "EMAIL", "c@example.com")
        assert first.conversation_id == second.conversation_id == third.conversation_id
        assert agents(gw, first.conversation_id) == {"ann": "PRIMARY", "bob": "ASSISTANT"}


def test_an_agent_answers_on_the_channel_session_it_names(make_gateway: MakeGateway) -> None:
    with make_gateway() as gw:
        gw.agent_login("ann")
        sms = gw.start_outbound("ann", "cust-1", "SMS", "+15550100")
        web = gw.start_session("cust-1", "WEB", "visitor-1")
        gw.customer_message(web.channel_session_id, "on the web now")
        cid = sms.conversation_id
        gw.agent_message("ann", cid, "answered by SMS", channel_session_id=sms.channel_session_id)
        gw.agent_message("ann", cid, "to every channel")
        answers = [e for e in gw.events(cid) if e["name"] == "AGENT_MESSAGE"]
        assert [(e["data"]["text"], e["channel_session_id"]) for e in answers] == [
            ("answered by SMS", sms.channel_session_id),
            ("to every channel", None),
        ]


def test_an_answer_on_an_ended_or_unknown_channel_session_is_refused_and_changes_nothing(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway() as gw:
        gw.agent_login("ann")
        sms = gw.start_outbound("ann", "cust-1", "SMS", "+15550100")
        web = gw.start_session("cust-1", "WEB", "visitor-1")
        gw.end_session(sms.channel_session_id)
        cid = web.conversation_id
        seq = gw.conversation(cid)["seq"]
        with pytest.raises(IllegalTransitionError, match="ENDED"):
            gw.agent_message("ann", cid, "hi", channel_session_id=sms.channel_session_id)
        with pytest.raises(UnknownIdError, match="cs-nope"):
            gw.agent_message("ann", cid, "hi", channel_session_id="cs-nope")
        assert gw.conversation(cid)["seq"] == seq


def test_bad_outbound_contacts_are_refused_and_open_nothing(make_gateway: MakeGateway) -> None:
    with make_gateway() as gw:
        with pytest.raises(UnknownIdError, match="not logged in"):
            gw.start_outbound("ghost", "cust-1", "SMS", "+15550100")
        gw.agent_login("ann", max_conversations=1)
        with pytest.raises(BadArgumentError, match="channel"):
            gw.start_outbound("ann", "cust-1", "PIGEON", "+15550100")
        with pytest.raises(UnknownIdError, match="room-nope"):
            gw.start_outbound("ann", "cust-1", "SMS", "+15550100", room_id="room-nope")
        assert gw.rooms(customer_id="cust-1") == []
        gw.start_outbound("ann", "cust-2", "SMS", "+15550111")
        with pytest.raises(IllegalTransitionError, match="limit"):
            gw.start_outbound("ann", "cust-1", "SMS", "+15550100")
        assert gw.rooms(customer_id="cust-1") == []


def test_an_outbound_contact_through_the_network_gateway(make_gateway: MakeGateway) -> None:
    server = serve(lambda: make_gateway(seed=1), "127.0.0.1:0", TOKEN, MAX_FRAME)
    client = RawClient(server.port)
    try:
        client.authenticate()
        client.call("agent_login", agent_id="ann")
        ref = client.call(
            "start_outbound", agent_id="ann", customer_id="c", channel="SMS", identifier="+1555"
        )
        snapshot = client.call("conversation", conversation_id=ref["conversation_id"])
        assert snapshot["direction"] == "OUTBOUND"
        roles = {p["id"]: p["role"] for p in snapshot["participants"] if p["type"] == "AGENT"}
        assert roles == {"ann": "PRIMARY"}
        room = client.call("create_room", kind="TEAM", members=["ann", "sue"])
        client.call("room_message", agent_id="ann", room_id=room["room_id"], text="hello")
        history = client.call("room_history", room_id=room["room_id"])
        assert [(m["agent_id"], m["text"]) for m in history] == [("ann", "hello")]
    finally:
        client.close()
        server.close()


def test_an_outbound_private_rooms_conversation_reads_back_from_its_journal_record() -> None:
    first = StartSession("cs-1", Channel.SMS, "+1555")
    machine, _ = ConversationMachine.open(
        conversation_id="conv-1",
        room_id="room-p",
        customer_id="cust-1",
        first=first,
        policy=Policy(advisors=("ann",)),
        now=1_000,
        direction=Direction.OUTBOUND,
    )
    opened = parse_open(open_record(machine, first, 1_000))
    assert (opened.direction, opened.policy.advisors) == (Direction.OUTBOUND, ("ann",))


@pytest.mark.multiproc
def test_an_outbound_contact_and_a_team_room_on_a_running_system(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    with running_system(config), Gateway.connect(config) as gw:
        gw.agent_login("ann")
        ref = gw.start_outbound("ann", "cust-1", "SMS", "+15550100")
        eventually(lambda: agents(gw, ref.conversation_id) == {"ann": "PRIMARY"})
        assert gw.conversation(ref.conversation_id)["direction"] == "OUTBOUND"
        team = gw.create_room("TEAM", ["ann", "sue"])["room_id"]
        gw.room_message("sue", team, "shift swap?")
        assert [m["text"] for m in gw.room_history(team)] == ["shift swap?"]
