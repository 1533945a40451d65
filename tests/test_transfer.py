"""Direct transfer through the embedded gateway (virtual clock) and once through the network
gateway: the PRIMARY agent hands its conversation to a queue or a named agent with a note
(docs/EVENTS.md, CONVERSATION_TRANSFERRED; docs/STATES.md, "Transfer")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from domain.routing import Assign, RoutingBook, RoutingPolicy
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

TTL = {"routing": {"request_ttl_seconds": 50}}


def ready(gw: Gateway, agent_id: str, **login: Any) -> None:
    gw.agent_login(agent_id, **login)
    gw.agent_ready(agent_id)


def routed_to(gw: Gateway, agent_id: str) -> tuple[str, str]:
    """A conversation routed to ``agent_id`` (the only READY agent): its id and session id."""
    ref = gw.start_session("cust-1", "WEB", "v")
    gw.request_agent(ref.conversation_id)
    assert role_of(gw, ref.conversation_id, agent_id) == "PRIMARY"
    return ref.conversation_id, ref.channel_session_id


def role_of(gw: Gateway, conversation_id: str, participant_id: str) -> str | None:
    for p in gw.conversation(conversation_id)["participants"]:
        if p["id"] == participant_id and p["state"] == "SUBSCRIBED":
            return str(p["role"])
    return None


def after(gw: Gateway, conversation_id: str, seq: int) -> list[dict[str, Any]]:
    return gw.events(conversation_id, after_seq=seq)


def names(events: list[dict[str, Any]]) -> list[str]:
    return [e["name"] for e in events]


def test_a_transfer_to_a_queue_with_nobody_ready_ends_with_the_bot_primary_again(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway(**TTL) as gw:
        ready(gw, "bob")
        cid, _ = routed_to(gw, "bob")
        seq = gw.conversation(cid)["seq"]
        gw.transfer("bob", cid, queue="billing", note="wants a refund")
        moved = after(gw, cid, seq)
        assert names(moved)[0] == "CONVERSATION_TRANSFERRED"
        assert moved[0]["data"] == {
            "agent_id": "bob",
            "queue": "billing",
            "to_agent_id": None,
            "note": "wants a refund",
        }
        (left,) = [e for e in moved if e["name"] == "AGENT_UNSUBSCRIBED"]
        assert left["data"]["reason"] == "DIRECT_TRANSFER"
        (requested,) = [e for e in moved if e["name"] == "AGENT_REQUESTED"]
        assert requested["data"]["queue"] == "billing"
        assert requested["data"]["note"] == "wants a refund"
        assert "CUSTOMER_SLA_STARTED" not in names(moved)
        assert gw.conversation(cid)["state"] == "INACTIVE"
        assert role_of(gw, cid, "bot") == "PRIMARY"

        seq = gw.conversation(cid)["seq"]
        gw.advance(50)
        expired = after(gw, cid, seq)
        assert names(expired)[0] == "NO_AGENT_AVAILABLE"
        assert expired[0]["data"]["queue"] == "billing"
        assert gw.conversation(cid)["state"] == "INACTIVE"
        assert role_of(gw, cid, "bot") == "PRIMARY"


def test_a_transfer_to_a_named_agent_goes_to_that_agent_alone(make_gateway: MakeGateway) -> None:
    with make_gateway() as gw:
        ready(gw, "bob")
        cid, _ = routed_to(gw, "bob")
        ready(gw, "dave")  # ready longer than carol: a queue's request would go to him
        ready(gw, "carol", queues=["billing"])
        gw.transfer("bob", cid, to_agent_id="carol", note="VIP")
        assert gw.conversation(cid)["state"] == "ACTIVE"
        assert role_of(gw, cid, "carol") == "PRIMARY"
        assert role_of(gw, cid, "dave") is None and role_of(gw, cid, "bob") is None
        (joined,) = [e for e in gw.events(cid) if e["name"] == "AGENT_SUBSCRIBED"][-1:]
        assert joined["data"] == {"agent_id": "carol", "role": "PRIMARY", "note": "VIP"}


def test_a_named_agent_is_offered_the_transfer_with_its_note_on_its_desk(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway(routing={"auto_accept": False}) as gw:
        ready(gw, "bob")
        ref = gw.start_session("cust-1", "WEB", "v")
        cid = ref.conversation_id
        gw.request_agent(cid)
        gw.agent_join("bob", cid)
        ready(gw, "carol")
        gw.subscribe_agent("carol")
        gw.pushed()
        gw.transfer("bob", cid, to_agent_id="carol", note="VIP")
        (offer,) = [p for p in gw.pushed() if p.subscription == "agent:carol"]
        assert offer.event["name"] == "AGENT_OFFERED"
        assert offer.event["data"]["note"] == "VIP"
        gw.agent_join("carol", offer.conversation_id)
        assert role_of(gw, cid, "carol") == "PRIMARY"


def test_the_transferring_agent_wraps_up_when_wrap_up_is_enabled(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway(**TTL, timers={"wrap_up": {"enabled": True}}) as gw:
        ready(gw, "bob")
        cid, _ = routed_to(gw, "bob")
        gw.transfer("bob", cid, queue="billing")
        assert role_of(gw, cid, "bob") == "WRAP_UP"
        assert gw.conversation(cid)["state"] == "INACTIVE"
        gw.apply_wrap_up("bob", cid, ["TRANSFERRED"])
        assert role_of(gw, cid, "bob") is None


def test_the_customer_is_told_of_the_transfer_on_its_channel(make_gateway: MakeGateway) -> None:
    with make_gateway() as gw:
        ready(gw, "bob")
        cid, session = routed_to(gw, "bob")
        gw.subscribe_session(session, after_seq=gw.conversation(cid)["seq"])
        gw.transfer("bob", cid, queue="billing")
        told = [p.event["name"] for p in gw.pushed() if p.subscription == f"session:{session}"]
        assert told[0] == "CONVERSATION_TRANSFERRED"


def test_a_transfer_during_hold_stops_the_hold(make_gateway: MakeGateway) -> None:
    with make_gateway(**TTL) as gw:
        ready(gw, "bob")
        cid, _ = routed_to(gw, "bob")
        gw.hold("bob", cid, 30)
        gw.transfer("bob", cid, queue="billing")
        assert gw.conversation(cid)["state"] == "INACTIVE"
        seq = gw.conversation(cid)["seq"]
        gw.advance(30)
        assert "CONVERSATION_RESUMED" not in names(after(gw, cid, seq))


def _unchanged(gw: Gateway, cid: str, error: type[GatewayError], call: Callable[[], None]) -> None:
    before, events = gw.conversation(cid), gw.events(cid)
    with pytest.raises(error):
        call()
    assert gw.conversation(cid) == before and gw.events(cid) == events


def test_bad_transfers_are_refused_and_change_nothing(make_gateway: MakeGateway) -> None:
    with make_gateway(**TTL) as gw:
        ready(gw, "bob")
        cid, _ = routed_to(gw, "bob")
        ready(gw, "carol")
        gw.agent_join("carol", cid, role="ASSISTANT")
        both = dict(queue="billing", to_agent_id="carol")
        refusals: list[tuple[type[GatewayError], Callable[[], None]]] = [
            (BadArgumentError, lambda: gw.transfer("bob", cid, **both)),
            (BadArgumentError, lambda: gw.transfer("bob", cid)),
            (BadArgumentError, lambda: gw.transfer("bob", cid, queue="")),
            (BadArgumentError, lambda: gw.transfer("bob", cid, queue="q", note="x" * 100_000)),
            (BadArgumentError, lambda: gw.transfer("bob", cid, to_agent_id="bob")),
            (IllegalTransitionError, lambda: gw.transfer("bob", cid, to_agent_id="carol")),
            (IllegalTransitionError, lambda: gw.transfer("carol", cid, queue="billing")),
            (UnknownIdError, lambda: gw.transfer("nobody", cid, queue="billing")),
            (UnknownIdError, lambda: gw.transfer("bob", "conv-0000000000000000", queue="q")),
        ]
        for error, call in refusals:
            _unchanged(gw, cid, error, call)


def test_a_transfer_without_an_agent_is_refused_in_created(make_gateway: MakeGateway) -> None:
    with make_gateway() as gw:
        cid = gw.start_session("cust-1", "WEB", "v").conversation_id
        _unchanged(
            gw, cid, IllegalTransitionError, lambda: gw.transfer("bob", cid, queue="billing")
        )


def test_a_transfer_through_the_network_gateway(make_gateway: MakeGateway) -> None:
    server = serve(lambda: make_gateway(seed=1), "127.0.0.1:0", TOKEN, MAX_FRAME)
    client = RawClient(server.port)
    try:
        client.authenticate()
        for agent_id in ("bob", "carol"):
            client.call("agent_login", agent_id=agent_id)
        client.call("agent_ready", agent_id="bob")
        ref = client.call("start_session", customer_id="c", channel="WEB", identifier="v")
        cid = ref["conversation_id"]
        client.call("request_agent", conversation_id=cid)
        client.call("agent_ready", agent_id="carol")
        args = {"agent_id": "bob", "conversation_id": cid, "to_agent_id": "carol", "note": "VIP"}
        assert client.call("transfer", **args) is None
        error = client.refused("transfer", {**args, "agent_id": "bob"})
        assert error["type"] == "unknown_id"
        snapshot = client.call("conversation", conversation_id=cid)
        agents = {p["id"]: p["state"] for p in snapshot["participants"] if p["type"] == "AGENT"}
        assert agents == {"bob": "UNSUBSCRIBED", "carol": "SUBSCRIBED"}
        assert snapshot["state"] == "ACTIVE"
    finally:
        client.close()
        server.close()


def test_the_routing_book_gives_a_request_for_a_named_agent_to_that_agent_only() -> None:
    book = RoutingBook(RoutingPolicy())
    book.agent_available("dave", ready=True, free=1, queues=("default",), now=0)
    effects = book.enqueue("r1", "c1", "default", 1, targets=("carol",))
    assert not [e for e in effects if isinstance(e, Assign)]  # dave serves the queue: not his
    assert book.waiting() == {"default": 1}
    effects = book.agent_available("carol", ready=True, free=1, queues=("billing",), now=2)
    assert [(e.request_id, e.agent_id) for e in effects if isinstance(e, Assign)] == [
        ("r1", "carol")
    ]
    assert book.waiting() == {"default": 0}


def test_a_named_agents_lane_goes_once_its_requests_are_over() -> None:
    book = RoutingBook(RoutingPolicy())
    for n in range(50):  # agent ids come from callers: each would leave a lane behind
        book.enqueue(f"r{n}", f"c{n}", "default", n, targets=(f"nobody-{n}",))
        book.cancel(f"r{n}")
    assert book.lanes() == 1  # the queue's own
    assert book.waiting() == {"default": 0}
