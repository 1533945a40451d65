"""An asyncio client of the engine: ``await gw.customer_message(...)``.

:class:`AsyncGateway` offers the operations of :class:`~runtime.gateway.Gateway` as coroutines,
with the same arguments, results, errors (the ``GatewayError`` tree) and pushed events: those
of customers, agents and conversations as typed methods, every one (transfer, consult,
whisper, rooms, ...) through ``await gw.call(op, **args)``::

    async with await AsyncGateway.open(lambda: Gateway.connect("config.yaml")) as gw:
        ref = await gw.start_session("cust-42", "WEB", "browser-1")
        await gw.subscribe_session(ref.channel_session_id)
        await asyncio.gather(*(gw.customer_message(ref.channel_session_id, t) for t in texts))
        for pushed in await gw.pushed(timeout=1.0):
            ...

Many calls may be in flight at once. One thread (:class:`~runtime.aio.pump.Pump`) holds the
blocking Gateway, built there by the function given to :meth:`AsyncGateway.open`; it takes what
is due in a window of a few milliseconds and sends it through :meth:`Gateway.pipeline`, one
engine message per destination. At most ``limits.max_in_flight`` calls are in flight: one more
waits for a slot, so callers slow down to what the engine answers (back-pressure) instead of
queueing without bound. A caller that is cancelled while its call is in flight stops waiting;
the call itself is still carried out.

Calls of one coroutine that awaits each in turn are carried out in that order; calls in flight
together are carried out in the order they were made.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, TypeVar

from runtime.aio.pump import AioLimits, Call, Pump
from runtime.gateway import BadArgumentError, Gateway, PushedEvent, SessionRef, UnavailableError
from runtime.netgateway.ops import OPS, SERVER_OPS

__all__ = ["OPERATIONS", "AioLimits", "AsyncGateway"]

#: What :meth:`AsyncGateway.call` accepts: the network gateway's operations (the Gateway's
#: public methods) without the server's own, and ``advance`` for an embedded engine's clock.
OPERATIONS: Final = frozenset(set(OPS) - SERVER_OPS | {"advance"})
_T = TypeVar("_T")


class AsyncGateway:
    """Use :meth:`open` to make one; an async context manager that closes it."""

    def __init__(self, source: Callable[[], Gateway], limits: AioLimits) -> None:
        """Not started: use :meth:`open`."""
        self._pump = Pump(source, asyncio.get_running_loop(), limits, self._take_pushed)
        self.limits = limits
        self._slots = asyncio.Semaphore(limits.max_in_flight)
        self._in_flight = 0
        self._pushed: collections.deque[PushedEvent] = collections.deque(maxlen=limits.keep_pushed)
        self._arrived = asyncio.Event()
        self._listeners: list[Callable[[list[PushedEvent]], None]] = []
        self._closed = False

    @classmethod
    async def open(
        cls, source: Callable[[], Gateway], limits: AioLimits | None = None
    ) -> AsyncGateway:
        """Start the pump thread, which builds its Gateway with ``source()`` (e.g.
        ``lambda: Gateway.connect(path)`` or ``lambda: Gateway.embedded(config)``); raises
        what ``source`` raised."""
        limits = limits if limits is not None else AioLimits()
        gateway = cls(source, limits)
        pump = gateway._pump
        pump.start()
        await asyncio.get_running_loop().run_in_executor(None, pump.ready.wait)
        if pump.startup_error is not None:
            raise pump.startup_error
        return gateway

    async def close(self) -> None:
        """Stop the pump (calls still queued are answered ``UnavailableError``) and close its
        Gateway."""
        if self._closed:
            return
        self._closed = True
        self._pump.stop()
        await asyncio.get_running_loop().run_in_executor(None, self._pump.join)

    async def __aenter__(self) -> AsyncGateway:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def in_flight(self) -> int:
        """Calls made and not answered yet."""
        return self._in_flight

    @property
    def windows(self) -> int:
        """Windows the pump has carried out (each one pipeline send per run of operations)."""
        return self._pump.windows

    # ------------------------------------------------------------------ any operation

    async def call(self, op: str, /, **args: Any) -> Any:
        """The operation ``op`` with ``args``, as the Gateway's method of that name."""
        if op not in OPERATIONS:
            raise BadArgumentError(f"unknown operation {op[:64]!r}")
        return await self._ask(op, args, None)

    async def run(self, what: str, function: Callable[[Gateway], _T]) -> _T:
        """``function(gateway)`` on the thread that holds the blocking Gateway, in turn with
        the calls (``what`` names it in errors and logs)."""
        found: _T = await self._ask(what, {}, function)
        return found

    async def _ask(self, op: str, args: dict[str, Any], run: Callable[[Gateway], Any] | None) -> Any:
        if self._closed:
            raise UnavailableError(f"{op} not carried out: the gateway is closed")
        async with self._slots:
            if self._closed:  # closed while this call waited for a slot
                raise UnavailableError(f"{op} not carried out: the gateway is closed")
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._in_flight += 1
            try:
                self._pump.submit(Call(op, args, future, run))
                return await future
            finally:
                self._in_flight -= 1

    # ------------------------------------------------------------------ pushed events

    def _take_pushed(self, events: list[PushedEvent]) -> None:
        """On the event loop: events the pump received."""
        self._pushed.extend(events)
        self._arrived.set()
        for listener in list(self._listeners):
            listener(events)

    def listen(self, listener: Callable[[list[PushedEvent]], None]) -> Callable[[], None]:
        """Call ``listener`` on the event loop with each list of pushed events as it arrives
        (besides keeping them for :meth:`pushed`); returns the function that stops it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    async def pushed(self, timeout: float = 0.0) -> list[PushedEvent]:
        """The events pushed since the last call, oldest first, waiting up to ``timeout``
        seconds for the first one."""
        if not self._pushed and timeout > 0:
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), timeout)
        events = list(self._pushed)
        self._pushed.clear()
        return events

    # ------------------------------------------------------------------ customers

    async def start_session(
        self, customer_id: str, channel: str, identifier: str, *,
        room_id: str | None = None, data: Mapping[str, Any] | None = None,
    ) -> SessionRef:  # fmt: skip
        ref: SessionRef = await self.call(
            "start_session", customer_id=customer_id, channel=channel, identifier=identifier,
            room_id=room_id, data=data,
        )  # fmt: skip
        return ref

    async def customer_message(
        self, channel_session_id: str, text: str, *, message_id: str | None = None
    ) -> None:
        await self.call(
            "customer_message", channel_session_id=channel_session_id, text=text,
            message_id=message_id,
        )  # fmt: skip

    async def end_session(self, channel_session_id: str, reason: str = "CUSTOMER") -> None:
        await self.call("end_session", channel_session_id=channel_session_id, reason=reason)

    async def request_agent(self, conversation_id: str, queue: str = "default") -> None:
        await self.call("request_agent", conversation_id=conversation_id, queue=queue)

    # ------------------------------------------------------------------ agents

    async def agent_login(
        self, agent_id: str, *, queues: Iterable[str] = ("default",), max_conversations: int = 3
    ) -> None:
        await self.call(
            "agent_login", agent_id=agent_id, queues=tuple(queues),
            max_conversations=max_conversations,
        )  # fmt: skip

    async def agent_ready(self, agent_id: str) -> None:
        await self.call("agent_ready", agent_id=agent_id)

    async def agent_not_ready(self, agent_id: str) -> None:
        await self.call("agent_not_ready", agent_id=agent_id)

    async def agent_logout(self, agent_id: str) -> None:
        await self.call("agent_logout", agent_id=agent_id)

    async def agent_join(
        self, agent_id: str, conversation_id: str, *, role: str = "PRIMARY"
    ) -> None:
        await self.call("agent_join", agent_id=agent_id, conversation_id=conversation_id, role=role)

    async def agent_message(
        self, agent_id: str, conversation_id: str, text: str, *,
        channel_session_id: str | None = None,
    ) -> None:
        await self.call(
            "agent_message", agent_id=agent_id, conversation_id=conversation_id, text=text,
            channel_session_id=channel_session_id,
        )  # fmt: skip

    async def hold(self, agent_id: str, conversation_id: str, seconds: float) -> None:
        await self.call("hold", agent_id=agent_id, conversation_id=conversation_id, seconds=seconds)

    async def resume(self, agent_id: str, conversation_id: str) -> None:
        await self.call("resume", agent_id=agent_id, conversation_id=conversation_id)

    async def agent_leave(
        self, agent_id: str, conversation_id: str, *, reason: str = "LEFT"
    ) -> None:
        await self.call(
            "agent_leave", agent_id=agent_id, conversation_id=conversation_id, reason=reason
        )

    async def apply_wrap_up(
        self, agent_id: str, conversation_id: str, codes: Iterable[str], note: str = ""
    ) -> None:
        await self.call(
            "apply_wrap_up", agent_id=agent_id, conversation_id=conversation_id,
            codes=codes if isinstance(codes, str) else tuple(codes), note=note,
        )  # fmt: skip

    # ------------------------------------------------------------------ conversations

    async def set_data(
        self, conversation_id: str, key: str, value: str | int | float | bool | None
    ) -> None:
        await self.call("set_data", conversation_id=conversation_id, key=key, value=value)

    async def end_conversation(self, conversation_id: str, *, by: str = "OPERATOR") -> None:
        await self.call("end_conversation", conversation_id=conversation_id, by=by)

    async def add_activity(self, conversation_id: str, name: str, data: Mapping[str, Any]) -> None:
        await self.call("add_activity", conversation_id=conversation_id, name=name, data=data)

    async def conversation(self, conversation_id: str) -> dict[str, Any]:
        found: dict[str, Any] = await self.call("conversation", conversation_id=conversation_id)
        return found

    async def events(self, conversation_id: str, *, after_seq: int = 0) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self.call(
            "events", conversation_id=conversation_id, after_seq=after_seq
        )
        return found

    async def history(self, room_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self.call("history", room_id=room_id)
        return found

    async def status(self) -> dict[str, dict[str, int]]:
        found: dict[str, dict[str, int]] = await self.call("status")
        return found

    # ------------------------------------------------------------------ subscriptions, clock

    async def subscribe_session(self, channel_session_id: str, *, after_seq: int = 0) -> int:
        seq: int = await self.call(
            "subscribe_session", channel_session_id=channel_session_id, after_seq=after_seq
        )
        return seq

    async def subscribe_agent(self, agent_id: str) -> None:
        await self.call("subscribe_agent", agent_id=agent_id)

    async def unsubscribe(self, subscription: str) -> None:
        await self.call("unsubscribe", subscription=subscription)

    async def advance(self, seconds: float) -> None:
        """An embedded engine's virtual clock (:meth:`Gateway.advance`)."""
        await self.call("advance", seconds=seconds)
