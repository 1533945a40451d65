"""The archive's upkeep beside a running engine: webhook delivery and the retention sweep.

A thread of the daemon (of the leader node with several nodes, so one process delivers each
webhook) holding its own archive connection and, with a webhook configured, its own gateway
to the engine (``connect``), through which it follows the live conversations
(:class:`~runtime.webhooks.LiveLook`, one look per tick shared by every webhook). It does
nothing when no webhook is configured and ``storage.retention_days`` is null.
:meth:`Upkeep.tick` does what is due at a given time and says when to come back; tests drive
it with their own clock, the thread with the wall clock.

While the engine does not answer (it is restarting, or stopped), delivery goes on from the
archive alone, and the engine is looked at again at the next tick (a new gateway).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from infra.archive_errors import StorageError
from infra.archive_store import ArchiveStore, open_archive
from infra.config import Settings
from infra.logs import get_logger
from infra.timefmt import wall_ms
from runtime.gateway import Gateway
from runtime.gateway_inventory import MAX_LISTED
from runtime.gateway_types import UnavailableError
from runtime.webhooks import LiveLook, LiveSource, Post, WebhookDispatcher, post_http

log = get_logger("cx.upkeep")

DAY_MS = 86_400_000
#: Milliseconds between two retention sweeps.
SWEEP_EVERY_MS = 3_600_000
#: Milliseconds before trying again after the archive failed.
RETRY_MS = 5_000
#: How much longer than the slowest webhook's POST timeout stop() waits for the thread.
STOP_GRACE_S = 2.0

#: Opens a gateway to the engine (``Gateway.connect``); what it raises is logged and tried
#: again at the next tick.
Connect = Callable[[], LiveSource]


def gateway_to(config: str | None) -> Connect | None:
    """How the daemon's upkeep reaches the engine that the file ``config`` names (None
    without a file: delivery from the archive alone)."""
    if config is None:
        return None
    return lambda: Gateway.connect(config)


class Upkeep:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], int] = wall_ms,
        post: Post = post_http,
        connect: Connect | None = None,
    ) -> None:
        self._settings, self._clock, self._post = settings, clock, post
        self._connect = connect
        self._engine: LiveSource | None = None
        self._engine_lost = False
        self._archive: ArchiveStore | None = None
        self.dispatchers: list[WebhookDispatcher] = []
        self._sweep_at = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def needed(self) -> bool:
        """Whether there is anything to do: a webhook, or a retention period."""
        return bool(self._settings.webhooks) or self._settings.storage.retention_days is not None

    def start(self) -> None:
        """Run in a daemon thread until :meth:`stop` (nothing is started when not needed)."""
        if self.needed and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="cx-upkeep", daemon=True)
            self._thread.start()

    @property
    def running(self) -> bool:
        """Whether its thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        """Stop the thread, waiting for a POST in progress to end (its timeout); the thread
        closes what it opened (an SQLite connection belongs to its thread). Without a thread
        (:meth:`tick` called directly), close them here."""
        self._stop.set()
        if self._thread is not None:
            timeouts = [webhook.timeout_seconds for webhook in self._settings.webhooks]
            self._thread.join(max(timeouts, default=0.0) + STOP_GRACE_S)
            if self._thread.is_alive():
                log.warning("upkeep_still_running", waited_s=max(timeouts, default=0.0))
            return
        self._close()

    def _close(self) -> None:
        if self._archive is not None:
            self._archive.close()
            self._archive = None
        self._drop_engine()

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self._close()

    def _loop(self) -> None:
        wait_ms = 0
        while not self._stop.wait(wait_ms / 1000):
            try:
                wait_ms = self.tick(self._clock())
            except Exception as error:  # the thread outlives any one fault
                log.warning(
                    "upkeep_failed", problem=str(error), error=type(error).__name__,
                    retry_in_ms=RETRY_MS, exc_info=not isinstance(error, StorageError),
                )  # fmt: skip
                if self._archive is not None:
                    self._archive.close()
                    self._archive = None
                    self.dispatchers = []
                wait_ms = RETRY_MS

    def tick(self, now_ms: int) -> int:
        """Deliver and sweep what is due at ``now_ms``; milliseconds until the next tick."""
        if self._archive is None:
            self._archive = open_archive(self._settings.storage, busy_timeout_ms=1000)
            self.dispatchers = [
                WebhookDispatcher(self._archive, webhook, post=self._post)
                for webhook in self._settings.webhooks
            ]
        live = self._look()
        waits = []
        for dispatcher in self.dispatchers:
            try:
                waits.append(dispatcher.step(now_ms, live))
            except UnavailableError as error:  # the engine stopped answering meanwhile
                self._lost(error)
                live = None
                waits.append(dispatcher.step(now_ms))
        days = self._settings.storage.retention_days
        if days is not None:
            if now_ms >= self._sweep_at:
                self.sweep(now_ms)
                self._sweep_at = now_ms + SWEEP_EVERY_MS
            waits.append(self._sweep_at - now_ms)
        return min(waits, default=SWEEP_EVERY_MS)

    def _look(self) -> LiveLook | None:
        """The engine's live conversations now; None without a webhook, without ``connect``
        or while the engine does not answer."""
        if self._connect is None or not self.dispatchers:
            return None
        try:
            if self._engine is None:
                self._engine = self._connect()
            look = LiveLook(self._engine.conversations(limit=MAX_LISTED), self._engine)
        except Exception as error:  # no engine now: the archive alone until the next tick
            self._lost(error)
            return None
        if self._engine_lost:
            self._engine_lost = False
            log.info("webhook_engine_answers", live=len(look.conversations))
        return look

    def _lost(self, error: Exception) -> None:
        """The engine does not answer: said once per outage, not at every tick."""
        if not self._engine_lost:
            self._engine_lost = True
            log.warning(
                "webhook_engine_unavailable", problem=str(error), error=type(error).__name__,
                delivering="from the archive alone until the engine answers",
            )  # fmt: skip
        self._drop_engine()

    def _drop_engine(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            try:
                engine.close()
            except Exception as error:  # a gateway to a gone engine may fail to close
                log.debug("webhook_gateway_close_failed", problem=str(error))

    def sweep(self, now_ms: int) -> int:
        """Delete the closed conversations older than ``storage.retention_days``; how many."""
        days = self._settings.storage.retention_days
        if days is None or self._archive is None:
            return 0
        deleted = self._archive.sweep_closed_before(now_ms - days * DAY_MS)
        if deleted:
            log.info("archive_retention_swept", deleted=deleted, retention_days=days)
        return deleted
