"""The sticky agent: a returning customer's request is offered first to the agent of its
room's last conversation, for ``routing.sticky_agent_seconds``, then to the queue
(docs/DECISIONS.md, "Sticky agent")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from domain.routing import (
    ArmRoutingAlarm,
    Assign,
    Report,
    ReportName,
    RoutingBook,
    RoutingEffect,
    RoutingPolicy,
    RoutingTimerKind,
    SetNotReady,
)
from runtime.gateway import Gateway
from tests.conftest import MakeGateway

STICKY_MS = 10_000


def book(**kwargs: Any) -> RoutingBook:
    return RoutingBook(RoutingPolicy(**{"sticky_agent_ms": STICKY_MS, **kwargs}))


def assigns(effects: Sequence[RoutingEffect]) -> list[tuple[str, str]]:
    return [(e.request_id, e.agent_id) for e in effects if isinstance(e, Assign)]


def ready(routing: RoutingBook, agent: str, now: int, free: int = 1) -> None:
    routing.agent_available(agent, ready=True, free=free, queues=("q",), now=now)


def served_by_a(routing: RoutingBook) -> None:
    """Room R's conversation c1 was answered by ``a`` at 5 s; ``b`` has waited since 0."""
    ready(routing, "b", 0)
    ready(routing, "a", 0)
    routing.agent_available("b", ready=False, free=1, queues=("q",), now=1)
    assert assigns(routing.enqueue("r1", "c1", "q", 5_000, room="R")) == [("r1", "a")]
    routing.accepted("r1", "a", 5_000)
    ready(routing, "b", 6_000)
    ready(routing, "a", 9_000)  # a free again, b has waited longer


def test_a_returning_customers_request_goes_first_to_its_rooms_last_agent() -> None:
    routing = book()
    served_by_a(routing)
    assert assigns(routing.enqueue("r2", "c2", "q", 10_000, room="R")) == [("r2", "a")]


def test_without_the_setting_the_longest_waiting_agent_gets_it() -> None:
    routing = book(sticky_agent_ms=None)
    served_by_a(routing)
    assert assigns(routing.enqueue("r2", "c2", "q", 10_000, room="R")) == [("r2", "b")]


def test_another_request_of_the_same_conversation_is_not_sticky() -> None:
    routing = book()
    served_by_a(routing)
    assert assigns(routing.enqueue("r2", "c1", "q", 10_000, room="R")) == [("r2", "b")]


def test_a_last_agent_not_ready_sends_the_request_straight_to_the_queue() -> None:
    routing = book()
    served_by_a(routing)
    routing.agent_available("a", ready=False, free=1, queues=("q",), now=9_500)
    effects = routing.enqueue("r2", "c2", "q", 10_000, room="R")
    assert assigns(effects) == [("r2", "b")]
    assert not any(
        isinstance(e, ArmRoutingAlarm) and e.key.kind is RoutingTimerKind.STICKY for e in effects
    )


def test_an_offer_the_last_agent_leaves_past_the_sticky_time_goes_to_the_queue() -> None:
    routing = book(auto_accept=False)
    ready(routing, "b", 0)
    ready(routing, "a", 0)
    routing.agent_available("b", ready=False, free=1, queues=("q",), now=1)
    routing.enqueue("r1", "c1", "q", 5_000, room="R")
    routing.accepted("r1", "a", 5_000)
    ready(routing, "a", 9_000)
    routing.agent_available("b", ready=False, free=1, queues=("q",), now=9_000)
    effects = routing.enqueue("r2", "c2", "q", 10_000, room="R")
    assert assigns(effects) == [("r2", "a")]
    (sticky,) = [
        e
        for e in effects
        if isinstance(e, ArmRoutingAlarm) and e.key.kind is RoutingTimerKind.STICKY
    ]
    assert sticky.at == 10_000 + STICKY_MS
    ready(routing, "b", 12_000)  # b is free, but the request is a's for now
    effects = routing.alarm(sticky.key, sticky.token, sticky.at)
    reports = [(e.name, e.agent_id) for e in effects if isinstance(e, Report)]
    assert reports == [(ReportName.RONA, "a"), (ReportName.AGENT_OFFERED, "b")]
    assert not any(isinstance(e, SetNotReady) for e in effects)
    assert assigns(effects) == [("r2", "b")]


