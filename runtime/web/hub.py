"""Pushed events for WebSocket subscribers: one engine subscription per channel session or
agent, however many sockets watch it, and each socket's events in seq order with no gap.

The :class:`Hub` holds the engine subscription while at least one :class:`Subscriber` holds
it (the first starts it, the last ends it) and hands every pushed event to the subscribers of
its subscription. Each subscriber's queue is bounded: one that does not keep up is marked
*overflowed* and its socket is closed with the seq to resume from, so that it never holds up
the engine or other sockets. :func:`in_order` turns a subscriber's events for one conversation
into a gapless sequence after a given seq, reading back from the conversation what the socket
has not had (its replay, or events missed while it joined).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

from domain.errors import CxError, ErrorKind
from domain.events import closes_conversation, for_customer
from domain.ids import SubscriptionKind, parse_subscription
from infra.logs import get_logger
from runtime.aio import AsyncGateway
from runtime.gateway import GatewayError, PushedEvent

__all__ = ["Hub", "Overflow", "Subscriber", "ended", "in_order"]

log = get_logger("cx.web")

#: Events queued for one socket at most before it is closed (with its resume point).
SUBSCRIBER_QUEUE: Final = 1024


class Overflow(CxError):
    """The socket did not read its events fast enough; ``resume`` says where to resume from
    (the last seq written to it), when known."""

    kind = ErrorKind.UNAVAILABLE

    def __init__(self, resume: dict[str, Any] | None = None) -> None:
        super().__init__("the socket did not read its events fast enough")
        self.resume = resume


class Subscriber:
    """One socket's queue of pushed events."""

    def __init__(self, limit: int = SUBSCRIBER_QUEUE) -> None:
        self._limit = limit
        self._events: collections.deque[PushedEvent] = collections.deque()
        self._arrived = asyncio.Event()
        self.overflowed = False

    def offer(self, pushed: PushedEvent) -> None:
        if self.overflowed:
            return
        if len(self._events) >= self._limit:
            self.overflowed = True
            self._events.clear()
        else:
            self._events.append(pushed)
        self._arrived.set()

    async def take(self) -> list[PushedEvent]:
        """What has arrived (waiting for the first); Overflow once it fell behind."""
        while not self._events and not self.overflowed:
            self._arrived.clear()
            await self._arrived.wait()
        if self.overflowed:
            raise Overflow
        events = list(self._events)
        self._events.clear()
        return events


