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


def pushed(seq: int, conversation_id: str = CONVERSATION) -> PushedEvent:
    return PushedEvent("session:cs-1", conversation_id, event(seq))


def received(
    stored_up_to: list[int], after: int, pushes: list[PushedEvent], count: int
) -> list[int]:
    """The seqs ``in_order`` yields (``count`` of them) when ``pushes`` arrive and the
    conversation holds events 1 to ``stored_up_to[k]`` when read back the k-th time."""
    reads = iter(stored_up_to)

    async def stored(seq: int) -> list[dict[str, Any]]:
        return [event(n) for n in range(seq + 1, next(reads) + 1)]

    async def main() -> list[int]:
        subscriber = Subscriber()
        for each in pushes:
            subscriber.offer(each)
        seqs: list[int] = []
        async for found in in_order(stored, subscriber, CONVERSATION, after):
            seqs.append(found["seq"])
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

    def listen(self, route: Any) -> Any:
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
