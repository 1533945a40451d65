"""A pipelined, batching client built on a connected :class:`~runtime.gateway.Gateway`: what a
batching gateway API would do.

The public gateway API makes one call at a time: one Thespian message out, wait for the
answer. The engine itself already takes a :class:`~actors.messages.Batch` of many
:class:`~actors.messages.Deliver` items in one message and handles them in order; this client
sends such batches (many commands, many conversations, one message per destination) and
waits for the answers. It reaches into the gateway (its actor system, its own address, its id
source) the way ``tests/test_crash_recovery.py`` does; nothing here changes the engine.

``acks="all"`` asks for an answer to every item (one Thespian message each, the engine sends
replies one by one); ``acks="last"`` asks only for the last item of each batch, which a host
answers after it has handled every earlier item of the batch (they are handled in order, in
one Thespian message).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from actors.messages import (
    Apply,
    Batch,
    Deliver,
    Failure,
    Locate,
    OpenSession,
    Pushed,
    Reply,
    ReplyTo,
)
from domain.commands import CustomerMessage, EndConversation
from domain.enums import Channel, EndedBy
from domain.ids import conversation_entity_id, session_entity_id
from runtime.gateway import Gateway, GatewayError, SessionRef

_CALLS = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Item:
    """One payload for one entity of the actor at ``address``."""

    address: Any
    entity: str
    payload: Any


class Pipeline:
    def __init__(self, gateway: Gateway, *, tag: str = "p") -> None:
        self.gw = gateway
        self.system = gateway._system
        self.me = gateway._me
        self.tag = tag
        self.pushed = 0  # pushed events received (subscriptions of this gateway)
        #: called with (arrival time.monotonic(), event dict) for every pushed event
        self.on_pushed: Callable[[float, dict[str, Any]], None] | None = None
        self._answers: dict[str, Reply | Failure] = {}
        #: when each answer arrived (time.monotonic()), by call id
        self.answered_at: dict[str, float] = {}

    # ------------------------------------------------------------------ sending

    def _call_id(self) -> str:
        return f"{self.tag}-{next(_CALLS)}"

    def send(
        self, items: Sequence[Item], *, acks: str = "all", now: int | None = None
    ) -> list[str]:
        """Send ``items`` as one Batch per destination; returns the call ids awaited."""
        by_address: dict[str, tuple[Any, list[Deliver]]] = {}
        awaited: list[str] = []
        for index, item in enumerate(items):
            want = acks == "all" or (acks == "last" and index == len(items) - 1)
            reply_to = None
            if want:
                call_id = self._call_id()
                awaited.append(call_id)
                reply_to = ReplyTo(self.me, call_id)
            slot = by_address.setdefault(str(item.address), (item.address, []))
            slot[1].append(Deliver(item.entity, item.payload, reply_to))
        if acks == "last" and len(by_address) > 1:
            raise ValueError("acks='last' needs every item of a batch on one destination")
        stamp = now if now is not None else int(time.time() * 1000)
        for address, delivers in by_address.values():
            self.system.tell(address, Batch(stamp, tuple(delivers)))
        return awaited

    def wait(self, call_ids: Iterable[str], *, timeout: float = 60.0) -> dict[str, Any]:
        """The answers to ``call_ids`` (values; a Failure raises GatewayError)."""
        wanted = set(call_ids)
        found: dict[str, Any] = {}
        for call_id in list(wanted):
            answer = self._answers.pop(call_id, None)
            if answer is not None:
                found[call_id] = answer
                wanted.discard(call_id)
        deadline = time.monotonic() + timeout
        while wanted:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise GatewayError(f"{len(wanted)} answers missing after {timeout:g} s")
            message = self.system.listen(min(remaining, 1.0))
            if message is None:
                continue
            self._take(message, wanted, found)
        failures = [a for a in found.values() if isinstance(a, Failure)]
        if failures:
            raise GatewayError(f"{len(failures)} refused, e.g. {failures[0].message}")
        return {k: v.value for k, v in found.items()}

    def poll(self, timeout: float = 0.0) -> None:
        """Take what has arrived (pushed events, early answers) without waiting for more."""
        message = self.system.listen(timeout)
        while message is not None:
            self._take(message, set(), {})
            message = self.system.listen(0)

    def _take(self, message: Any, wanted: set[str], found: dict[str, Any]) -> None:
        if isinstance(message, Reply | Failure):
            self.answered_at[message.call_id] = time.monotonic()
            if message.call_id in wanted:
                wanted.discard(message.call_id)
                found[message.call_id] = message
            else:
                self._answers[message.call_id] = message
        elif isinstance(message, Batch):
            now = time.monotonic()
            for item in message.items:
                if isinstance(item.payload, Reply | Failure):  # answers sent as one message
                    self._take(item.payload, wanted, found)
                elif isinstance(item.payload, Pushed):
                    self.pushed += 1
                    if self.on_pushed is not None:
                        self.on_pushed(now, item.payload.event)

    # ------------------------------------------------------------------ operations

    def open_sessions(
        self, customers: Sequence[str], *, batch: int = 200, window: int = 4
    ) -> list[SessionRef]:
        """``start_session`` for each customer (new customers: a new room and conversation
        each), ``batch`` per message to the TopicMonitor, up to ``window`` batches in flight."""
        ids = self.gw._ids
        monitor = self.gw._actors.monitor
        refs: list[SessionRef] = []
        in_flight: list[list[str]] = []
        for start in range(0, len(customers), batch):
            chunk = customers[start : start + batch]
            items = [
                Item(
                    monitor,
                    "",
                    OpenSession(
                        customer,
                        Channel.WEB,
                        f"visitor-{customer}",
                        None,
                        {},
                        ids.new("cs"),
                        ids.new("conv"),
                        ids.new("room"),
                    ),
                )
                for customer in chunk
            ]
            in_flight.append(self.send(items))
            if len(in_flight) >= window:
                refs.extend(self._refs(in_flight.pop(0)))
        while in_flight:
            refs.extend(self._refs(in_flight.pop(0)))
        return refs

    def _refs(self, call_ids: list[str]) -> list[SessionRef]:
        answers = self.wait(call_ids, timeout=120)
        return [SessionRef(**answers[c]) for c in call_ids]

    def hosts_of(self, conversation_ids: Sequence[str], *, batch: int = 500) -> dict[str, Any]:
        """Where each conversation lives (one Locate per conversation, batched)."""
        monitor = self.gw._actors.monitor
        located: dict[str, Any] = {}
        for start in range(0, len(conversation_ids), batch):
            chunk = conversation_ids[start : start + batch]
            calls = self.send([Item(monitor, "", Locate(conversation_id=c)) for c in chunk])
            answers = self.wait(calls, timeout=120)
            for call_id, cid in zip(calls, chunk, strict=True):
                located[cid] = answers[call_id].host
        return located


def message_item(host: Any, session_id: str, text: str, message_id: str) -> Item:
    return Item(
        host, session_entity_id(session_id), Apply(CustomerMessage(session_id, text, message_id))
    )


def end_item(host: Any, conversation_id: str) -> Item:
    return Item(
        host, conversation_entity_id(conversation_id), Apply(EndConversation(EndedBy.OPERATOR))
    )
