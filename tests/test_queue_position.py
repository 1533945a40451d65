"""Queue position and estimated wait (QUEUE_POSITION): told when a request is queued and when
they change, at most once per ``routing.position_interval_seconds`` (docs/EVENTS.md,
docs/DECISIONS.md "Queue position and estimated wait")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from domain.routing import (
    ArmRoutingAlarm,
    QueuePosition,
    RoutingBook,
    RoutingEffect,
    RoutingPolicy,
    RoutingTimerKind,
)
from runtime.gateway import Gateway
from tests.conftest import MakeGateway

INTERVAL_MS = 10_000


def book(**kwargs: Any) -> RoutingBook:
    return RoutingBook(RoutingPolicy(position_interval_ms=INTERVAL_MS, **kwargs))


def told(effects: Sequence[RoutingEffect]) -> list[tuple[str, int, int | None]]:
    return [
        (e.request_id, e.position, e.estimated_wait_seconds)
        for e in effects
        if isinstance(e, QueuePosition)
    ]


def position_alarms(effects: Sequence[RoutingEffect]) -> list[ArmRoutingAlarm]:
    return [
        e
        for e in effects
        if isinstance(e, ArmRoutingAlarm) and e.key.kind is RoutingTimerKind.POSITION
    ]


def answer(routing: RoutingBook, request_id: str, now: int) -> None:
    """``request_id`` is queued at ``now`` and answered at once by agent ``a``."""
    routing.agent_available("a", ready=True, free=1, queues=("q",), now=now)
    routing.enqueue(request_id, f"c-{request_id}", "q", now)
    routing.accepted(request_id, "a", now)


def test_a_request_queued_without_an_agent_is_told_its_position() -> None:
    routing = book()
    assert told(routing.enqueue("r1", "c1", "q", 0)) == [("r1", 1, None)]
    assert told(routing.enqueue("r2", "c2", "q", 0)) == [("r2", 2, None)]


def test_nothing_is_told_when_the_interval_is_off() -> None:
    routing = RoutingBook(RoutingPolicy())
    assert told(routing.enqueue("r1", "c1", "q", 0)) == []


def test_a_request_matched_at_once_is_told_nothing() -> None:
    routing = book()
    routing.agent_available("a", ready=True, free=1, queues=("q",), now=0)
    assert told(routing.enqueue("r1", "c1", "q", 0)) == []


def test_a_changed_position_is_told_once_the_interval_has_passed() -> None:
    routing = book()
    routing.enqueue("r1", "c1", "q", 0)
    routing.enqueue("r2", "c2", "q", 0)
    effects = routing.agent_available("a", ready=True, free=1, queues=("q",), now=1_000)
    assert told(effects) == []
    (alarm,) = position_alarms(effects)
    assert alarm.at == INTERVAL_MS
    assert told(routing.alarm(alarm.key, alarm.token, alarm.at)) == [("r2", 1, None)]


def test_an_unchanged_position_is_not_told_again() -> None:
    routing = book()
    routing.enqueue("r1", "c1", "q", 0)
    effects = routing.enqueue("r2", "c2", "q", 20_000)
    assert told(effects) == [("r2", 2, None)]
    assert position_alarms(effects) == []


def test_the_estimate_is_the_position_times_the_mean_time_between_recent_answers() -> None:
    routing = book()
    for n, at in enumerate((0, 30_000, 60_000)):
        answer(routing, f"done{n}", at)
    routing.agent_available("a", ready=False, free=0, queues=("q",), now=61_000)
    assert told(routing.enqueue("r1", "c1", "q", 61_000)) == [("r1", 1, 30)]
    assert told(routing.enqueue("r2", "c2", "q", 61_000)) == [("r2", 2, 60)]


def test_the_estimate_rounds_up_to_whole_seconds() -> None:
    routing = book()
    answer(routing, "done0", 0)
    answer(routing, "done1", 1_500)
    routing.agent_available("a", ready=False, free=0, queues=("q",), now=2_000)
    assert told(routing.enqueue("r1", "c1", "q", 2_000)) == [("r1", 1, 2)]


def test_a_request_for_a_named_agent_is_told_nothing() -> None:
    routing = book()
    assert told(routing.enqueue("r1", "c1", "q", 0, targets=("bob",))) == []


# --- through the embedded gateway --------------------------------------------------------


def positions(gw: Gateway, conversation_id: str) -> list[dict[str, Any]]:
    return [e["data"] for e in gw.events(conversation_id) if e["name"] == "QUEUE_POSITION"]


def test_queued_customers_are_told_their_positions_and_changes_at_most_per_interval(
    make_gateway: MakeGateway,
) -> None:
    config = {"routing": {"position_interval_seconds": 10, "request_ttl_seconds": 600}}
    with make_gateway(**config) as gw:
        first = gw.start_session("cust-1", "WEB", "v1")
        second = gw.start_session("cust-2", "WEB", "v2")
        gw.request_agent(first.conversation_id)
        gw.request_agent(second.conversation_id)
        assert positions(gw, first.conversation_id) == [
            {"queue": "default", "position": 1, "estimated_wait_seconds": None}
        ]
        assert positions(gw, second.conversation_id) == [
            {"queue": "default", "position": 2, "estimated_wait_seconds": None}
        ]
        gw.agent_login("alice", max_conversations=1)
        gw.agent_ready("alice")  # takes the first: the second is now first in line
        assert len(positions(gw, second.conversation_id)) == 1
        gw.advance(10)
        assert positions(gw, second.conversation_id)[1:] == [
            {"queue": "default", "position": 1, "estimated_wait_seconds": None}
        ]
        assert len(positions(gw, first.conversation_id)) == 1


def test_an_agents_consult_tells_the_customer_no_position(make_gateway: MakeGateway) -> None:
    with make_gateway(routing={"position_interval_seconds": 10}) as gw:
        gw.agent_login("alice")
        gw.agent_ready("alice")
        ref = gw.start_session("cust-1", "WEB", "v1")
        gw.request_agent(ref.conversation_id)
        gw.consult("alice", ref.conversation_id, queue="experts")
        assert positions(gw, ref.conversation_id) == []


def test_the_estimate_follows_the_queues_answers_through_the_gateway(
    make_gateway: MakeGateway,
) -> None:
    config = {
        "routing": {"position_interval_seconds": 10, "request_ttl_seconds": 600},
        "timers": {"agent_sla": {"seconds": 600}},
    }
    with make_gateway(**config) as gw:
        gw.agent_login("alice", max_conversations=3)
        gw.agent_ready("alice")
        for n, gap in enumerate((0, 40, 20)):  # answered at 0 s, 40 s and 60 s
            gw.advance(gap)
            ref = gw.start_session(f"cust-{n}", "WEB", f"v{n}")
            gw.request_agent(ref.conversation_id)
        waiting = gw.start_session("cust-9", "WEB", "v9")  # alice is full
        gw.request_agent(waiting.conversation_id)
        assert positions(gw, waiting.conversation_id) == [
            {"queue": "default", "position": 1, "estimated_wait_seconds": 30}
        ]


def test_the_position_is_pushed_to_the_customers_session(make_gateway: MakeGateway) -> None:
    with make_gateway(routing={"position_interval_seconds": 10}) as gw:
        ref = gw.start_session("cust-1", "WEB", "v1")
        gw.subscribe_session(ref.channel_session_id)
        gw.pushed()
        gw.request_agent(ref.conversation_id)
        pushed = [p.event for p in gw.pushed() if p.event["name"] == "QUEUE_POSITION"]
        assert [e["data"]["position"] for e in pushed] == [1]
