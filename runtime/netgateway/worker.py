"""The one thread that talks to the engine.

A :class:`~runtime.gateway.Gateway` (embedded or connected) is not thread-safe, so exactly one
thread, the :class:`Worker`, holds it: it runs the requests of every connection from one FIFO
queue, in order, and when idle it polls ``gateway.pushed(timeout)`` and routes each pushed
event to the connections that hold its subscription (its
:class:`~runtime.netgateway.subscriptions.SubscriptionTable` table).

Results go back through the connection (a :class:`~runtime.netgateway.subscriptions.Peer`),
whose ``deliver`` is thread-safe.

Engine health: with a ``probe`` (``cx gateway`` checks that the actor system's admin port
accepts connections), an unreachable engine is noticed within ``health_interval_s`` and every
operation is answered ``unavailable`` at once instead of waiting for the Gateway's own timeout.
With a ``connect`` factory the worker builds a new Gateway when the engine is back (its actor
addresses change when it restarts) and restores every subscription, sessions from the last seq
each connection was given.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from thespian.actors import ActorSystemException

from domain.errors import ErrorKind
from domain.ids import (
    SubscriptionKind,
    agent_subscription,
    parse_subscription,
    session_subscription,
)
from infra.logs import get_logger
from runtime.gateway import (
    Gateway,
    GatewayError,
    PushedEvent,
    UnavailableError,
)
from runtime.netgateway.codec import Request, answer, failure
from runtime.netgateway.ops import plain_result
from runtime.netgateway.subscriptions import Holding, Peer, SubscriptionTable

__all__ = ["Job", "Worker", "WorkerLimits"]

log = get_logger("cx.netgateway")

#: A new Gateway is built at most this often after operations time out while the admin port
#: answers (the engine may have restarted between two probes).
RECONNECT_INTERVAL_S = 10.0


@dataclass(frozen=True, slots=True)
class WorkerLimits:
    queue_timeout_s: float = 10.0
    poll_s: float = 0.02
    min_poll_s: float = 0.001
    health_interval_s: float = 1.0
    subscriptions: int = 1000


@dataclass(slots=True)
class Job:
    peer: Peer
    request: Request
    queued_at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True)
class _Gone:
    peer: Peer


_STOP = object()


class Worker(threading.Thread):
    def __init__(
        self,
        source: Gateway | Callable[[], Gateway],
        limits: WorkerLimits,
        *,
        probe: Callable[[], str | None] | None = None,
    ) -> None:
        super().__init__(name="cx-netgateway-worker", daemon=True)
        self._source = source
        self._factory = source if callable(source) else None
        self._gateway: Gateway | None = None
        self.limits = limits
        self._probe = probe
        self._jobs: queue.SimpleQueue[Job | _Gone | object] = queue.SimpleQueue()
        self.ready = threading.Event()
        self.startup_error: BaseException | None = None
        self._stopping = threading.Event()
        self._table = SubscriptionTable(self, limits.subscriptions)
        self._down: str | None = None  # why the engine is taken as unreachable
        self._last_probe = 0.0
        self._last_reconnect = 0.0
        self.executed = 0
        self._window = limits.min_poll_s

    # ------------------------------------------------------------------ other threads

    def pending(self) -> int:
        return self._jobs.qsize()

    def submit(self, job: Job) -> None:
        self._jobs.put(job)

    def gone(self, peer: Peer) -> None:
        self._jobs.put(_Gone(peer))

    def stop(self) -> None:
        self._stopping.set()
        self._jobs.put(_STOP)

    # ------------------------------------------------------------------ the thread

    def run(self) -> None:
        try:
            self._gateway = self._factory() if self._factory is not None else self._given()
        except BaseException as error:
            self.startup_error = error
            self.ready.set()
            return
        self.ready.set()
        try:
            self._loop()
        finally:
            self._shutdown()

    def _given(self) -> Gateway:
        assert not callable(self._source)
        return self._source

    def _loop(self) -> None:
        while True:
            try:
                if not self._step():
                    return
            except Exception:  # a bug here must not leave every client without answers
                log.exception("network gateway worker step failed")

    def _step(self) -> bool:
        """Do one thing; False when told to stop."""
        try:
            job = self._jobs.get_nowait()
        except queue.Empty:
            job = self._idle()
            if job is None:
                return True
        if job is _STOP:
            return False
        if isinstance(job, _Gone):
            self._table.release_all(job.peer)
        elif isinstance(job, Job):
            if self._stopping.is_set():
                return True  # shutting down: its connection is closed already
            self._run(job)
            self._table.route(self._poll(0.0))
            self._window = self.limits.min_poll_s
        return True

    def _idle(self) -> Job | _Gone | object | None:
        """Nothing to do: poll pushed events, then wait for a job for what remains of the
        window (an embedded gateway returns at once; a connected one listens on the actor
        system, which no other thread can interrupt, so the window is what a request arriving
        now may wait). The window starts at ``min_poll_s`` after any activity and doubles
        while idle up to ``poll_s``: short while busy, few wake-ups when idle."""
        started = time.monotonic()
        if self._probe is not None and started - self._last_probe >= self.limits.health_interval_s:
            self._check_health()
        window = self._window
        events = self._poll(window)
        if events:
            self._table.route(events)
            self._window = self.limits.min_poll_s
            return None
        self._window = min(window * 2, self.limits.poll_s)
        remaining = window - (time.monotonic() - started)
        try:
            job = self._jobs.get(timeout=remaining) if remaining > 0 else self._jobs.get_nowait()
        except queue.Empty:
            return None
        self._window = self.limits.min_poll_s
        return job

    def _poll(self, timeout: float) -> list[PushedEvent]:
        assert self._gateway is not None
        if self._down is not None:
            return []
        try:
            return self._gateway.pushed(timeout)
        except Exception as error:  # the engine's transport failing: the probe tells
            log.warning("polling pushed events failed", error=str(error))
            return []

    def _shutdown(self) -> None:
        if self._down is None and self._probe is not None:
            self._down = self._probe()  # an engine that is gone would make each call wait
        if self._down is None:
            for subscription, _ in self._table.items():
                try:
                    self._engine_unsubscribe(subscription)
                except Exception as error:
                    log.info(
                        "not unsubscribed at shutdown", subscription=subscription, error=str(error)
                    )
                    break
        self._table.clear()
        if self._factory is not None and self._gateway is not None:
            with contextlib.suppress(Exception):
                self._gateway.close()

    # ------------------------------------------------------------------ requests

    def _run(self, job: Job) -> None:
        request = job.request
        try:
            result = self._execute(job)
            frame = answer(request.id, plain_result(result))
        except GatewayError as error:
            if isinstance(error, UnavailableError):
                self._suspect()
            frame = failure(request.id, error.kind, str(error))
        except (ActorSystemException, OSError) as error:
            self._suspect()
            frame = failure(
                request.id, ErrorKind.UNAVAILABLE, f"the engine cannot be reached: {error}"
            )
        except Exception:
            log.exception("operation failed", op=request.op, peer=job.peer.name)
            frame = failure(
                request.id, ErrorKind.INTERNAL, f"{request.op} failed inside the gateway (logged)"
            )
        self.executed += 1
        job.peer.deliver(frame, is_answer=True)

    def _execute(self, job: Job) -> Any:
        request = job.request
        waited = time.monotonic() - job.queued_at
        if waited > self.limits.queue_timeout_s:
            raise UnavailableError(
                f"{request.op} waited {waited:.1f} s in the gateway's queue (more than"
                f" {self.limits.queue_timeout_s:g} s: the engine is slow or down); not carried out"
            )
        if self._down is not None:
            if time.monotonic() - self._last_probe >= self.limits.health_interval_s:
                self._check_health()
            if self._down is not None:
                raise UnavailableError(f"{self._down}; {request.op} not carried out")
        gateway = self._gateway
        assert gateway is not None
        args = request.args
        if request.op == "subscribe_session":
            session_id: str = args["channel_session_id"]
            after: int = args.get("after_seq", 0)
            subscription = session_subscription(session_id)
            self._table.check_room(job.peer, subscription)
            seq = gateway.subscribe_session(session_id, after_seq=after)
            self._table.hold(job.peer, subscription, Holding(True, after))
            return seq
        if request.op == "subscribe_agent":
            agent_id: str = args["agent_id"]
            subscription = agent_subscription(agent_id)
            self._table.check_room(job.peer, subscription)
            gateway.subscribe_agent(agent_id)
            self._table.hold(job.peer, subscription, Holding(False))
            return None
        if request.op == "unsubscribe":
            self._table.unsubscribe(job.peer, args["subscription"])
            return None
        return getattr(gateway, request.op)(**args)

    # ------------------------------------------------------------------ the table's engine side

    def read_events(self, conversation_id: str, after_seq: int) -> list[dict[str, Any]]:
        assert self._gateway is not None
        return self._gateway.events(conversation_id, after_seq=after_seq)

    def drop_subscription(self, subscription: str) -> None:
        if self._down is not None:
            return
        try:
            self._engine_unsubscribe(subscription)
        except Exception as error:  # e.g. the conversation closed: nothing is pushed anyway
            log.debug("engine unsubscribe failed", subscription=subscription, error=str(error))

    def _engine_unsubscribe(self, subscription: str) -> None:
        assert self._gateway is not None
        self._gateway.unsubscribe(subscription)

    # ------------------------------------------------------------------ engine health

    def _check_health(self) -> None:
        """Probe the engine; notice it going away, and coming back (then reconnect)."""
        if self._probe is None:
            return
        self._last_probe = time.monotonic()
        problem = self._probe()
        if problem is not None:
            if self._down is None:
                log.warning("engine unreachable: answering unavailable", problem=problem)
            self._down = problem
        elif self._down is not None:
            log.info("engine reachable again")
            if self._factory is not None:
                self._reconnect()
            else:
                self._down = None

    def _suspect(self) -> None:
        """An operation found the engine unavailable: is it gone, or did it restart?"""
        if self._probe is None:
            return
        self._check_health()
        now = time.monotonic()
        if (
            self._down is None
            and self._factory is not None
            and now - self._last_reconnect >= RECONNECT_INTERVAL_S
        ):
            self._reconnect()

    def _reconnect(self) -> None:
        assert self._factory is not None
        self._last_reconnect = time.monotonic()
        if self._gateway is not None:
            with contextlib.suppress(Exception):
                self._gateway.close()
        try:
            self._gateway = self._factory()
        except Exception as error:
            self._down = f"the engine cannot be reached: {error}"
            log.warning("reconnecting to the engine failed", error=str(error))
            return
        self._down = None
        log.info("reconnected to the engine", subscriptions=len(self._table))
        for subscription, holders in list(self._table.items()):
            kind, ident = parse_subscription(subscription)
            try:
                if kind is SubscriptionKind.SESSION:
                    after = min(h.position for h in holders.values())
                    self._gateway.subscribe_session(ident, after_seq=after)
                else:
                    self._gateway.subscribe_agent(ident)
            except Exception as error:
                reason = f"subscription {subscription} lost when the engine restarted: {error}"
                for peer in list(holders):
                    self._table.release(peer, subscription)
                    peer.drop(reason)

