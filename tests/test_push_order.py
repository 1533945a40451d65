"""Pushed events reach the gateway's caller in seq order, with no gap, whatever order the
transport brings them in (runtime/gateway_order.py; the transport is simulated by handing the
gateway its messages out of order, or not at all)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from actors.messages import Batch, Deliver, Pushed
from runtime import testing
from runtime.gateway import Gateway, PushedEvent, SessionRef
from runtime.gateway_order import PushOrder

SUB = "session:cs-1"


def event(seq: int) -> PushedEvent:
    return PushedEvent(SUB, "conv-1", {"seq": seq, "name": f"E{seq}"})


def seqs(events: list[PushedEvent]) -> list[int]:
    return [e.event["seq"] for e in events]


def test_session_events_that_come_out_of_order_are_handed_over_in_order() -> None:
    order = PushOrder(gap_wait_s=1.0)
    order.start(SUB, "conv-1", 2)
    assert seqs(order.add(event(5), None, 0.0)) == []
    assert seqs(order.add(event(4), None, 0.0)) == []
    assert seqs(order.add(event(3), None, 0.0)) == [3, 4, 5]
    assert seqs(order.add(event(4), None, 0.0)) == []  # a repeat is dropped
    assert order.gaps(5.0) == []


def test_a_gap_is_named_after_the_wait_and_filled_from_the_conversation() -> None:
    order = PushOrder(gap_wait_s=1.0)
    order.start(SUB, "conv-1", 2)
    assert seqs(order.add(event(5), None, 10.0)) == []
    assert order.gaps(10.5) == []  # the missing ones may still come
    (gap,) = order.gaps(11.0)
    assert (gap.after_seq, gap.through_seq) == (2, 4)
    read = [{"seq": s, "name": f"E{s}"} for s in range(3, 7)]  # what the conversation has
    assert seqs(order.fill(gap, read, 11.0)) == [3, 4, 5]
    assert not order.waiting() and order.last(SUB, "conv-1") == 5


def test_agent_events_follow_their_previous_seq_not_seq_minus_one() -> None:
    """An agent's desk gets only some of a conversation's events: each names its previous."""
    order = PushOrder(gap_wait_s=1.0)
    agent = "agent:alice"

    def pushed(seq: int, previous: int) -> list[int]:
        return seqs(order.add(PushedEvent(agent, "conv-1", {"seq": seq}), previous, 0.0))

    assert pushed(12, 7) == []  # 7 has not come yet
    assert pushed(7, 0) == [7, 12]  # the first pushed to this desk, then the one after it
    assert pushed(20, 15) == []  # left at 12, joined again: 15 was the first after that
    assert pushed(15, 12) == [15, 20]


def test_an_agent_event_overtaken_by_a_fresh_start_is_not_handed_over_late() -> None:
    """Pushed to the desk before it subscribed again (the agent's entity starts afresh)."""
    order = PushOrder(gap_wait_s=1.0)
    agent = "agent:alice"
    assert order.add(PushedEvent(agent, "conv-1", {"seq": 12}), 7, 0.0) == []
    assert seqs(order.add(PushedEvent(agent, "conv-1", {"seq": 15}), 0, 0.0)) == [15]
    assert not order.waiting()


def inject(gw: Gateway, ref: SessionRef, events: list[dict[str, Any]]) -> None:
    """Hand the gateway pushed events as the transport would, in the order given."""
    sub = f"session:{ref.channel_session_id}"
    items = tuple(Deliver("", Pushed(sub, ref.conversation_id, e)) for e in events)
    testing.take_in(gw, Batch(0, items))


def test_the_gateway_hands_over_pushed_events_in_seq_order(
    make_gateway: Callable[..., Gateway],
) -> None:
    gw = make_gateway()
    ref = gw.start_session("cust-1", "WEB", "v")
    current = len(gw.events(ref.conversation_id))
    gw.subscribe_session(ref.channel_session_id, after_seq=current)  # nothing to replay
    assert gw.pushed() == []
    inject(gw, ref, [{"seq": current + 2, "name": "B"}, {"seq": current + 1, "name": "A"}])
    assert [p.event["name"] for p in gw.pushed()] == ["A", "B"]


def test_the_gateway_reads_a_missing_pushed_event_back_instead_of_skipping_it(
    make_gateway: Callable[..., Gateway],
) -> None:
    gw = make_gateway()
    ref = gw.start_session("cust-1", "WEB", "v")
    current = gw.subscribe_session(ref.channel_session_id)
    assert [p.event["seq"] for p in gw.pushed()] == list(range(1, current + 1))
    lost: list[int] = []

    def lose_one(message: Any) -> Any:  # the transport gives up the first pushed event
        if isinstance(message, Batch) and not lost:
            kept = []
            for item in message.items:
                if isinstance(item.payload, Pushed) and not lost:
                    lost.append(item.payload.event["seq"])
                else:
                    kept.append(item)
            message = Batch(message.now, tuple(kept))
        return message

    testing.push_order(gw).gap_wait_s = 0.0  # a held event is a gap at once (no waiting)
    with testing.arrivals_through(gw, lose_one):
        gw.customer_message(ref.channel_session_id, "hello")
    assert lost == [current + 1]
    pushed = [p.event for p in gw.pushed()]
    assert pushed == gw.events(ref.conversation_id, after_seq=current)
