"""Supervision through the embedded gateway (virtual clock) and once through the network
gateway: whispers among a conversation's agents and supervisors that the customer never
receives, a silent monitor that listens, and a supervisor's barge-in (docs/EVENTS.md,
WHISPER_MESSAGE and SUPERVISOR_BARGED_IN)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runtime.gateway import (
    BadArgumentError,
    Gateway,
    GatewayError,
    IllegalTransitionError,
    PushedEvent,
    UnknownIdError,
)
from runtime.netgateway import serve
from tests.conftest import MakeGateway, storage_config
from tests.multiproc_support import eventually, running_system, write_config
from tests.test_netgateway import MAX_FRAME, TOKEN, RawClient
from tests.test_transfer import ready, role_of, routed_to
from tests.web_support import token, web_gateway


def pushed_to(pushed: list[PushedEvent], subscription: str) -> list[dict[str, Any]]:
    return [p.event for p in pushed if p.subscription == subscription]


def named(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in events if e["name"] == name]


def push_named(client: RawClient, name: str) -> dict[str, Any]:
    """Read frames until a pushed event called ``name`` has arrived; that push."""
    while not any(p["event"]["name"] == name for p in client.pushed):
        value = client.frame()
        assert "push" in value, value
        client.pushed.append(value)
    return next(p for p in client.pushed if p["event"]["name"] == name)


def supervised(gw: Gateway, role: str) -> tuple[str, str]:
    """bob PRIMARY, carol ASSISTANT, the supervisor sue in ``role``; every desk and the
    customer's session subscribed, nothing pushed yet."""
    ready(gw, "bob")
    cid, session = routed_to(gw, "bob")
    for agent_id in ("carol", "sue"):
        gw.agent_login(agent_id)
    gw.agent_join("carol", cid, role="ASSISTANT")
    gw.agent_join("sue", cid, role=role)
    gw.subscribe_session(session, after_seq=gw.conversation(cid)["seq"])
    for agent_id in ("bob", "carol", "sue"):
        gw.subscribe_agent(agent_id)
    gw.pushed()
    return cid, session


