"""What every engine actor shares: the clock, batched sends, replies and error containment.

Subclasses implement :meth:`EngineActor.on_deliver` for :class:`~actors.messages.Deliver` items
and :meth:`EngineActor.on_message` for anything else. Whatever they send while handling one
Thespian message is collected per destination and leaves as one :class:`Batch` when the handler
returns: fewer, larger messages between processes.

A handler that raises is contained here: the error is logged with what was being handled, the
caller (if any) gets a ``Failure`` of kind ``ErrorKind.INTERNAL``, and Thespian never
re-delivers the message.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import structlog
from thespian.actors import Actor, ActorExitRequest, ChildActorExited, PoisonMessage, WakeupMessage

from actors import thespian_timing  # noqa: F401  (Thespian's timers corrected on import)
from actors.messages import (
    AlarmAt,
    Batch,
    Deliver,
    Drain,
    Failure,
    Ping,
    Ref,
    Reload,
    Reply,
    ReplyTo,
    Rewired,
    WhoAmI,
    Wiring,
)
from actors.messages.survey import Survey
from domain.errors import CxError, ErrorKind
from infra.heap import adopt_inherited_heap
from infra.logs import configure_logging, shape
from infra.proctitle import set_actor_title
from infra.timefmt import wall_ms

log = structlog.get_logger("cx.actor")


def failure_of(call_id: str, error: CxError) -> Failure:
    """The answer to a call that ``error`` refused: its kind travels unchanged."""
    return Failure(call_id, error.kind, str(error))


class EngineActor(Actor):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.wiring: Wiring | None = None
        self.ready = False  # wired, and its own start-up (on_wired) succeeded
        self.exiting = False  # shutting down: children exiting now are not failures
        self._virtual_now = 0
        self._outbox: dict[str, tuple[Any, list[Deliver]]] = {}
        self._replies: list[tuple[Any, Reply | Failure]] = []
        self._early: list[tuple[Any, Any]] = []  # messages that came before the wiring

    # clock ------------------------------------------------------------------

    @property
    def virtual(self) -> bool:
        return self.wiring is not None and self.wiring.virtual

    def wire(self, wiring: Wiring) -> None:
        self.wiring = wiring
        self.advance_clock(wiring.now)
        if not wiring.virtual:  # an actor process of its own: log as the configuration says
            configure_logging(wiring.settings.logging)
            set_actor_title(self, wiring.settings.source)  # cx: router ..., in ps and top
            adopt_inherited_heap()  # its parent's objects, forked with it, are not walked

    def replay_early(self) -> None:
        early, self._early = self._early, []
        for message, sender in early:
            self.receiveMessage(message, sender)

    def wired(self) -> Wiring:
        assert self.wiring is not None, f"{type(self).__name__} used before it was wired"
        return self.wiring

    def now(self) -> int:
        return self._virtual_now if self.virtual else wall_ms()

    def advance_clock(self, now: int) -> None:
        self._virtual_now = max(self._virtual_now, now)

    # Thespian entry point --------------------------------------------------------

    def receiveMessage(self, message: Any, sender: Any) -> None:
        try:
            if isinstance(message, Batch | Deliver) and self.wiring is None:
                # It overtook this actor's wiring (Thespian holds back a message that carries
                # a just-created actor's address until that actor exists): keep it for then.
                self._early.append((message, sender))
                return
            if isinstance(message, Batch):
                self.advance_clock(message.now)
                for item in message.items:
                    self._deliver_contained(item, sender)
            elif isinstance(message, Deliver):
                self._deliver_contained(message, sender)
            elif isinstance(message, Wiring):
                self.wire(message)
                self.on_wired(sender)
                self.ready = True
                self.replay_early()
            elif isinstance(message, WakeupMessage):
                self.on_wakeup(message.payload)
            elif isinstance(message, ChildActorExited):
                self._drop_alarms_of(message.childAddress)
                self.on_child_exited(message.childAddress)
            elif isinstance(message, PoisonMessage):
                log.warning(
                    "poison_message",
                    actor=type(self).__name__,
                    message=shape(message.poisonMessage),
                )
            elif isinstance(message, WhoAmI):
                self.send(sender, Reply(message.call_id, (sender, self.ready)))
            elif isinstance(message, Rewired):
                self.wiring = message.wiring
                self.on_rewired(message.reroute)
            elif isinstance(message, Reload):
                self._reload(message)
            elif isinstance(message, Ping):
                self.send(
                    sender,
                    Reply(message.call_id, {"pid": os.getpid(), "actor": type(self).__name__}),
                )
            elif isinstance(message, Drain):
                pass
            elif isinstance(message, Survey):
                self.send(sender, Reply(message.call_id, self.figures()))
            elif isinstance(message, ActorExitRequest):
                self.exiting = True
                self.on_exit()
            else:
                self.on_message(message, sender)
        except Exception:
            log.exception("handler_failed", actor=type(self).__name__, message=shape(message))
        finally:
            self.flush()

    def _drop_alarms_of(self, child: Any) -> None:
        """Virtual clock: an exited child's alarms died with it (a replacement reports its own);
        the clock must not fire at a dead address, where nothing answers, forever."""
        clock = None if self.wiring is None else self.wiring.clock
        if clock is not None:
            self.send(clock, AlarmAt(child, None))

    def _reload(self, message: Reload) -> None:
        """New settings (``cx reload``): kept for what is built from them from now on, then
        :meth:`on_reload`; the settings already in use change nothing (idempotent)."""
        if self.wiring is None or self.wiring.settings == message.settings:
            return
        self.wiring = replace(self.wiring, settings=message.settings)
        self.on_reload(message)

    def _deliver_contained(self, item: Deliver, sender: Any) -> None:
        try:
            if isinstance(item.payload, Reply | Failure):  # answers to its calls, sent together
                self.on_message(item.payload, sender)
            else:
                self.on_deliver(item, sender)
        except Exception as error:
            log.exception(
                "handler_failed",
                actor=type(self).__name__,
                entity=item.entity,
                payload=type(item.payload).__name__,
            )
            if item.reply_to is not None:
                self.fail(
                    item.reply_to,
                    Failure(
                        item.reply_to.call_id, ErrorKind.INTERNAL, f"internal error: {error!r}"
                    ),
                )

    # hooks --------------------------------------------------------------------

    def on_wired(self, sender: Any) -> None:
        pass

    def on_rewired(self, reroute: bool) -> None:
        pass

    def on_reload(self, message: Reload) -> None:
        """The settings changed: drop what was built from the old ones; pass it on to children."""

    def on_deliver(self, item: Deliver, sender: Any) -> None:
        raise NotImplementedError

    def on_message(self, message: Any, sender: Any) -> None:
        log.warning("unexpected_message", actor=type(self).__name__, message=shape(message))

    def on_wakeup(self, payload: Any) -> None:
        pass

    def on_child_exited(self, address: Any) -> None:
        pass

    def on_exit(self) -> None:
        pass

    def figures(self) -> dict[str, Any]:
        """What this actor counts, for the engine's metrics (a Survey's answer)."""
        return {}

    # sending ------------------------------------------------------------------

    def post(self, target: Ref, payload: Any, reply_to: ReplyTo | None = None) -> None:
        self.post_to(target.address, Deliver(target.entity, payload, reply_to))

    def post_to(self, address: Any, item: Deliver) -> None:
        key = str(address)
        slot = self._outbox.get(key)
        if slot is None:
            self._outbox[key] = (address, [item])
        else:
            slot[1].append(item)

    def post_in_batches(self, address: Any, items: list[Deliver], size: int) -> None:
        """Send ``items`` to ``address`` now, after whatever was posted to it before, as
        Batches of at most ``size``: the receiver handles each Batch as one message (one
        journal write) and starts on the first while the others are on their way, where one
        Batch of bulk work (a rebuild) would be one long stall. They leave before
        :meth:`before_send`: not for an actor that makes anything durable there (a host)."""
        slot = self._outbox.pop(str(address), None)
        queued = [*slot[1], *items] if slot is not None else items
        now = self.now()
        for first in range(0, len(queued), size):
            self.send(address, Batch(now, tuple(queued[first : first + size])))

    def reply(self, reply_to: ReplyTo | None, value: Any = None) -> None:
        if reply_to is not None:
            self._replies.append((reply_to.address, Reply(reply_to.call_id, value)))

    def fail(self, reply_to: ReplyTo | None, failure: Failure) -> None:
        if reply_to is not None:
            self._replies.append((reply_to.address, failure))

    def refuse(self, reply_to: ReplyTo | None, kind: ErrorKind, message: str) -> None:
        if reply_to is not None:
            self.fail(reply_to, Failure(reply_to.call_id, kind, message))

    def before_send(self) -> None:
        """Called when a handler is done, before anything it produced leaves the actor."""

    def discard_output(self) -> None:
        """Forget every reply and message the current handler produced: none of it leaves."""
        self._replies.clear()
        self._outbox.clear()

    def flush(self) -> None:
        self.before_send()
        if self._replies:
            replies, self._replies = self._replies, []
            if len(replies) == 1:
                self.send(*replies[0])
            else:
                self._send_replies(replies, self.now())
        if not self._outbox:
            return
        outbox, self._outbox = self._outbox, {}
        now = self.now()
        for address, items in outbox.values():
            self.send(address, Batch(now, tuple(items)))

    def _send_replies(self, replies: list[tuple[Any, Reply | Failure]], now: int) -> None:
        """The answers to one caller go as one message (a Batch of ``Deliver("", answer)``), in
        order: a batch of N calls costs one answer message, not N (recovery answers 10,000
        calls 2.2-2.6x faster, docs/PERFORMANCE.md). A lone answer goes as itself."""
        by_caller: dict[str, tuple[Any, list[Reply | Failure]]] = {}
        for address, answer in replies:
            slot = by_caller.get(str(address))
            if slot is None:
                by_caller[str(address)] = (address, [answer])
            else:
                slot[1].append(answer)
        for address, answers in by_caller.values():
            if len(answers) == 1:
                self.send(address, answers[0])
            else:
                self.send(address, Batch(now, tuple(Deliver("", a) for a in answers)))
