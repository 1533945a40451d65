"""The agent desk contract through the embedded gateway: offers and their withdrawal pushed to
the agent's subscription, an agent's list of its conversations, and the final event that ends
each subscription of a conversation when it closes (docs/PROTOCOL.md, "Subscriptions")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runtime.gateway import BadArgumentError, Gateway, PushedEvent, UnknownIdError
from runtime.netgateway import serve
from tests.conftest import MakeGateway
from tests.multiproc_support import eventually, running_system, write_config
from tests.test_netgateway import MAX_FRAME, TOKEN, RawClient

OFFERS = {"routing": {"auto_accept": False, "accept_timeout_seconds": 20}}


def names(pushed: list[PushedEvent]) -> list[str]:
    return [p.event["name"] for p in pushed]


def of(pushed: list[PushedEvent], subscription: str) -> list[PushedEvent]:
    return [p for p in pushed if p.subscription == subscription]


def desk(gw: Gateway, agent_id: str, *, ready: bool = True, **login: Any) -> None:
    gw.agent_login(agent_id, **login)
    gw.subscribe_agent(agent_id)
    if ready:
        gw.agent_ready(agent_id)


def test_desk_accepts_an_offer_it_learned_only_from_its_subscription(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway(**OFFERS) as gw:
        desk(gw, "bob")
        ref = gw.start_session("cust-1", "WEB", "v")
        gw.request_agent(ref.conversation_id)
        offers = [p for p in of(gw.pushed(), "agent:bob") if p.event["name"] == "AGENT_OFFERED"]
        assert len(offers) == 1
        learned = offers[0].conversation_id  # all the desk knows of the conversation
        assert offers[0].event["data"]["agent_id"] == "bob"
        gw.agent_join("bob", learned)
        assert gw.conversation(ref.conversation_id)["state"] == "ACTIVE"
        assert "AGENT_SUBSCRIBED" in names(of(gw.pushed(), "agent:bob"))


def test_rona_is_pushed_to_the_desk_the_offer_was_made_to(make_gateway: MakeGateway) -> None:
    with make_gateway(**OFFERS) as gw:
        desk(gw, "bob")
        ref = gw.start_session("cust-1", "WEB", "v")
        gw.request_agent(ref.conversation_id)
        gw.pushed()
        gw.advance(20)
        rona = of(gw.pushed(), "agent:bob")
        assert names(rona) == ["RONA"]
        assert rona[0].event["data"]["agent_id"] == "bob"
        assert gw.agent_conversations("bob") == []


def test_an_offer_withdrawn_when_the_customer_leaves_is_pushed_to_its_desk(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway(**OFFERS) as gw:
        desk(gw, "bob")
        ref = gw.start_session("cust-1", "WEB", "v")
        gw.request_agent(ref.conversation_id)
        gw.pushed()
        gw.end_session(ref.channel_session_id)
        withdrawn = of(gw.pushed(), "agent:bob")
        assert names(withdrawn) == ["AGENT_OFFER_WITHDRAWN"]
        data = withdrawn[0].event["data"]
        assert data["agent_id"] == "bob" and data["queue"] == "default"
        assert gw.agent_conversations("bob") == []


def test_an_offer_withdrawn_when_another_agent_joins_is_pushed_to_its_desk(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway(**OFFERS) as gw:
        desk(gw, "bob")
        desk(gw, "carol", ready=False)
        ref = gw.start_session("cust-1", "WEB", "v")
        gw.request_agent(ref.conversation_id)
        gw.pushed()
        gw.agent_join("carol", ref.conversation_id)
        assert "AGENT_OFFER_WITHDRAWN" in names(of(gw.pushed(), "agent:bob"))


def test_agent_conversations_lists_subscriptions_with_states_and_open_offers(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway(**OFFERS) as gw:
        desk(gw, "bob")
        first = gw.start_session("cust-1", "WEB", "v1")
        gw.request_agent(first.conversation_id)
        gw.agent_join("bob", first.conversation_id)
        gw.hold("bob", first.conversation_id, 30)
        second = gw.start_session("cust-2", "WEB", "v2")
        gw.request_agent(second.conversation_id)
        listed = gw.agent_conversations("bob")
        expected = [
            {
                "conversation_id": first.conversation_id,
                "state": "ON_HOLD",
                "role": "PRIMARY",
                "request_id": None,
            },
            {
                "conversation_id": second.conversation_id,
                "state": "CREATED",
                "role": None,
                "request_id": f"{second.conversation_id}/r1",
            },
        ]
        assert listed == sorted(expected, key=lambda c: str(c["conversation_id"]))


def test_agent_conversations_refuses_bad_and_unknown_agents(make_gateway: MakeGateway) -> None:
    with make_gateway() as gw:
        with pytest.raises(BadArgumentError):
            gw.agent_conversations("")
        with pytest.raises(UnknownIdError):
            gw.agent_conversations("nobody")


def test_a_session_subscription_ends_with_a_final_event_when_the_conversation_closes(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway() as gw:
        ref = gw.start_session("cust-1", "WEB", "v")
        gw.subscribe_session(ref.channel_session_id)
        gw.end_session(ref.channel_session_id)
        pushed = gw.pushed()
        assert [p.final for p in pushed].count(True) == 1
        assert pushed[-1].final
        closed = [p.event["seq"] for p in pushed if p.event["data"].get("to") == "CLOSED"]
        assert closed and pushed[-1].event["seq"] >= closed[0]
        assert [p.event["seq"] for p in pushed] == [e["seq"] for e in gw.events(ref.conversation_id)]


def test_a_session_that_ended_earlier_gets_only_the_final_events_at_close(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway() as gw:
        web = gw.start_session("cust-1", "WEB", "v")
        sms = gw.start_session("cust-1", "SMS", "+4912345", room_id=web.room_id)
        gw.subscribe_session(web.channel_session_id)
        gw.end_session(web.channel_session_id)
        ended_at = gw.pushed()[-1].event["seq"]
        gw.customer_message(sms.channel_session_id, "still here")
        gw.end_session(sms.channel_session_id)
        pushed = gw.pushed()
        events = gw.events(web.conversation_id)
        closing = [e["seq"] for e in events if e["seq"] > ended_at and _closing(e, events)]
        assert [p.event["seq"] for p in pushed] == closing
        assert pushed[-1].final and not any(p.final for p in pushed[:-1])


def _closing(event: dict[str, Any], events: list[dict[str, Any]]) -> bool:
    """One of the events published when the archive committed (CLOSING -> CLOSED on)."""
    closed = next(e["seq"] for e in events if e["data"].get("to") == "CLOSED")
    return bool(event["seq"] >= closed)


def test_an_agent_subscription_gets_a_final_event_for_each_closed_conversation(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway() as gw:
        desk(gw, "bob")
        ref = gw.start_session("cust-1", "WEB", "v")
        gw.request_agent(ref.conversation_id)
        gw.end_conversation(ref.conversation_id)
        pushed = of(gw.pushed(), "agent:bob")
        finals = [p for p in pushed if p.final]
        assert len(finals) == 1 and finals[0] is pushed[-1]
        assert finals[0].conversation_id == ref.conversation_id
        assert gw.agent_conversations("bob") == []


def test_the_final_push_frame_says_final_over_the_network_gateway(
    make_gateway: MakeGateway,
) -> None:
    server = serve(lambda: make_gateway(seed=1), "127.0.0.1:0", TOKEN, MAX_FRAME)
    client = RawClient(server.port)
    try:
        client.authenticate()
        ref = client.call("start_session", customer_id="c", channel="WEB", identifier="v")
        session = ref["channel_session_id"]
        client.call("subscribe_session", channel_session_id=session)
        client.call("end_session", channel_session_id=session)
        last = client.call("events", conversation_id=ref["conversation_id"])[-1]["seq"]
        pushed = client.pushes_until(last)
        assert [p.get("final", False) for p in pushed].count(True) == 1
        assert pushed[-1]["final"] is True and pushed[-1]["event"]["seq"] == last
        error = client.refused("unsubscribe", {"subscription": f"session:{session}"})
        assert error["type"] == "unknown_id"  # the connection let go of it at the final event
    finally:
        client.close()
        server.close()


@pytest.mark.multiproc
def test_a_desk_accepts_a_pushed_offer_on_a_running_system(tmp_path: Path) -> None:
    config = write_config(tmp_path, routing={"auto_accept": False})
    with running_system(config), Gateway.connect(config) as gw:
        desk(gw, "bob")
        ref = gw.start_session("cust-1", "WEB", "v")
        gw.request_agent(ref.conversation_id)
        received: list[PushedEvent] = []
        eventually(
            lambda: received.extend(gw.pushed(0.05))
            or "AGENT_OFFERED" in names(of(received, "agent:bob"))
        )
        (offer,) = [p for p in received if p.event["name"] == "AGENT_OFFERED"]
        gw.agent_join("bob", offer.conversation_id)
        eventually(lambda: gw.conversation(ref.conversation_id)["state"] == "ACTIVE")