def test_a_whisper_reaches_the_other_agent_and_the_supervisor_never_the_customer(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway() as gw:
        cid, session = supervised(gw, "WHISPER")
        gw.whisper("bob", cid, "this one is a VIP")
        pushed = gw.pushed()
        for desk in ("agent:carol", "agent:sue"):
            (whisper,) = named(pushed_to(pushed, desk), "WHISPER_MESSAGE")
            assert whisper["data"]["text"] == "this one is a VIP"
            assert whisper["emitter"] == {"id": "bob", "type": "AGENT"}
        assert pushed_to(pushed, f"session:{session}") == []


def test_the_customer_gets_the_next_message_after_a_whisper_without_a_gap(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway() as gw:
        cid, session = supervised(gw, "WHISPER")
        seq = gw.conversation(cid)["seq"]
        gw.whisper("sue", cid, "offer the discount")
        gw.agent_message("bob", cid, "we can offer a discount")
        told = pushed_to(gw.pushed(), f"session:{session}")
        assert told[0]["name"] == "AGENT_MESSAGE" and told[0]["seq"] == seq + 2
        assert [e["seq"] for e in told] == list(range(seq + 2, seq + 2 + len(told)))


def test_a_session_subscribed_from_before_a_whisper_is_not_replayed_it(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway() as gw:
        cid, session = supervised(gw, "WHISPER")
        seq = gw.conversation(cid)["seq"]
        gw.unsubscribe(f"session:{session}")
        gw.whisper("bob", cid, "hush")
        gw.agent_message("bob", cid, "hello")
        gw.subscribe_session(session, after_seq=seq)
        told = [e["name"] for e in pushed_to(gw.pushed(), f"session:{session}")]
        assert told[0] == "AGENT_MESSAGE" and "WHISPER_MESSAGE" not in told


def test_a_whisper_is_archived_marked_for_agents_only(make_gateway: MakeGateway) -> None:
    with make_gateway() as gw:
        cid, _ = supervised(gw, "WHISPER")
        gw.whisper("carol", cid, "I will take the billing part")
        gw.end_conversation(cid)
        assert gw.conversation(cid)["state"] == "CLOSED"
        (archived,) = named(gw.events(cid), "WHISPER_MESSAGE")
        assert archived["type"] == "MESSAGE"
        assert archived["data"]["audience"] == "AGENTS"
        assert archived["data"]["text"] == "I will take the billing part"


def test_the_bot_does_not_answer_a_whisper(make_gateway: MakeGateway) -> None:
    with make_gateway() as gw:
        cid, _ = supervised(gw, "WHISPER")
        seq = gw.conversation(cid)["seq"]
        gw.whisper("bob", cid, "agent please")
        assert [e["name"] for e in gw.events(cid, after_seq=seq)] == ["WHISPER_MESSAGE"]


def test_a_silent_monitor_receives_the_customers_messages(make_gateway: MakeGateway) -> None:
    with make_gateway() as gw:
        _, session = supervised(gw, "SILENT_MONITOR")
        gw.customer_message(session, "where is my parcel?")
        (heard,) = named(pushed_to(gw.pushed(), "agent:sue"), "CUSTOMER_MESSAGE")
        assert heard["data"]["text"] == "where is my parcel?"


def test_a_supervisor_who_leaves_hears_no_more(make_gateway: MakeGateway) -> None:
    with make_gateway() as gw:
        cid, session = supervised(gw, "SILENT_MONITOR")
        gw.agent_leave("sue", cid)
        gw.customer_message(session, "anyone there?")
        heard = [e["name"] for e in pushed_to(gw.pushed(), "agent:sue")]
        assert heard == ["AGENT_UNSUBSCRIBED"]
        assert gw.agent_conversations("sue") == []


def _unchanged(gw: Gateway, cid: str, error: type[GatewayError], call: Callable[[], None]) -> None:
    before, events = gw.conversation(cid), gw.events(cid)
    with pytest.raises(error):
        call()
    assert gw.conversation(cid) == before and gw.events(cid) == events


def test_a_silent_monitor_cannot_write_to_the_customer_nor_whisper(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway() as gw:
        cid, _ = supervised(gw, "SILENT_MONITOR")
        _unchanged(gw, cid, IllegalTransitionError, lambda: gw.agent_message("sue", cid, "hi"))
        _unchanged(gw, cid, IllegalTransitionError, lambda: gw.whisper("sue", cid, "psst"))


def test_a_whispering_supervisor_cannot_write_to_the_customer(make_gateway: MakeGateway) -> None:
    with make_gateway() as gw:
        cid, _ = supervised(gw, "WHISPER")
        _unchanged(gw, cid, IllegalTransitionError, lambda: gw.agent_message("sue", cid, "hi"))


def test_a_barge_in_makes_the_supervisor_an_agent_who_can_answer(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway() as gw:
        cid, session = supervised(gw, "SILENT_MONITOR")
        gw.barge_in("sue", cid)
        assert role_of(gw, cid, "sue") == "ASSISTANT"
        gw.agent_message("sue", cid, "I am the supervisor, let me help")
        told = pushed_to(gw.pushed(), f"session:{session}")
        (barged,) = named(told, "SUPERVISOR_BARGED_IN")
        assert barged["data"] == {"agent_id": "sue", "from": "SILENT_MONITOR", "role": "ASSISTANT"}
        (answer,) = named(told, "AGENT_MESSAGE")
        assert answer["emitter"]["id"] == "sue"


def test_a_barge_in_with_no_agent_present_makes_the_supervisor_primary(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway() as gw:
        gw.agent_login("sue")
        cid = gw.start_session("cust-1", "WEB", "v").conversation_id
        gw.agent_join("sue", cid, role="WHISPER")
        gw.barge_in("sue", cid)
        snapshot = gw.conversation(cid)
        assert snapshot["state"] == "ACTIVE"
        assert role_of(gw, cid, "sue") == "PRIMARY"
        assert role_of(gw, cid, "bot") == "ASSISTANT"


def test_a_barge_in_takes_one_of_the_supervisors_slots(make_gateway: MakeGateway) -> None:
    with make_gateway() as gw:
        ready(gw, "bob")
        cid, _ = routed_to(gw, "bob")
        ready(gw, "sue", max_conversations=2)
        gw.agent_join("sue", cid, role="SILENT_MONITOR")
        assert free_of(gw, "sue") == 2
        gw.barge_in("sue", cid)
        assert free_of(gw, "sue") == 1


def free_of(gw: Gateway, agent_id: str) -> int:
    (agent,) = [a for a in gw.agents() if a["agent_id"] == agent_id]
    return int(agent["free"])


def test_a_barge_in_answers_a_pending_request(make_gateway: MakeGateway) -> None:
    with make_gateway(routing={"request_ttl_seconds": 50}) as gw:
        gw.agent_login("sue")
        cid = gw.start_session("cust-1", "WEB", "v").conversation_id
        gw.request_agent(cid)
        gw.agent_join("sue", cid, role="SILENT_MONITOR")
        gw.barge_in("sue", cid)
        seq = gw.conversation(cid)["seq"]
        gw.advance(55)  # past the request's time to live, within the agent SLA (60 s)
        names = [e["name"] for e in gw.events(cid, after_seq=seq)]
        assert "NO_AGENT_AVAILABLE" not in names
        assert role_of(gw, cid, "sue") == "PRIMARY"


def test_bad_whispers_and_barge_ins_are_refused_and_change_nothing(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway() as gw:
        cid, _ = supervised(gw, "WHISPER")
        refusals: list[tuple[type[GatewayError], Callable[[], None]]] = [
            (BadArgumentError, lambda: gw.whisper("bob", cid, "x" * 100_000)),
            (BadArgumentError, lambda: gw.whisper("", cid, "hi")),
            (BadArgumentError, lambda: gw.barge_in("", cid)),
            (UnknownIdError, lambda: gw.whisper("nobody", cid, "hi")),
            (UnknownIdError, lambda: gw.barge_in("nobody", cid)),
            (UnknownIdError, lambda: gw.whisper("bob", "conv-0000000000000000", "hi")),
            (IllegalTransitionError, lambda: gw.barge_in("bob", cid)),
            (IllegalTransitionError, lambda: gw.barge_in("carol", cid)),
        ]
        for error, call in refusals:
            _unchanged(gw, cid, error, call)


def test_a_barge_in_is_refused_once_the_customer_has_left(make_gateway: MakeGateway) -> None:
    with make_gateway() as gw:
        cid, session = supervised(gw, "SILENT_MONITOR")
        gw.end_session(session)
        assert gw.conversation(cid)["state"] == "CUSTOMER_LEFT"
        _unchanged(gw, cid, IllegalTransitionError, lambda: gw.barge_in("sue", cid))


def test_whisper_and_barge_in_through_the_network_gateway(make_gateway: MakeGateway) -> None:
    server = serve(lambda: make_gateway(seed=1), "127.0.0.1:0", TOKEN, MAX_FRAME)
    client = RawClient(server.port)
    try:
        client.authenticate()
        for agent_id in ("bob", "sue"):
            client.call("agent_login", agent_id=agent_id)
        client.call("agent_ready", agent_id="bob")
        ref = client.call("start_session", customer_id="c", channel="WEB", identifier="v")
        cid = ref["conversation_id"]
        client.call("request_agent", conversation_id=cid)
        client.call("agent_join", agent_id="sue", conversation_id=cid, role="WHISPER")
        seq = client.call("conversation", conversation_id=cid)["seq"]
        session = ref["channel_session_id"]
        client.call("subscribe_session", channel_session_id=session, after_seq=seq)
        whisper = {"agent_id": "sue", "conversation_id": cid, "text": "refund it"}
        assert client.call("whisper", **whisper) is None
        client.call("agent_message", agent_id="bob", conversation_id=cid, text="refunded")
        answer = push_named(client, "AGENT_MESSAGE")
        assert answer["event"]["seq"] == seq + 2
        assert client.pushed[0]["event"]["name"] == "AGENT_MESSAGE"  # the whisper never came
        error = client.refused("whisper", {**whisper, "agent_id": "nobody"})
        assert error["type"] == "unknown_id"
        assert client.call("barge_in", agent_id="sue", conversation_id=cid) is None
        snapshot = client.call("conversation", conversation_id=cid)
        roles = {p["id"]: p["role"] for p in snapshot["participants"] if p["type"] == "AGENT"}
        assert roles == {"bob": "PRIMARY", "sue": "ASSISTANT"}
        events = client.call("events", conversation_id=cid)
        (whispered,) = [e for e in events if e["name"] == "WHISPER_MESSAGE"]
        assert whispered["data"]["audience"] == "AGENTS"
    finally:
        client.close()
        server.close()


def test_a_channel_connector_reading_the_events_over_http_gets_no_whisper(
    tmp_path: Path,
) -> None:
    connector, alice = token("connector", "webchat", "WEB"), token("agent", "alice")
    sue = token("supervisor", "sue")
    with web_gateway(tmp_path) as web:
        ref = web.call("start_session", connector, customer_id="c1", channel="WEB", identifier="b1")
        cid = ref["conversation_id"]
        web.call("agent_login", alice, agent_id="alice")
        web.call("agent_join", alice, agent_id="alice", conversation_id=cid)
        web.call("agent_login", sue, agent_id="sue")
        web.call("agent_join", sue, agent_id="sue", conversation_id=cid, role="WHISPER")
        web.call("whisper", sue, agent_id="sue", conversation_id=cid, text="be kind")
        seen = {
            who: [e["name"] for e in web.call("events", headers, conversation_id=cid)]
            for who, headers in (("connector", connector), ("agent", alice))
        }
        assert "WHISPER_MESSAGE" not in seen["connector"]
        assert "WHISPER_MESSAGE" in seen["agent"]
        assert "AGENT_SUBSCRIBED" in seen["connector"]


def test_a_conversation_rebuilt_from_its_journal_still_keeps_whispers_from_the_customer(
    tmp_path: Path,
) -> None:
    config = storage_config(tmp_path)
    with Gateway.embedded(config, seed=0) as gw:
        cid, session = supervised(gw, "WHISPER")
        seq = gw.conversation(cid)["seq"]
        gw.whisper("sue", cid, "before the restart")
    with Gateway.embedded(config, seed=0) as gw:
        assert gw.boot["restored"] == 1
        assert len(named(gw.events(cid), "WHISPER_MESSAGE")) == 1
        gw.agent_login("bob")
        gw.agent_message("bob", cid, "still here")
        gw.subscribe_session(session, after_seq=seq)
        told = [e["name"] for e in pushed_to(gw.pushed(), f"session:{session}")]
        assert told[0] == "AGENT_MESSAGE" and "WHISPER_MESSAGE" not in told


@pytest.mark.multiproc
def test_whispers_typing_and_a_barge_in_on_a_running_system(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    with running_system(config), Gateway.connect(config) as gw:
        for agent_id in ("bob", "sue"):
            gw.agent_login(agent_id)
        ref = gw.start_session("cust-1", "WEB", "v")
        cid, session = ref.conversation_id, ref.channel_session_id
        gw.agent_join("bob", cid)
        gw.agent_join("sue", cid, role="WHISPER")
        gw.subscribe_session(session, after_seq=gw.conversation(cid)["seq"])
        gw.subscribe_agent("sue")
        gw.whisper("sue", cid, "psst")
        gw.agent_typing("bob", cid)
        gw.agent_message("bob", cid, "hello")
        gw.barge_in("sue", cid)
        received: list[PushedEvent] = []

        def names(subscription: str) -> set[str]:
            return {p.event["name"] for p in received if p.subscription == subscription}

        def arrived() -> bool:
            received.extend(gw.pushed(0.05))
            told, heard = names(f"session:{session}"), names("agent:sue")
            return {"TYPING", "AGENT_MESSAGE", "SUPERVISOR_BARGED_IN"} <= told and {
                "WHISPER_MESSAGE",
                "TYPING",
                "SUPERVISOR_BARGED_IN",
            } <= heard

        eventually(arrived)
        assert "WHISPER_MESSAGE" not in names(f"session:{session}")
        assert role_of(gw, cid, "sue") == "ASSISTANT"
