"""A gateway's pushed events: taken in order, gaps read back, subscriptions the engine lost
made again. A part of :class:`runtime.gateway_core.EngineLink` (its methods and state)."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from actors.messages import Pushed, Subscribe
from domain.events import EventName, for_customer
from domain.ids import SubscriptionKind, parse_subscription
from infra.logs import get_logger
from runtime.gateway_cache import LocationCache
from runtime.gateway_order import PushOrder
from runtime.gateway_types import GatewayError, PushedEvent, UnavailableError

log = get_logger("cx.gateway")


def _is_session(subscription: str) -> bool:
    return parse_subscription(subscription)[0] is SubscriptionKind.SESSION


class PushedEvents:
    me: Any
    locations: LocationCache
    order: PushOrder
    pushed: deque[PushedEvent]
    subscriptions: set[str]  # what to subscribe again after a restart
    resubscribe: set[str]  # subscriptions the engine lost

    def _moved(self, conversations: set[str]) -> None:
        """These conversations' host died: they are rebuilt elsewhere without subscribers."""
        for subscription in self.subscriptions:
            kind, ident = parse_subscription(subscription)
            if kind is SubscriptionKind.SESSION and self.locations.conversation_of(ident) in conversations:
                self.resubscribe.add(subscription)

    def _take_pushed(self, pushed: Pushed) -> None:
        event = PushedEvent(
            pushed.subscription, pushed.conversation_id, pushed.event, pushed.final
        )
        if event.event.get("name") == EventName.ROOM_MESSAGE:  # numbered per room: not ordered
            self.pushed.append(event)
            return
        ready = self.order.add(event, pushed.previous, time.monotonic())
        self.pushed.extend(ready)
        for each in ready:
            if each.final and _is_session(each.subscription):
                self.subscriptions.discard(each.subscription)  # it ends here: not restored
                self.resubscribe.discard(each.subscription)
                self.order.stop(each.subscription)
            if each.event.get("name") == EventName.TOPIC_STATE_CHANGED and each.event.get(
                "data", {}
            ).get("to") in ("CLOSING", "CLOSED"):
                self.locations.closed(each.conversation_id)

    def fill_gaps(self) -> None:
        """Read the events missing before held ones from their conversation (see PushOrder)."""
        for gap in self.order.gaps(time.monotonic()):
            events: list[dict[str, Any]] = []
            if gap.missing:
                try:
                    events = self.events(gap.conversation_id, gap.after_seq)
                    if _is_session(gap.subscription):  # a session is never given a whisper
                        events = [e for e in events if for_customer(e.get("data", {}))]
                except GatewayError as error:  # tried again after GAP_WAIT_S
                    log.warning(
                        "pushed events missing, not read yet",
                        conversation_id=gap.conversation_id,
                        after_seq=gap.after_seq,
                        error=str(error),
                    )
                    continue
            self.pushed.extend(self.order.fill(gap, events, time.monotonic()))

    def restore_subscriptions(self) -> None:
        """Subscribe again where the engine lost a subscription (it restarted, or the
        conversation was rebuilt on another host after its host died): sessions from the last
        seq handed over. One whose conversation is not back yet is tried again later."""
        for subscription in sorted(self.resubscribe):
            if subscription not in self.subscriptions:
                self.resubscribe.discard(subscription)
                continue
            kind, ident = parse_subscription(subscription)
            try:
                if kind is SubscriptionKind.SESSION:
                    conversation_id = self.conversation_of(ident)
                    after = self.order.last(subscription, conversation_id) or 0
                    self.subscribe_again(conversation_id, Subscribe(subscription, self.me, after))
                else:
                    self.engine("agents", Subscribe(subscription, self.me))
            except UnavailableError:
                continue
            except GatewayError as error:
                log.warning(
                    "subscription not restored", subscription=subscription, error=str(error)
                )
            self.resubscribe.discard(subscription)

    # provided by EngineLink

    def subscribe_again(self, conversation_id: str, request: Subscribe) -> None:
        raise NotImplementedError

    def events(self, conversation_id: str, after_seq: int) -> list[dict[str, Any]]:
        raise NotImplementedError

    def conversation_of(self, session_id: str) -> str:
        raise NotImplementedError

    def engine(self, role: str, payload: Any, *, watch: str | None = None) -> Any:
        raise NotImplementedError
