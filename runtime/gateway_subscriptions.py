"""A gateway's subscriptions to pushed events: the part of :class:`runtime.gateway.Gateway`'s
public API that asks the engine to push events and hands them over, in order, without gaps."""

from __future__ import annotations

from actors.messages import Apply, Subscribe, Unsubscribe
from domain.ids import (
    MalformedIdError,
    SubscriptionKind,
    agent_subscription,
    conversation_entity_id,
    parse_subscription,
    session_subscription,
)
from domain.limits import MAX_ID
from runtime.gateway_args import after_seq as check_after_seq
from runtime.gateway_args import text
from runtime.gateway_core import EngineLink
from runtime.gateway_types import BadArgumentError, GatewayError, PushedEvent, UnavailableError


class Subscriptions:
    engine: EngineLink

    def subscribe_session(self, channel_session_id: str, *, after_seq: int = 0) -> int:
        """Push this channel session's outbound events (its conversation's events) to this
        gateway: first those after ``after_seq``, then every new one. Returns the
        conversation's current sequence number."""
        text("channel_session_id", channel_session_id, limit=MAX_ID)
        check_after_seq(f"subscribe_session refused for {channel_session_id}", after_seq)
        link = self.engine
        conversation_id = link.conversation_of(channel_session_id)
        subscription = session_subscription(channel_session_id)
        link.order.start(subscription, conversation_id, after_seq)  # its replay comes next
        link.subscriptions.add(subscription)
        request = Subscribe(subscription, link.me, after_seq)
        try:
            seq: int = link.at_conversation(
                conversation_id, conversation_entity_id(conversation_id), request, "subscribe_session"
            )
        except UnavailableError:
            raise  # it may have been made: restored once the engine answers again
        except GatewayError:  # refused (its conversation has CLOSED): nothing to restore
            link.subscriptions.discard(subscription)
            link.order.stop(subscription)
            raise
        return seq

    def subscribe_agent(self, agent_id: str) -> None:
        """Push the events of every conversation this agent is subscribed to (live only: a
        desk that reconnects reads what it missed with ``events(conversation_id, after_seq)``)."""
        text("agent_id", agent_id)
        link = self.engine
        subscription = agent_subscription(agent_id)
        link.order.stop(subscription)  # the agent's entity starts afresh too
        link.subscriptions.add(subscription)
        link.engine("agents", Subscribe(subscription, link.me))

    def unsubscribe(self, subscription: str) -> None:
        """Stop a subscription (``"session:<id>"`` or ``"agent:<id>"``)."""
        try:
            kind, ident = parse_subscription(subscription)
        except MalformedIdError as error:
            raise BadArgumentError(f"unsubscribe refused: {error}") from None
        link = self.engine
        link.order.stop(subscription)
        link.subscriptions.discard(subscription)
        if kind is SubscriptionKind.AGENT:
            link.engine("agents", Unsubscribe(subscription))
        else:
            self._to_session(ident, Unsubscribe(subscription))

    def pushed(self, timeout: float = 0.0) -> list[PushedEvent]:
        """The events pushed to this gateway since the last call, oldest first; under real time
        waits up to ``timeout`` seconds for the first one."""
        link = self.engine
        if not link.embedded and not link.pushed and timeout > 0:
            if link.order.waiting():  # wake up in time to read what is missing
                timeout = min(timeout, link.order.gap_wait_s)
            message = link.transport.listen(timeout)
            if message is not None:
                link.answers.take(message)
        link.take_messages()
        if link.resubscribe:
            link.restore_subscriptions()
        if link.order.waiting():
            link.fill_gaps()
        events = list(link.pushed)
        link.pushed.clear()
        return events

    def _to_session(self, session_id: str, payload: Apply | Unsubscribe) -> None:
        raise NotImplementedError  # provided by Gateway
