"""The thread that holds an :class:`~runtime.aio.client.AsyncGateway`'s blocking Gateway.

A :class:`~runtime.gateway.Gateway` is not thread-safe (and an embedded engine's archive
belongs to the thread that built it), so one thread, the :class:`Pump`, builds it and makes
every call. Coroutines hand it :class:`Call`s through a thread-safe queue; it takes what is due
in one *window* (everything queued, and what arrives within ``window_s`` of the first, up to
``max_batch``) and sends the runs of operations the pipeline carries
(:data:`PIPELINED`) through :meth:`Gateway.pipeline`: one engine message per destination for
the whole window. Other operations are called one by one, in the order they were asked.
Answers go back to the event loop in one ``call_soon_threadsafe`` per window; pushed events
likewise, polled after every window and while idle.

While one window is being answered the next fills up. When the engine falls behind (at least
``overlap_at`` calls queued) the next window is sent before the earlier ones are answered, up
to ``depth`` windows in flight, so that the engine's processes and this one work at once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from thespian.actors import ActorSystemException

from domain.errors import IdTaken
from infra.logs import get_logger
from runtime.gateway import (
    Gateway,
    GatewayError,
    Pending,
    Pipeline,
    PushedEvent,
    UnavailableError,
)

__all__ = ["PIPELINED", "AioLimits", "Call", "Pump"]

log = get_logger("cx.aio")

#: Operations sent through :meth:`Gateway.pipeline` (one message per destination per window).
PIPELINED: Final = frozenset({"start_session", "customer_message", "end_conversation", "agent_join"})


@dataclass(frozen=True, slots=True)
class AioLimits:
    """The bounds of an AsyncGateway."""

    #: calls in flight at once; one more waits (back-pressure on the callers)
    max_in_flight: int = 4096
    #: how long after the first call of a window others may join it
    window_s: float = 0.002
    #: calls in one window at most
    max_batch: int = 1024
    #: how long one window's answers may take
    call_timeout_s: float = 30.0
    #: windows sent and not yet answered at most (the next is sent while earlier ones are
    #: being answered)
    depth: int = 4
    #: calls queued from which a window is sent before the previous ones are answered
    overlap_at: int = 256
    #: polling for pushed events while idle: from ``min_poll_s`` after activity, doubling
    #: up to ``poll_s`` (a connected gateway's poll blocks that long)
    min_poll_s: float = 0.001
    poll_s: float = 0.02
    #: pushed events kept for ``AsyncGateway.pushed`` at most (the oldest dropped first;
    #: 0: none, for a caller that only listens)
    keep_pushed: int = 100_000


@dataclass(slots=True)
class Call:
    """One operation asked by a coroutine, and the future its answer settles."""

    op: str
    args: dict[str, Any]
    future: asyncio.Future[Any]
    #: instead of the Gateway's method ``op``: this function of the Gateway
    run: Callable[[Gateway], Any] | None = None


#: (future, value, error) for one call; the event loop settles it.
Outcome = tuple["asyncio.Future[Any]", Any, BaseException | None]


@dataclass(slots=True)
class _Window:
    """The pipelined calls of one window, sent and not yet answered."""

    queued: list[tuple[Call, Pending | BaseException]]
    deadline: float

_STOP: Final = object()


def failure_of(op: str, error: BaseException) -> BaseException:
    """What a caller gets for an exception a call raised: the engine's own refusal as it is,
    an actor system that cannot be reached as ``UnavailableError``, anything else (logged) as
    a ``GatewayError`` naming the operation."""
    if isinstance(error, GatewayError):
        return error
    if isinstance(error, ActorSystemException | OSError):
        return UnavailableError(f"the engine cannot be reached: {error}")
    log.error("operation failed inside the gateway", op=op, error=type(error).__name__)
    return GatewayError(f"{op} failed inside the gateway (logged)")


class Pump(threading.Thread):
    def __init__(
        self,
        source: Callable[[], Gateway],
        loop: asyncio.AbstractEventLoop,
        limits: AioLimits,
        on_pushed: Callable[[list[PushedEvent]], None],
    ) -> None:
        super().__init__(name="cx-aio-pump", daemon=True)
        self._source = source
        self._loop = loop
        self.limits = limits
        self._on_pushed = on_pushed
        self._calls: queue.SimpleQueue[Call | object] = queue.SimpleQueue()
        self._gateway: Gateway | None = None
        self._pipeline: Pipeline | None = None
        self._sent: collections.deque[_Window] = collections.deque()  # in flight, oldest first
        self._window = limits.min_poll_s
        self.ready = threading.Event()
        self._closing = threading.Lock()  # a call is queued, or refused, never lost between
        self.stopped = False
        self.startup_error: BaseException | None = None
        #: windows sent and calls carried out (for tests and benchmarks)
        self.windows = 0
        self.executed = 0

    # ------------------------------------------------------------------ other threads

    def submit(self, call: Call) -> None:
        """Queue ``call``; UnavailableError once the pump has stopped (nobody would answer)."""
        with self._closing:
            if self.stopped:
                raise UnavailableError(f"{call.op} not carried out: the gateway is closed")
            self._calls.put(call)

    def stop(self) -> None:
        self._calls.put(_STOP)

    # ------------------------------------------------------------------ the thread

    def run(self) -> None:
        try:
            self._gateway = self._source()
        except BaseException as error:
            self.startup_error = error
            self.ready.set()
            return
        self._pipeline = self._gateway.pipeline()
        self.ready.set()
        try:
            while self._steps():
                pass
        finally:
            with self._closing:
                self.stopped = True
            with contextlib.suppress(Exception):
                self._refuse_queued()
            with contextlib.suppress(Exception):
                self._gateway.close()

    def _steps(self) -> bool:
        try:
            return self._step()
        except Exception:  # a bug here must not leave every caller without answers
            log.exception("AsyncGateway pump step failed")
            return True

    def _step(self) -> bool:
        """Finish the oldest window in flight, or send the next, or poll while idle; False
        when told to stop (after finishing every window in flight). A window is sent while
        others are in flight only when ``overlap_at`` calls are queued (the engine is falling
        behind): else waiting for the oldest's answers lets the next window fill up."""
        limits = self.limits
        if self._sent and (
            len(self._sent) >= limits.depth or self._calls.qsize() < limits.overlap_at
        ):
            self._finish(self._sent.popleft())
            self._route(self._poll(0.0))
            return True
        calls = self._collect(wait=not self._sent)
        if calls is None:
            while self._sent:
                self._finish(self._sent.popleft())
            return False
        if calls:
            self._carry_out(calls)
        return True

    def _collect(self, *, wait: bool) -> list[Call] | None:
        """The calls of the next window ([] when none came; None: stop). With ``wait``
        (nothing in flight), an empty queue is polled for pushed events first, and the window
        stays open ``window_s`` after its first call; else it is what is queued now."""
        try:
            first = self._calls.get_nowait()
        except queue.Empty:
            first = self._idle() if wait else None
            if first is None:
                return []
        if first is _STOP:
            return None
        assert isinstance(first, Call)
        calls = [first]
        deadline = time.monotonic() + (self.limits.window_s if wait else 0.0)
        while len(calls) < self.limits.max_batch:
            try:
                more = self._calls.get_nowait()
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    more = self._calls.get(timeout=remaining)
                except queue.Empty:
                    break
            if more is _STOP:
                self._calls.put(_STOP)  # after this window
                break
            assert isinstance(more, Call)
            calls.append(more)
        self._window = self.limits.min_poll_s
        return calls

    def _idle(self) -> Call | object | None:
        """Nothing queued: poll pushed events for the window, then wait for a call for what
        remains of it; the window doubles while idle up to ``poll_s``."""
        started = time.monotonic()
        window = self._window
        events = self._poll(window)
        if events:
            self._route(events)
            self._window = self.limits.min_poll_s
            return None
        self._window = min(window * 2, self.limits.poll_s)
        remaining = window - (time.monotonic() - started)
        try:
            return self._calls.get(timeout=remaining) if remaining > 0 else self._calls.get_nowait()
        except queue.Empty:
            return None

    def _poll(self, timeout: float) -> list[PushedEvent]:
        assert self._gateway is not None
        try:
            return self._gateway.pushed(timeout)
        except Exception as error:  # the engine's transport failing: calls will say so
            log.warning("polling pushed events failed", error=type(error).__name__)
            return []

    def _route(self, events: list[PushedEvent]) -> None:
        if events:
            self._to_loop(self._on_pushed, events)

    def _to_loop(self, function: Callable[..., Any], *args: Any) -> None:
        """Run ``function(*args)`` on the event loop, unless it is closed (then nobody waits
        for it any more; it may close between the check and the call)."""
        if not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(function, *args)

    # ------------------------------------------------------------------ carrying calls out

    def _carry_out(self, calls: list[Call]) -> None:
        """The window's calls in the order asked: each run of pipelined operations sent as one
        window (answered later, by :meth:`_finish`), each other operation in turn once every
        window before it is finished."""
        run: list[Call] = []
        for call in calls:
            if call.op in PIPELINED and call.run is None:
                run.append(call)
                continue
            if run:
                self._send(run)
                run = []
            while self._sent:
                self._finish(self._sent.popleft())
            self._settle([self._direct(call)])
        if run:
            self._send(run)
        self.windows += 1
        self.executed += len(calls)

    def _settle(self, outcomes: list[Outcome]) -> None:
        self._to_loop(settle, outcomes)

    def _direct(self, call: Call) -> Outcome:
        assert self._gateway is not None
        try:
            if call.run is not None:
                return call.future, call.run(self._gateway), None
            return call.future, getattr(self._gateway, call.op)(**call.args), None
        except Exception as error:
            return call.future, None, failure_of(call.op, error)

    def _send(self, calls: Sequence[Call]) -> None:
        """Queue ``calls`` on the pipeline and send them, one message per destination."""
        assert self._pipeline is not None
        queued: list[tuple[Call, Pending | BaseException]] = []
        for call in calls:
            try:
                queued.append((call, getattr(self._pipeline, call.op)(**call.args)))
            except Exception as error:  # its arguments, refused before anything is sent
                queued.append((call, failure_of(call.op, error)))
        try:
            self._pipeline.send()
        except Exception as error:
            failed = failure_of("send", error)
            self._settle([
                (c.future, None, p if isinstance(p, BaseException) else failed) for c, p in queued
            ])  # fmt: skip
            return
        self._sent.append(_Window(queued, time.monotonic() + self.limits.call_timeout_s))

    def _finish(self, window: _Window) -> None:
        """Wait for a window's answers and hand them to the event loop."""
        assert self._pipeline is not None
        outcomes: list[Outcome] = []
        for call, pending in window.queued:
            if isinstance(pending, BaseException):
                outcomes.append((call.future, None, pending))
                continue
            try:
                timeout = max(0.0, window.deadline - time.monotonic())
                (value,) = self._pipeline.wait([pending], timeout=timeout)
                outcomes.append((call.future, value, None))
            except IdTaken:  # the drawn ids were in use: the blocking call draws again
                outcomes.append(self._direct(call))
            except Exception as error:
                outcomes.append((call.future, None, failure_of(call.op, error)))
        self._settle(outcomes)

    def _refuse_queued(self) -> None:
        """Stopping: every call still queued is answered ``UnavailableError``."""
        outcomes: list[Outcome] = []
        while True:
            try:
                call = self._calls.get_nowait()
            except queue.Empty:
                break
            if isinstance(call, Call):
                closed = UnavailableError(f"{call.op} not carried out: the gateway is closed")
                outcomes.append((call.future, None, closed))
        if outcomes:
            self._settle(outcomes)


def settle(outcomes: list[Outcome]) -> None:
    """On the event loop: each future gets its value or error (unless its caller gave up)."""
    for future, value, error in outcomes:
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)