class Hub:
    def __init__(self, gateway: AsyncGateway) -> None:
        self._gateway = gateway
        self._holders: dict[str, set[Subscriber]] = {}
        self._started: dict[str, asyncio.Future[Any]] = {}
        self._ending: set[asyncio.Future[None]] = set()  # unsubscribes under way
        self.stop_listening = gateway.listen(self._route)

    def holders(self, subscription: str) -> int:
        return len(self._holders.get(subscription, ()))

    async def hold(
        self, subscriber: Subscriber, subscription: str, start: Callable[[], Awaitable[Any]]
    ) -> None:
        """``subscriber`` gets the events of ``subscription`` from now on; the first holder
        starts the engine's subscription with ``start()`` (its error is raised to every
        holder waiting for it)."""
        started = self._started.get(subscription)
        if started is None:
            started = asyncio.ensure_future(start())
            self._started[subscription] = started
        self._holders.setdefault(subscription, set()).add(subscriber)
        try:
            await asyncio.shield(started)
        except BaseException:
            if started.done() and (started.cancelled() or started.exception() is not None):
                # the engine's subscription was not made: nothing to end
                if self._started.get(subscription) is started:
                    del self._started[subscription]
                await self.release(subscriber, subscription, engine=False)
            else:  # this holder went away (its socket closed) while it was being made
                await self.release(subscriber, subscription)
            raise

    async def release(
        self, subscriber: Subscriber, subscription: str, *, engine: bool = True
    ) -> None:
        """``subscriber`` lets go; the last one ends the engine's subscription (unless it
        ended with its conversation's final event: nothing is left to end)."""
        holders = self._holders.get(subscription)
        if holders is None:
            return
        holders.discard(subscriber)
        if holders:
            return
        del self._holders[subscription]
        started = self._started.pop(subscription, None)
        if not engine or started is None:
            return
        if started.done():
            await self._unsubscribe(subscription)
            return

        def made(future: asyncio.Future[Any]) -> None:  # still being made: end it once it is
            ok = not future.cancelled() and future.exception() is None
            if ok and subscription not in self._holders:
                ending = asyncio.ensure_future(self._unsubscribe(subscription))
                self._ending.add(ending)
                ending.add_done_callback(self._ending.discard)

        started.add_done_callback(made)

    async def _unsubscribe(self, subscription: str) -> None:
        try:
            await self._gateway.unsubscribe(subscription)
        except GatewayError as error:  # e.g. its conversation closed: nothing is pushed
            log.debug("engine unsubscribe failed", subscription=subscription, error=error.kind)

    def _route(self, events: list[PushedEvent]) -> None:
        for pushed in events:
            for subscriber in self._holders.get(pushed.subscription, ()):
                subscriber.offer(pushed)
            if pushed.final and parse_subscription(pushed.subscription)[0] is SubscriptionKind.SESSION:
                # the gateway has let go of it: its holders keep what they were given, and
                # release nothing; a socket that comes later starts afresh (and is refused)
                self._holders.pop(pushed.subscription, None)
                self._started.pop(pushed.subscription, None)


async def in_order(
    stored: Callable[[int], Awaitable[list[dict[str, Any]]]],
    subscriber: Subscriber,
    conversation_id: str,
    after_seq: int,
) -> AsyncIterator[tuple[dict[str, Any], bool]]:
    """The conversation's events after ``after_seq``, each once, in seq order with no gap,
    each with whether it is the final one (nothing follows it: the iteration ends there).
    What the conversation already has comes first (``stored(seq)``: its events after
    ``seq``), then each pushed event; one that comes after a gap is preceded by what is
    missing, read back (but for what only agents see: whispers). A final event pushed after a
    gap is not (as the engine does, see docs/PROTOCOL.md). Events read back that close the
    conversation are its last: the last of them is final. A transient notice (typing: no
    seq) is passed on as it comes."""
    last = after_seq

    async def read_back() -> list[tuple[dict[str, Any], bool]]:
        nonlocal last
        visible = [e for e in await stored(last) if e["seq"] > last and for_customer(e.get("data", {}))]
        if visible:
            last = visible[-1]["seq"]
        over = any(closes_conversation(e) for e in visible)
        return [(event, over and event is visible[-1]) for event in visible]

    batch = await read_back()
    for each in batch:
        yield each
    if batch and batch[-1][1]:
        return
    while True:
        for pushed in await subscriber.take():
            if pushed.conversation_id != conversation_id:
                continue
            seq = pushed.event["seq"]
            if seq is None:
                yield pushed.event, False
                continue
            if pushed.final and seq <= last:  # had already (read back): nothing follows
                return
            if seq > last + 1 and not pushed.final:
                batch = await read_back()
                for each in batch:
                    yield each
                if batch and batch[-1][1]:
                    return
            if seq <= last:
                continue
            last = seq
            yield pushed.event, pushed.final
            if pushed.final:
                return


async def ended(
    stored: Callable[[int], Awaitable[list[dict[str, Any]]]], after_seq: int
) -> AsyncIterator[tuple[dict[str, Any], bool]]:
    """The events after ``after_seq`` of a conversation that has CLOSED (what a socket that
    comes late missed), but for what only agents see, the last one final."""
    visible = [e for e in await stored(after_seq) if e["seq"] > after_seq and for_customer(e.get("data", {}))]
    for event in visible:
        yield event, event is visible[-1]


async def stop(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait for it to end."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
