"""The web gateway's event hub: a socket's events gapless after its seq, bounded queues."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from runtime.gateway import PushedEvent
from runtime.web.hub import Hub, Overflow, Subscriber, in_order

CONVERSATION = "conv-1"


def event(seq: int) -> dict[str, Any]:
    return {"seq": seq, "name": "CUSTOMER_MESSAGE"}


def closing(seq: int) -> dict[str, Any]:
    return {"seq": seq, "name": "TOPIC_STATE_CHANGED", "data": {"from": "CLOSING", "to": "CLOSED"}}


def pushed(seq: int, conversation_id: str = CONVERSATION, *, final: bool = False) -> PushedEvent:
    return PushedEvent("session:cs-1", conversation_id, event(seq), final)


def received(
    stored_up_to: list[int], after: int, pushes: list[PushedEvent], count: int, closed_at: int = 0
) -> list[int]:
    """The seqs ``in_order`` yields (``count`` of them at most; a final one is marked
    negative) when ``pushes`` arrive and the conversation holds events 1 to
    ``stored_up_to[k]`` when read back the k-th time (``closed_at``: its change to CLOSED)."""
    reads = iter(stored_up_to)

    async def stored(seq: int) -> list[dict[str, Any]]:
        return [closing(n) if n == closed_at else event(n) for n in range(seq + 1, next(reads) + 1)]

    async def main() -> list[int]:
        subscriber = Subscriber()
        for each in pushes:
            subscriber.offer(each)
        seqs: list[int] = []
        async for found, final in in_order(stored, subscriber, CONVERSATION, after):
            seqs.append(-found["seq"] if final else found["seq"])
            if len(seqs) == count:
                break
        return seqs

    return asyncio.run(asyncio.wait_for(main(), 10))


def test_what_the_conversation_has_comes_first_then_pushes_without_repeats() -> None:
    # stored 1-5; pushes 4-7 (a replay overlapping what was read back)
    assert received([5], 2, [pushed(n) for n in (4, 5, 6, 7)], 5) == [3, 4, 5, 6, 7]


def test_a_push_after_a_gap_is_preceded_by_what_is_missing() -> None:
    # 1 to 3 read back at first; 4 and 5 were never pushed, 6 was: 4 to 6 are read back
    assert received([3, 6], 0, [pushed(6)], 6) == [1, 2, 3, 4, 5, 6]


def test_pushes_of_another_conversation_are_not_given() -> None:
    assert received([1], 0, [pushed(2, "conv-other"), pushed(2)], 2) == [1, 2]


def test_a_final_push_after_a_gap_is_given_without_reading_back() -> None:
    # 1 to 3 read back; the session ended there: the final 9 follows with nothing between
    assert received([3], 0, [pushed(9, final=True)], 10) == [1, 2, 3, -9]


def test_events_read_back_that_close_the_conversation_end_with_the_last_one_final() -> None:
    # it closed (5) while the socket joined: 6 closes with it, nothing is waited for
    assert received([6], 2, [], 10, closed_at=5) == [3, 4, 5, -6]


def test_a_final_push_already_read_back_ends_the_events() -> None:
    # 1 to 4 read back before the push of 4 (final) came: it is not given again
    assert received([4], 0, [pushed(4, final=True), pushed(5)], 10) == [1, 2, 3, 4]


def test_a_subscriber_that_falls_behind_overflows_and_gets_nothing_more() -> None:
    async def main() -> None:
        subscriber = Subscriber(limit=2)
        for n in (1, 2, 3):
            subscriber.offer(pushed(n))
        with pytest.raises(Overflow):
            await subscriber.take()

    asyncio.run(main())


class _Engine:
    """What the hub uses of an AsyncGateway: pushes it listens to, and unsubscribe."""

    def __init__(self) -> None:
        self.unsubscribed: list[str] = []
        self.route: Any = None  # what the hub is handed pushed events through

    def listen(self, route: Any) -> Any:
        self.route = route
        return lambda: None

    async def unsubscribe(self, subscription: str) -> None:
        self.unsubscribed.append(subscription)


def test_a_socket_gone_while_its_subscription_is_made_lets_go_of_it_once_made() -> None:
    async def main() -> tuple[list[str], int]:
        engine = _Engine()
        hub = Hub(engine)  # type: ignore[arg-type]
        made = asyncio.Event()

        async def start() -> None:
            await made.wait()

        holding = asyncio.ensure_future(hub.hold(Subscriber(), "session:s1", start))
        await asyncio.sleep(0)  # the engine's subscription is being made
        holding.cancel()  # the socket closed meanwhile
        with contextlib.suppress(asyncio.CancelledError):
            await holding
        made.set()
        for _ in range(5):  # the subscription is made, then ended
            await asyncio.sleep(0)
        return engine.unsubscribed, hub.holders("session:s1")

    assert asyncio.run(main()) == (["session:s1"], 0)


def test_a_session_subscription_ends_at_its_final_event_without_an_unsubscribe() -> None:
    async def main() -> tuple[list[str], int, list[PushedEvent]]:
        engine = _Engine()
        hub = Hub(engine)  # type: ignore[arg-type]
        subscriber = Subscriber()

        async def start() -> None:
            return None

        await hub.hold(subscriber, "session:cs-1", start)
        engine.route([pushed(7, final=True)])  # as the gateway hands it on
        holders = hub.holders("session:cs-1")
        await hub.release(subscriber, "session:cs-1")
        return engine.unsubscribed, holders, await subscriber.take()

    unsubscribed, holders, given = asyncio.run(main())
    assert (unsubscribed, holders, [p.event["seq"] for p in given]) == ([], 0, [7])
