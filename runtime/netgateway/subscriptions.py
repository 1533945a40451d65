"""The network gateway's subscription table: which connection holds which engine subscription.

One engine subscription (``session:<id>`` or ``agent:<id>``) serves every connection that holds
it; the engine is unsubscribed when the last one lets go. Pushed events are routed to the
holders: a connection is given each seq of a session once, in order (a replay asked by another
connection is not given again; a gap is filled from the conversation's events first, or the
connection is closed, told where to resume). A session subscription ends with its conversation's
final event: every connection lets go of it. Used only by the worker thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from domain.events import for_customer
from domain.ids import MalformedIdError, parse_subscription
from infra.logs import get_logger
from runtime.gateway import BadArgumentError, PushedEvent, UnknownIdError
from runtime.netgateway.codec import push

__all__ = ["EngineSide", "Holding", "Peer", "SubscriptionTable"]

log = get_logger("cx.netgateway")


class Peer(Protocol):
    """A client connection as the worker sees it."""

    name: str

    def deliver(self, frame: bytes, *, is_answer: bool) -> None:
        """Queue ``frame`` for the client (thread-safe). ``is_answer``: it answers a request."""

    def drop(self, reason: str) -> None:
        """Close the connection (thread-safe)."""


class EngineSide(Protocol):
    """What the table asks of the engine side (the worker)."""

    def read_events(self, conversation_id: str, after_seq: int) -> list[dict[str, Any]]:
        """A conversation's events after ``after_seq`` (raises when they cannot be read)."""

    def drop_subscription(self, subscription: str) -> None:
        """No connection holds ``subscription`` any more: unsubscribe the engine."""


@dataclass(slots=True)
class Holding:
    """One connection's hold on a subscription. Sessions: ``position`` is the last seq given
    to it (or its ``after_seq``); an event at or below it is not given again (a replay for
    another connection, or after a reconnection)."""

    session: bool
    position: int = 0


class SubscriptionTable:
    """Holders of every subscription, at most ``limit`` subscriptions a connection."""

    def __init__(self, engine: EngineSide, limit: int) -> None:
        self._engine = engine
        self._limit = limit
        self._subs: dict[str, dict[Peer, Holding]] = {}
        self._held: dict[Peer, set[str]] = {}

    def __len__(self) -> int:
        return len(self._subs)

    def items(self) -> Iterator[tuple[str, dict[Peer, Holding]]]:
        """Each subscription and its holders (a copy: the table may change meanwhile)."""
        return iter(list(self._subs.items()))

    def clear(self) -> None:
        self._subs.clear()
        self._held.clear()

    def check_room(self, peer: Peer, subscription: str) -> None:
        held = self._held.get(peer, set())
        if subscription not in held and len(held) >= self._limit:
            raise BadArgumentError(
                f"this connection already holds {len(held)} subscriptions (the limit)"
            )

    def hold(self, peer: Peer, subscription: str, holding: Holding) -> None:
        self._subs.setdefault(subscription, {})[peer] = holding
        self._held.setdefault(peer, set()).add(subscription)

    def unsubscribe(self, peer: Peer, subscription: str) -> None:
        try:
            parse_subscription(subscription)
        except MalformedIdError as error:
            raise BadArgumentError(f"unsubscribe: {error}") from None
        if peer not in self._subs.get(subscription, {}):
            raise UnknownIdError(
                f"unsubscribe: this connection has no subscription {subscription[:140]}"
            )
        self.release(peer, subscription)

    def release(self, peer: Peer, subscription: str) -> None:
        holders = self._subs.get(subscription, {})
        holders.pop(peer, None)
        held = self._held.get(peer)
        if held is not None:
            held.discard(subscription)
            if not held:
                del self._held[peer]
        if holders:
            return
        self._subs.pop(subscription, None)
        self._engine.drop_subscription(subscription)

    def release_all(self, peer: Peer) -> None:
        for subscription in sorted(self._held.get(peer, ())):
            self.release(peer, subscription)

    def route(self, events: list[PushedEvent]) -> None:
        """Give each pushed event to the connections holding its subscription. The gateway
        hands a session's events over in seq order; a connection is given each seq once, in
        order: one it was given already is a replay (asked by another connection) and is not
        given again, and one beyond the next it needs is preceded by the missing ones, read
        from the conversation (or, if they cannot be read, the connection is closed with the
        seq to subscribe again from)."""
        for pushed in events:
            holders = self._subs.get(pushed.subscription)
            if not holders:
                continue
            seq = pushed.event.get("seq")
            frame: bytes | None = None
            for peer, holding in list(holders.items()):
                if holding.session and isinstance(seq, int):
                    if seq <= holding.position:
                        continue  # a replay it has had already
                    # a final event skips what a session missed after it ended, by design
                    gap = seq > holding.position + 1 and not pushed.final
                    if gap and not self._catch_up(peer, holding, pushed):
                        continue
                    holding.position = seq
                if frame is None:
                    frame = _encode(pushed)
                    if frame is None:
                        break
                peer.deliver(frame, is_answer=False)
            if pushed.final and any(holding.session for holding in holders.values()):
                self._ended(pushed.subscription)

    def _ended(self, subscription: str) -> None:
        """A session subscription's final event is delivered: the engine has ended it, so
        every connection lets go of it (nothing to unsubscribe, nothing to restore after the
        engine restarts)."""
        for peer in self._subs.pop(subscription, {}):
            held = self._held.get(peer)
            if held is not None:
                held.discard(subscription)
                if not held:
                    del self._held[peer]

    def _catch_up(self, peer: Peer, holding: Holding, pushed: PushedEvent) -> bool:
        """Give ``peer`` the session's events between its position and ``pushed``; False if
        they cannot be read (the connection is closed, told where to resume)."""
        seq = pushed.event["seq"]
        try:
            missing = [
                e
                for e in self._engine.read_events(pushed.conversation_id, holding.position)
                if isinstance(e.get("seq"), int) and holding.position < e["seq"] < seq
                and for_customer(e.get("data", {}))  # a session is never given a whisper
            ]
        except Exception as error:
            log.warning(
                "pushed events missed and not readable",
                subscription=pushed.subscription,
                conversation_id=pushed.conversation_id,
                after_seq=holding.position,
                error=str(error),
            )
            self.release(peer, pushed.subscription)
            peer.drop(
                f"pushed events of {pushed.subscription} after seq {holding.position} could not"
                f" be delivered; subscribe again with after_seq {holding.position}"
            )
            return False
        for event in missing:
            frame = _encode(PushedEvent(pushed.subscription, pushed.conversation_id, event))
            if frame is not None:
                peer.deliver(frame, is_answer=False)
            holding.position = event["seq"]
        return True


def _encode(pushed: PushedEvent) -> bytes | None:
    try:
        return push(pushed.subscription, pushed.conversation_id, pushed.event, pushed.final)
    except (TypeError, ValueError, OverflowError) as error:
        log.error("pushed event not encodable", error=str(error))
        return None
