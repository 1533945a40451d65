"""The daemon's HTTP endpoint: ``/metrics`` (Prometheus), ``/healthz`` and ``/readyz``.

It runs in the long-running daemon's process (``metrics.bind``, ``metrics.port``; port null:
off), on threads of its own. One survey of the engine runs at a time, on a daemon thread,
through one gateway (:class:`EngineProbe`): a scrape and a readiness check that come together
wait for the same survey, and an engine that does not answer holds one thread, never more.

- ``/healthz``: 200 while the process serves HTTP (it is alive);
- ``/readyz``: 200 when every engine actor answered a survey within
  ``metrics.ready_timeout_seconds``, no journal refuses writes, the archive takes writes
  (:func:`infra.storage_probe.archive_problem`) and the engine is not draining, else 503; the
  body (JSON) says which check failed and why;
- ``/metrics``: the figures of :mod:`runtime.metrics`.

The probe keeps a drain: once a survey found the engine draining, a later one that finds it
not draining (the daemon restarted its actors, which ends their drain) drains it again, so a
drain lasts until the daemon stops.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST

from infra.config import Settings
from infra.logs import get_logger
from infra.storage_probe import archive_problem
from runtime.gateway import Gateway, UnavailableError
from runtime.metrics import render

__all__ = ["EngineProbe", "MetricsServer", "readiness", "serve", "start"]

log = get_logger("cx.metrics")

#: ``/readyz``'s problem while the engine drains.
DRAINING = "draining: the engine opens no new conversation (cx drain); send new work elsewhere"


class Surveyed(Protocol):
    """What the probe needs of a gateway."""

    def metrics(self) -> dict[str, Any]: ...
    def drain_status(self) -> dict[str, Any]: ...
    def drain_engine(self) -> dict[str, Any]: ...
    def close(self) -> None: ...


class EngineProbe:
    """Snapshots of the engine (``Gateway.metrics()``, and ``draining``), each waited for
    ``timeout_s`` at most, taken one at a time through one gateway (connected on first use,
    and again after a failure). ``extra``: figures of the calling process merged into
    ``restarts``. Once it has seen the engine draining, it drains an engine found not
    draining again (see the module's text)."""

    def __init__(
        self,
        connect: Callable[[], Surveyed],
        timeout_s: float,
        *,
        extra: Callable[[], Mapping[str, int]] | None = None,
    ) -> None:
        self._connect = connect
        self._timeout_s = timeout_s
        self._extra = extra
        self._gateway: Surveyed | None = None
        self._pending: Future[dict[str, Any]] | None = None
        self._closed = False
        #: Whether a survey found the engine draining (kept across restarts of the engine).
        self.drained = False
        self._lock = threading.Lock()

    def snapshot(self) -> dict[str, Any]:
        """The engine's figures; UnavailableError if they do not come within the bound (a survey
        still running is waited for instead of starting another)."""
        with self._lock:
            if self._pending is None or self._pending.done():
                self._pending = Future()
                threading.Thread(
                    target=self._run, args=(self._pending,), name="cx-metrics", daemon=True
                ).start()
            pending = self._pending
        try:
            return pending.result(self._timeout_s)
        except FutureTimeout:
            raise UnavailableError(
                f"the engine's actors did not all answer within {self._timeout_s:g} s"
            ) from None
        except Exception as error:
            raise UnavailableError(f"the engine did not answer: {error}") from None

    def close(self) -> None:
        """Close the gateway now, or once the survey still running ends."""
        with self._lock:
            self._closed = True
            running = self._pending is not None and not self._pending.done()
        if not running:
            self._drop()

    def _run(self, pending: Future[dict[str, Any]]) -> None:
        """One survey, on a daemon thread of its own (the only one using the gateway)."""
        try:
            pending.set_result(self._take())
        except Exception as error:
            pending.set_exception(error)
        with self._lock:
            closed = self._closed
        if closed:
            self._drop()

    def _take(self) -> dict[str, Any]:
        if self._gateway is None:
            self._gateway = self._connect()
        try:
            figures = self._gateway.metrics()
            figures["draining"] = self._draining(self._gateway)
        except Exception:
            self._drop()
            raise
        if self._extra is not None:
            figures["restarts"] = {**figures["restarts"], **self._extra()}
        return figures

    def _draining(self, gateway: Surveyed) -> bool:
        """Whether the engine drains; drained again if it was once and is not now."""
        draining = bool(gateway.drain_status()["draining"])
        if self.drained and not draining:
            draining = bool(gateway.drain_engine()["draining"])
            log.warning("engine_drain_restored", reason="the engine restarted while draining")
        self.drained = self.drained or draining
        return draining

    def _drop(self) -> None:
        with self._lock:
            gateway, self._gateway = self._gateway, None
        if gateway is not None:  # one to a gone engine may fail to close: it is dropped anyway
            with contextlib.suppress(Exception):
                gateway.close()


def readiness(probe: EngineProbe, settings: Settings) -> dict[str, str | None]:
    """Each check's problem, None where it passed: ``actors`` (every actor answered),
    ``journal`` (no conversation host's journal refuses writes), ``archive`` and
    ``draining`` (the engine opens new conversations)."""
    actors = journal = draining = None
    try:
        figures = probe.snapshot()
    except UnavailableError as error:
        actors = str(error)
    else:
        failing = figures["journal"]["failing_hosts"]
        if failing:
            journal = f"the journal of {failing} conversation host(s) refuses writes (see the log)"
        if figures.get("draining"):
            draining = DRAINING
    timeout_s = settings.metrics.ready_timeout_seconds
    archive = archive_problem(settings.storage, timeout_s=timeout_s)
    return {"actors": actors, "journal": journal, "archive": archive, "draining": draining}


class MetricsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, settings: Settings, probe: EngineProbe) -> None:
        self.settings = settings
        self.probe = probe
        port = settings.metrics.port
        assert port is not None, "metrics.port is null: the endpoint is off"
        super().__init__((settings.metrics.bind, port), _Handler)

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self.probe.close()