# --- through the embedded gateway --------------------------------------------------------


def primary_agent(gw: Gateway, conversation_id: str) -> str | None:
    for p in gw.conversation(conversation_id)["participants"]:
        if p["state"] == "SUBSCRIBED" and p["role"] == "PRIMARY" and p["id"] != "bot":
            return str(p["id"])
    return None


def returning_customer(gw: Gateway) -> str:
    """cust-1's first conversation is answered by alice and closed; bob, logged in first,
    has waited longer than alice since: cust-1 comes back and asks for an agent."""
    gw.agent_login("bob", max_conversations=1)
    gw.advance(1)
    gw.agent_login("alice", max_conversations=1)
    gw.agent_ready("alice")
    first = gw.start_session("cust-1", "WEB", "v1")
    gw.request_agent(first.conversation_id)
    assert primary_agent(gw, first.conversation_id) == "alice"
    gw.agent_ready("bob")
    gw.advance(5)
    gw.end_conversation(first.conversation_id)
    gw.advance(5)
    again = gw.start_session("cust-1", "WEB", "v1")
    assert again.conversation_id != first.conversation_id
    gw.request_agent(again.conversation_id)
    return again.conversation_id


def test_a_returning_customer_gets_the_agent_of_its_last_conversation(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway(routing={"sticky_agent_seconds": 30}) as gw:
        assert primary_agent(gw, returning_customer(gw)) == "alice"


def test_without_a_sticky_agent_the_returning_customer_gets_the_longest_waiting_agent(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway() as gw:
        assert primary_agent(gw, returning_customer(gw)) == "bob"


def test_a_sticky_offer_left_unaccepted_goes_to_the_queue_and_the_agent_stays_ready(
    make_gateway: MakeGateway,
) -> None:
    config = {"auto_accept": False, "sticky_agent_seconds": 10, "accept_timeout_seconds": 60}
    with make_gateway(routing=config) as gw:
        gw.agent_login("alice", max_conversations=1)
        gw.agent_ready("alice")
        first = gw.start_session("cust-1", "WEB", "v1")
        gw.request_agent(first.conversation_id)
        gw.agent_join("alice", first.conversation_id)  # accepts the offer
        gw.end_conversation(first.conversation_id)
        gw.agent_login("bob", max_conversations=1)
        gw.agent_ready("bob")
        gw.advance(5)
        again = gw.start_session("cust-1", "WEB", "v1")
        gw.request_agent(again.conversation_id)
        offers = [e for e in gw.events(again.conversation_id) if e["name"] == "AGENT_OFFERED"]
        assert [e["data"]["agent_id"] for e in offers] == ["alice"]
        gw.advance(10)
        reports = [
            (e["name"], e["data"]["agent_id"])
            for e in gw.events(again.conversation_id)
            if e["name"] in ("AGENT_OFFERED", "RONA")
        ]
        assert reports == [("AGENT_OFFERED", "alice"), ("RONA", "alice"), ("AGENT_OFFERED", "bob")]
        (alice,) = [a for a in gw.agents() if a["agent_id"] == "alice"]
        assert alice["presence"] == "READY"


def test_a_last_agent_not_ready_leaves_the_returning_customer_to_the_queue(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway(routing={"sticky_agent_seconds": 30}) as gw:
        gw.agent_login("bob", max_conversations=1)
        gw.agent_login("alice", max_conversations=1)
        gw.agent_ready("alice")
        first = gw.start_session("cust-1", "WEB", "v1")
        gw.request_agent(first.conversation_id)
        gw.end_conversation(first.conversation_id)
        gw.agent_not_ready("alice")
        gw.agent_ready("bob")
        again = gw.start_session("cust-1", "WEB", "v1")
        gw.request_agent(again.conversation_id)
        assert primary_agent(gw, again.conversation_id) == "bob"
