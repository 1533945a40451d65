"""The archive's upkeep beside a running engine: webhook delivery and the retention sweep.

Work of the daemon (of the leader node with several nodes, so one process delivers each
webhook) in **lanes**, one thread each, so that one slow receiver never delays another:

- one :class:`WebhookLane` per webhook, holding its own archive connection and, with
  ``connect``, its own gateway to the engine, through which it follows the live conversations
  (:class:`~runtime.webhooks.LiveLook`); its POSTs block only its own thread;
- one :class:`SweepLane` when ``storage.retention_days`` is set, with its own archive
  connection.

Nothing runs when no webhook is configured and ``storage.retention_days`` is null. Each lane
opens what it needs on its own thread and closes it there (an SQLite connection belongs to its
thread). :meth:`Upkeep.tick` does what every lane has due at a given time, on the caller's
thread, and says when to come back; tests drive it with their own clock, the threads with the
wall clock.

While the engine does not answer (it is restarting, or stopped), a webhook's delivery goes on
from the archive alone, and the engine is looked at again at its next tick (a new gateway).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from infra.archive_errors import StorageError
from infra.archive_store import ArchiveStore, open_archive
from infra.config import Settings
from infra.config.webhooks import WebhookSettings
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
#: How much longer than the slowest webhook's POST timeout stop() waits for the threads.
STOP_GRACE_S = 2.0
#: Connections to the archive wait this long for another writer's lock.
BUSY_TIMEOUT_MS = 1000

#: Opens a gateway to the engine (``Gateway.connect``); what it raises is logged and tried
#: again at the next tick.
Connect = Callable[[], LiveSource]


def gateway_to(config: str | None) -> Connect | None:
    """How the daemon's upkeep reaches the engine that the file ``config`` names (None
    without a file: delivery from the archive alone)."""
    if config is None:
        return None
    return lambda: Gateway.connect(config)


class WebhookLane:
    """One webhook's delivery: its archive connection, its gateway and its dispatcher, all
    used by one thread at a time."""

    def __init__(
        self, settings: Settings, webhook: WebhookSettings, post: Post, connect: Connect | None
    ) -> None:
        self._settings, self.webhook, self._post = settings, webhook, post
        self._connect = connect
        self.name = f"cx-webhook-{webhook.name}"
        #: How long one step may block: its POST's timeout.
        self.step_s = webhook.timeout_seconds
        self._archive: ArchiveStore | None = None
        self.dispatcher: WebhookDispatcher | None = None
        self._engine: LiveSource | None = None
        self._engine_lost = False

    def tick(self, now_ms: int) -> int:
        """Deliver what is due at ``now_ms``; milliseconds until the next tick."""
        if self._archive is None or self.dispatcher is None:
            self._archive = open_archive(self._settings.storage, busy_timeout_ms=BUSY_TIMEOUT_MS)
            self.dispatcher = WebhookDispatcher(self._archive, self.webhook, post=self._post)
        live = self._look()
        try:
            return self.dispatcher.step(now_ms, live)
        except UnavailableError as error:  # the engine stopped answering meanwhile
            self._lost(error)
            return self.dispatcher.step(now_ms)

    def reset(self) -> None:
        """Close the archive connection after a fault (opened again at the next tick)."""
        archive, self._archive, self.dispatcher = self._archive, None, None
        if archive is not None:
            archive.close()

    def close(self) -> None:
        self.reset()
        self._drop_engine()

    def _look(self) -> LiveLook | None:
        """The engine's live conversations now; None without ``connect`` or while the engine
        does not answer."""
        if self._connect is None:
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
            log.info("webhook_engine_answers", webhook=self.webhook.name,
                     live=len(look.conversations))  # fmt: skip
        return look

    def _lost(self, error: Exception) -> None:
        """The engine does not answer: said once per outage, not at every tick."""
        if not self._engine_lost:
            self._engine_lost = True
            log.warning(
                "webhook_engine_unavailable", webhook=self.webhook.name, problem=str(error),
                error=type(error).__name__,
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


class SweepLane:
    """The retention sweep: every ``SWEEP_EVERY_MS``, the closed conversations that ended more
    than ``storage.retention_days`` ago are deleted."""

    name = "cx-retention"
    step_s = 0.0

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._archive: ArchiveStore | None = None
        self._sweep_at = 0

    def tick(self, now_ms: int) -> int:
        if self._archive is None:
            self._archive = open_archive(self._settings.storage, busy_timeout_ms=BUSY_TIMEOUT_MS)
        if now_ms >= self._sweep_at:
            self.sweep(now_ms)
            self._sweep_at = now_ms + SWEEP_EVERY_MS
        return self._sweep_at - now_ms

    def sweep(self, now_ms: int) -> int:
        """Delete the closed conversations older than ``storage.retention_days``; how many."""
        days = self._settings.storage.retention_days
        if days is None or self._archive is None:
            return 0
        deleted = self._archive.sweep_closed_before(now_ms - days * DAY_MS)
        if deleted:
            log.info("archive_retention_swept", deleted=deleted, retention_days=days)
        return deleted

    def reset(self) -> None:
        archive, self._archive = self._archive, None
        if archive is not None:
            archive.close()

    def close(self) -> None:
        self.reset()


Lane = WebhookLane | SweepLane


class Upkeep:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], int] = wall_ms,
        post: Post = post_http,
        connect: Connect | None = None,
    ) -> None:
        self._clock = clock
        self.lanes: Sequence[Lane] = (
            *(WebhookLane(settings, hook, post, connect) for hook in settings.webhooks),
            *((SweepLane(settings),) if settings.storage.retention_days is not None else ()),
        )
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def needed(self) -> bool:
        """Whether there is anything to do: a webhook, or a retention period."""
        return bool(self.lanes)

    @property
    def dispatchers(self) -> list[WebhookDispatcher]:
        """The webhooks' dispatchers opened so far."""
        return [
            lane.dispatcher
            for lane in self.lanes
            if isinstance(lane, WebhookLane) and lane.dispatcher is not None
        ]

    def start(self) -> None:
        """Run each lane in a daemon thread of its own until :meth:`stop`."""
        if self._threads:
            return
        for lane in self.lanes:
            thread = threading.Thread(target=self._run, args=(lane,), name=lane.name, daemon=True)
            self._threads.append(thread)
            thread.start()

    @property
    def running(self) -> bool:
        """Whether any of its threads runs."""
        return any(thread.is_alive() for thread in self._threads)

    def stop(self) -> None:
        """Stop every thread, waiting for the POSTs in progress to end (their timeouts); each
        thread closes what it opened. Without threads (:meth:`tick` called directly), close
        them here."""
        self._stop.set()
        if not self._threads:
            for lane in self.lanes:
                lane.close()
            return
        waited = max((lane.step_s for lane in self.lanes), default=0.0) + STOP_GRACE_S
        deadline = time.monotonic() + waited
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
        left = [thread.name for thread in self._threads if thread.is_alive()]
        if left:
            log.warning("upkeep_still_running", threads=left, waited_s=waited)

    def tick(self, now_ms: int) -> int:
        """Do what every lane has due at ``now_ms``, on this thread; milliseconds until the
        next tick."""
        return min((lane.tick(now_ms) for lane in self.lanes), default=SWEEP_EVERY_MS)

    def _run(self, lane: Lane) -> None:
        try:
            wait_ms = 0
            while not self._stop.wait(wait_ms / 1000):
                try:
                    wait_ms = lane.tick(self._clock())
                except Exception as error:  # the thread outlives any one fault
                    log.warning(
                        "upkeep_failed", lane=lane.name, problem=str(error),
                        error=type(error).__name__, retry_in_ms=RETRY_MS,
                        exc_info=not isinstance(error, StorageError),
                    )  # fmt: skip
                    lane.reset()
                    wait_ms = RETRY_MS
        finally:
            lane.close()