class _Handler(BaseHTTPRequestHandler):
    server: MetricsServer

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._answer(200, b"ok\n", "text/plain; charset=utf-8")
        elif path == "/readyz":
            checks = readiness(self.server.probe, self.server.settings)
            ready = all(problem is None for problem in checks.values())
            body = json.dumps({"ready": ready, "problems": checks}).encode() + b"\n"
            self._answer(200 if ready else 503, body, "application/json")
        elif path == "/metrics":
            self._answer(200, render(self.server.probe.snapshot), CONTENT_TYPE_LATEST)
        else:
            self._answer(404, b"not found: /metrics, /healthz or /readyz\n", "text/plain")

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # scrapes every few seconds would flood the engine's log


def start(
    settings: Settings, config: str, *, restarts: Callable[[], Mapping[str, int]]
) -> MetricsServer | None:
    """The daemon's endpoint for the engine that ``config`` names (None when
    ``metrics.port`` is null, or when its address cannot be bound: that is logged, and the
    engine runs without it). ``restarts``: the daemon's own restarts, by kind."""
    probe = EngineProbe(
        lambda: Gateway.connect(config), settings.metrics.ready_timeout_seconds, extra=restarts
    )
    try:
        return serve(settings, probe)
    except OSError as error:
        probe.close()
        log.error(
            "metrics endpoint not started",
            bind=settings.metrics.bind,
            port=settings.metrics.port,
            error=str(error),
        )
        return None


def serve(settings: Settings, probe: EngineProbe) -> MetricsServer | None:
    """Start the endpoint on a thread of its own (None when ``metrics.port`` is null); the
    caller stops it with ``MetricsServer.stop``."""
    if settings.metrics.port is None:
        probe.close()
        return None
    server = MetricsServer(settings, probe)
    threading.Thread(target=server.serve_forever, name="cx-metrics-http", daemon=True).start()
    return server
