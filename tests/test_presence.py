"""Typing indicators and read receipts through the embedded gateway (virtual clock) and once
through the network gateway (docs/EVENTS.md, TYPING and READ_RECEIPT): typing is pushed to
the other side and never archived; a receipt is an archived event pushed to everyone."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from runtime.gateway import (
    BadArgumentError,
    Gateway,
    GatewayError,
    IllegalTransitionError,
    UnknownIdError,
)
from runtime.netgateway import serve
from tests.conftest import MakeGateway
from tests.test_netgateway import MAX_FRAME, TOKEN, RawClient
from tests.test_transfer import ready, routed_to
from tests.test_whisper import named, push_named, pushed_to


def watched(gw: Gateway) -> tuple[str, str]:
    """bob PRIMARY, the supervisor sue listening; bob's and sue's desks and the customer's
    session subscribed, nothing pushed yet."""
    ready(gw, "bob")
    cid, session = routed_to(gw, "bob")
    gw.agent_login("sue")
    gw.agent_join("sue", cid, role="SILENT_MONITOR")
    gw.subscribe_session(session, after_seq=gw.conversation(cid)["seq"])
    gw.subscribe_agent("bob")
    gw.subscribe_agent("sue")
    gw.pushed()
    return cid, session


def test_the_customers_typing_is_pushed_to_the_agents_not_back_to_the_customer(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway() as gw:
        _, session = watched(gw)
        gw.customer_typing(session)
        pushed = gw.pushed()
        for desk in ("agent:bob", "agent:sue"):
            (typing,) = named(pushed_to(pushed, desk), "TYPING")
            assert typing["seq"] is None and typing["channel_session_id"] == session
        assert pushed_to(pushed, f"session:{session}") == []


def test_an_agents_typing_is_pushed_to_the_customer_and_the_supervisor(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway() as gw:
        cid, session = watched(gw)
        gw.agent_typing("bob", cid)
        pushed = gw.pushed()
        (typing,) = named(pushed_to(pushed, f"session:{session}"), "TYPING")
        assert typing["emitter"] == {"id": "bob", "type": "AGENT"}
        assert len(named(pushed_to(pushed, "agent:sue"), "TYPING")) == 1
        assert pushed_to(pushed, "agent:bob") == []


def test_a_supervisors_typing_never_reaches_the_customer(make_gateway: MakeGateway) -> None:
    with make_gateway() as gw:
        cid, session = watched(gw)
        gw.agent_typing("sue", cid)
        pushed = gw.pushed()
        assert len(named(pushed_to(pushed, "agent:bob"), "TYPING")) == 1
        assert pushed_to(pushed, f"session:{session}") == []


def test_typing_is_neither_an_event_nor_archived(make_gateway: MakeGateway) -> None:
    with make_gateway() as gw:
        cid, session = watched(gw)
        seq = gw.conversation(cid)["seq"]
        gw.customer_typing(session)
        gw.agent_typing("bob", cid)
        assert gw.conversation(cid)["seq"] == seq
        gw.end_conversation(cid)
        assert gw.conversation(cid)["state"] == "CLOSED"
        assert named(gw.events(cid), "TYPING") == []


def test_typing_is_pushed_at_most_once_per_sender_in_three_seconds(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway() as gw:
        cid, session = watched(gw)
        gw.customer_typing(session)
        gw.advance(1)
        gw.customer_typing(session)
        gw.agent_typing("bob", cid)  # another sender: not held back
        gw.advance(2)
        gw.customer_typing(session)
        pushed = pushed_to(gw.pushed(), "agent:sue")
        senders = [e["emitter"]["type"] for e in named(pushed, "TYPING")]
        assert senders == ["CUSTOMER", "AGENT", "CUSTOMER"]


def test_a_customers_read_receipt_is_archived_and_pushed_to_the_agents(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway() as gw:
        cid, session = watched(gw)
        gw.agent_message("bob", cid, "your parcel left today")
        seq = gw.conversation(cid)["seq"]
        gw.pushed()
        gw.customer_read(session, seq)
        (receipt,) = named(pushed_to(gw.pushed(), "agent:bob"), "READ_RECEIPT")
        assert receipt["data"] == {"reader_id": session, "seq": seq}
        assert receipt["emitter"]["type"] == "CUSTOMER"
        gw.end_conversation(cid)
        (archived,) = named(gw.events(cid), "READ_RECEIPT")
        assert archived["data"] == {"reader_id": session, "seq": seq}


def test_an_agents_read_receipt_is_pushed_to_the_customer(make_gateway: MakeGateway) -> None:
    with make_gateway() as gw:
        cid, session = watched(gw)
        gw.customer_message(session, "hello?")
        seq = gw.conversation(cid)["seq"]
        gw.pushed()
        gw.agent_read("bob", cid, seq)
        (receipt,) = named(pushed_to(gw.pushed(), f"session:{session}"), "READ_RECEIPT")
        assert receipt["data"] == {"reader_id": "bob", "seq": seq}


def test_a_supervisors_read_receipt_is_kept_from_the_customer(make_gateway: MakeGateway) -> None:
    with make_gateway() as gw:
        cid, session = watched(gw)
        gw.agent_read("sue", cid, gw.conversation(cid)["seq"])
        pushed = gw.pushed()
        assert pushed_to(pushed, f"session:{session}") == []
        (receipt,) = named(pushed_to(pushed, "agent:bob"), "READ_RECEIPT")
        assert receipt["data"]["audience"] == "AGENTS"


def _unchanged(gw: Gateway, cid: str, error: type[GatewayError], call: Callable[[], None]) -> None:
    before, events = gw.conversation(cid), gw.events(cid)
    with pytest.raises(error):
        call()
    assert gw.conversation(cid) == before and gw.events(cid) == events


def test_bad_typing_and_read_receipts_are_refused_and_change_nothing(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway() as gw:
        cid, session = watched(gw)
        last = gw.conversation(cid)["seq"]
        refusals: list[tuple[type[GatewayError], Callable[[], None]]] = [
            (BadArgumentError, lambda: gw.agent_typing("", cid)),
            (BadArgumentError, lambda: gw.customer_typing("")),
            (BadArgumentError, lambda: gw.customer_read(session, 0)),
            (BadArgumentError, lambda: gw.agent_read("bob", cid, True)),
            (BadArgumentError, lambda: gw.agent_read("bob", cid, "3")),  # type: ignore[arg-type]
            (BadArgumentError, lambda: gw.customer_read(session, last + 1)),
            (UnknownIdError, lambda: gw.agent_typing("nobody", cid)),
            (UnknownIdError, lambda: gw.agent_read("nobody", cid, 1)),
            (UnknownIdError, lambda: gw.customer_typing("cs-0000000000000000")),
            (UnknownIdError, lambda: gw.agent_typing("bob", "conv-0000000000000000")),
        ]
        for error, call in refusals:
            _unchanged(gw, cid, error, call)


def test_typing_on_an_ended_session_is_refused(make_gateway: MakeGateway) -> None:
    with make_gateway() as gw:
        ready(gw, "bob")
        cid, session = routed_to(gw, "bob")
        gw.start_session("cust-1", "SMS", "+1")  # the customer stays on another channel
        gw.end_session(session)
        _unchanged(gw, cid, IllegalTransitionError, lambda: gw.customer_typing(session))
        _unchanged(gw, cid, IllegalTransitionError, lambda: gw.customer_read(session, 1))


def test_typing_and_read_receipts_through_the_network_gateway(make_gateway: MakeGateway) -> None:
    server = serve(lambda: make_gateway(seed=1), "127.0.0.1:0", TOKEN, MAX_FRAME)
    client = RawClient(server.port)
    try:
        client.authenticate()
        client.call("agent_login", agent_id="bob")
        client.call("agent_ready", agent_id="bob")
        ref = client.call("start_session", customer_id="c", channel="WEB", identifier="v")
        cid, session = ref["conversation_id"], ref["channel_session_id"]
        client.call("request_agent", conversation_id=cid)
        seq = client.call("conversation", conversation_id=cid)["seq"]
        client.call("subscribe_session", channel_session_id=session, after_seq=seq)
        assert client.call("agent_typing", agent_id="bob", conversation_id=cid) is None
        typing = push_named(client, "TYPING")
        assert typing["push"] == f"session:{session}" and typing["event"]["seq"] is None
        assert client.call("customer_typing", channel_session_id=session) is None
        assert client.call("agent_read", agent_id="bob", conversation_id=cid, seq=seq) is None
        error = client.refused("customer_read", {"channel_session_id": session, "seq": "x"})
        assert error["type"] == "bad_argument"
        events = client.call("events", conversation_id=cid, after_seq=seq)
        assert [e["name"] for e in events] == ["READ_RECEIPT"]
    finally:
        client.close()
        server.close()
