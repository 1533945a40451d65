"""The ChannelSession entity: the customer's presence on one channel.

It de-duplicates inbound provider message ids (a repeated id is acknowledged and ignored) and
receives every event of its conversation for delivery to the channel's gateway: all but those
marked for the agents alone (whispers, see :func:`domain.events.for_customer`), each pushed
naming the seq of the one pushed before it, so that the gateway sees no gap where one was
left out. Transient notices (typing) are pushed as they come. It lives on the
same host as its conversation, so forwarding to it costs no message between processes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from actors.messages import (
    Apply,
    AttachSubscriber,
    EventDelivery,
    Pushed,
    Ref,
    ReplyTo,
    SignalDelivery,
    Unsubscribe,
)
from actors.snapshots import event_dict
from domain.commands import CustomerMessage
from domain.errors import ErrorKind
from domain.events import for_customer
from domain.ids import conversation_entity_id, session_entity_id
from domain.records import Event
from domain.sequence import previous_seq

if TYPE_CHECKING:
    from actors.context import HostContext


class ChannelSessionEntity:
    def __init__(self, session_id: str, conversation_id: str) -> None:
        self.id = session_entity_id(session_id)
        self.session_id = session_id
        self.conversation_entity = conversation_entity_id(conversation_id)
        self.seen_message_ids: set[str] = set()
        self.delivered_seq = 0
        self.visible_seq = 0  # the last event delivered that the customer may see
        self.subscriber: Ref | None = None  # the channel gateway, while one is subscribed
        self.subscription = ""

    def receive(self, payload: Any, reply_to: ReplyTo | None, host: HostContext) -> None:
        if isinstance(payload, EventDelivery):
            if payload.final:
                self._final(payload.events, host)
                return
            for event in payload.events:
                previous = self.visible_seq
                self._delivered(event)
                if self.subscriber is not None and for_customer(event.data):
                    self._push(event, previous, host)
        elif isinstance(payload, SignalDelivery):
            if self.subscriber is not None:
                host.post(
                    self.subscriber,
                    Pushed(self.subscription, payload.conversation_id, payload.event),
                )
        elif isinstance(payload, AttachSubscriber):
            self.subscriber = Ref(payload.subscriber, "")
            self.subscription = payload.subscription
            # the replay follows the seq the subscriber asked to start after
            previous = previous_seq(payload.replay[0].seq) if payload.replay else 0
            for event in payload.replay:
                if for_customer(event.data):
                    self._push(event, previous, host)
                    previous = event.seq
        elif isinstance(payload, Unsubscribe):
            self.subscriber = None
            host.reply(reply_to, None)
        elif isinstance(payload, Apply):
            command = payload.command
            if isinstance(command, CustomerMessage) and command.message_id in self.seen_message_ids:
                host.reply(reply_to, None)  # a provider re-sent it: acknowledged, no effect
                return
            host.local(self.conversation_entity, payload, reply_to)
        else:
            host.refuse(
                reply_to,
                ErrorKind.BAD_ARGUMENT,
                f"channel session cannot handle {type(payload).__name__}",
            )

    def remember(self, log: list[Event]) -> None:
        """Rebuilt from the journal: know the message ids already seen."""
        for event in log:
            self._delivered(event)

    def _final(self, events: tuple[Event, ...], host: HostContext) -> None:
        """The conversation is CLOSED: push its last events (a session that ended earlier has
        not had the ones between, so each names the one pushed before it), the last one marked
        final, and go."""
        visible = [e for e in events if for_customer(e.data)]
        if self.subscriber is not None:
            for event in visible:
                previous = self.visible_seq
                self.delivered_seq = self.visible_seq = event.seq
                final = event is visible[-1]
                host.post(
                    self.subscriber,
                    Pushed(
                        self.subscription,
                        event.conversation_id,
                        event_dict(event),
                        previous,
                        final,
                    ),
                )
        host.remove(self.id)

    def _push(self, event: Event, previous: int, host: HostContext) -> None:
        """Push ``event``; ``previous`` is named only where events were left out before it
        (else the gateway takes it to follow seq - 1)."""
        assert self.subscriber is not None
        named = previous if previous != previous_seq(event.seq) else None
        host.post(
            self.subscriber,
            Pushed(self.subscription, event.conversation_id, event_dict(event), named),
        )

    def _delivered(self, event: Event) -> None:
        self.delivered_seq = event.seq
        if for_customer(event.data):
            self.visible_seq = event.seq
        message_id = event.message_id_from(self.session_id)
        if message_id is not None:
            self.seen_message_ids.add(message_id)
