"""Calls and their answers: call ids, answers that came early, waiting, and refusals as errors.

Every request a gateway sends carries a ``ReplyTo(gateway, call_id)``; the engine answers with a
``Reply`` or a ``Failure`` of that call id, alone or with other answers to the same caller in
one ``Batch``. :class:`Answers` hands each waiting call its own answer and keeps the others
until they are waited for (bounded: late answers to abandoned calls cannot pile up). Everything
else that arrives meanwhile (pushed events, alarm reports, host notices) goes to ``intake``.

:func:`error_of` is the one place where a refusal becomes the exception the caller sees.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

from thespian.actors import PoisonMessage

from actors.messages import Batch, Failure, HostLost, Reply
from domain.errors import ErrorKind, GatewayError, error_for
from runtime.gateway_transport import Transport

#: How long a connected gateway waits for an answer.
ASK_TIMEOUT_S = 30.0
#: While waiting for an answer, how often to check that the engine and the host are still there.
HOST_CHECK_S = 1.0
#: Answers kept that came before they were waited for (several calls answered in one message).
MAX_STRAY_ANSWERS = 10_000

Answer = Reply | Failure


def error_of(failure: Failure) -> Exception:
    """The exception for a refusal (the gateway raises it; nothing changed in the engine)."""
    return error_for(failure.kind, failure.message)


def value_of(answer: Answer) -> Any:
    """The answer's value; a Failure raises its error."""
    if isinstance(answer, Failure):
        raise error_of(answer)
    return answer.value


class Answers:
    """Matches answers to calls. ``intake`` takes every other message that arrives."""

    def __init__(self, transport: Transport, intake: Callable[[Any], None]) -> None:
        self._transport = transport
        self._intake = intake
        self._ids = itertools.count(1)
        self._stray: dict[str, Answer] = {}
        self._came: dict[str, float] = {}  # call id -> when its answer came (0.0: not yet)

    def new_id(self) -> str:
        return f"call-{next(self._ids)}"

    def take(self, message: Any) -> None:
        """Take in one message that arrived: answers are kept for their calls, the rest goes
        to ``intake``."""
        if isinstance(message, Reply | Failure):
            self.keep(message)
            return
        if isinstance(message, Batch):
            for item in message.items:
                if isinstance(item.payload, Reply | Failure):  # answers sent as one message
                    self.keep(item.payload)
        self._intake(message)

    def time(self, call_id: str) -> None:
        """Note when the answer to ``call_id`` comes (read once by :meth:`came`); bounded as the
        answers kept are."""
        if len(self._came) >= MAX_STRAY_ANSWERS:
            del self._came[next(iter(self._came))]
        self._came[call_id] = 0.0

    def came(self, call_id: str) -> float | None:
        """When the answer to a timed call came in (``time.monotonic()``), once."""
        return self._came.pop(call_id, None) or None

    def keep(self, answer: Answer) -> None:
        """Keep an answer until it is waited for; the oldest kept goes first beyond the bound."""
        if answer.call_id in self._came:
            self._came[answer.call_id] = time.monotonic()
        if len(self._stray) >= MAX_STRAY_ANSWERS:
            del self._stray[next(iter(self._stray))]
        self._stray[answer.call_id] = answer

    def ready(self, call_id: str) -> Answer | None:
        """The answer to ``call_id`` if it has come (taken: it is handed over once)."""
        return self._stray.pop(call_id, None)

    def collect(self, call_id: str) -> Answer:
        """Embedded: the answer has arrived by the time the send returned."""
        for message in self._transport.arrived():
            self.take(message)
        found = self.ready(call_id)
        if found is None:
            raise GatewayError(f"the engine did not answer {call_id}")
        return found

    def wait(
        self,
        call_id: str,
        *,
        idle: Callable[[float], Answer | None],
        host: Any = None,
        timeout: float = ASK_TIMEOUT_S,
    ) -> Answer:
        """Connected: wait for the answer to ``call_id``. Every ``HOST_CHECK_S`` without a
        message ``idle(started)`` may answer instead (the engine or the host is gone; it
        raises when the engine is); a notice that ``host`` died answers at once."""
        started = time.monotonic()
        deadline = started + timeout
        while True:
            found = self.ready(call_id)
            if found is not None:
                return found
            wait = min(HOST_CHECK_S, max(0.0, deadline - time.monotonic()))
            message = self._transport.listen(wait)
            if message is None:
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"no answer from the engine within {timeout:g} s")
                instead = idle(started)
                if instead is not None:
                    return instead
                continue
            if isinstance(message, PoisonMessage) and _carries(message.poisonMessage, call_id):
                # Thespian could not deliver it (the actor is gone, e.g. its host died and
                # its conversations were rebuilt elsewhere): nothing was done; look it up again.
                return Failure(call_id, ErrorKind.NOT_HERE, "the actor addressed is gone")
            self.take(message)
            if isinstance(message, HostLost) and host is not None and message.address == host:
                return host_failed(call_id)  # the host it waits on died: answer now


def _carries(message: Any, call_id: str) -> bool:
    return isinstance(message, Batch) and any(
        item.reply_to is not None and item.reply_to.call_id == call_id for item in message.items
    )


def host_failed(call_id: str) -> Failure:
    return Failure(
        call_id,
        ErrorKind.UNAVAILABLE,
        "a host of the engine failed while this request was in progress; it may or"
        " may not have been applied: check, or retry",
    )


def rebuilt(call_id: str, conversation_id: str) -> Failure:
    return Failure(
        call_id,
        ErrorKind.UNAVAILABLE,
        f"the host of conversation {conversation_id} failed while handling this request;"
        " the conversation was rebuilt from its journal and the request may or may not"
        " have been applied: check, or retry (a customer message with the same"
        " message_id is never applied twice)",
    )
