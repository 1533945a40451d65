"""The bounds of the network gateway, and who may hold a connection.

:class:`Limits` holds every bound of the server (docs/PROTOCOL.md, "Limits"); the ones an
operator may change come from the ``gateway`` section of config.yaml (:func:`limits_of`).

:class:`Admission` decides, for a new connection, whether it is let in and which connection
still authenticating makes room for it. Connections still authenticating and authenticated ones
are counted apart, so that peers without the token cannot take the places of those with it:

- connections still authenticating have a small allowance of their own, overall
  (``max_unauthenticated``) and per remote address (``max_unauthenticated_per_peer``). When
  either is used up, a new connection takes the place of the oldest one still authenticating
  (of the same address, or overall): a peer holding sockets open without authenticating keeps
  nobody out, and each of those sockets is closed after ``auth_timeout_s`` anyway;
- a remote address holds at most ``max_connections_per_peer`` connections in all; beyond, a
  new one from it is refused (after one of its own still authenticating, if any, was closed to
  make room);
- authenticated connections have their own cap (``max_connections``), checked when a
  connection authenticates.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass, field, fields
from typing import Generic, TypeVar

from infra.config import DEFAULTS, Settings
from runtime.netgateway.worker import WorkerLimits

__all__ = ["Admission", "Admitted", "Limits", "limits_of"]

MIB = 1024 * 1024
#: The bounds config.yaml may set (``gateway``): their defaults are the configuration's.
_CONFIGURED = DEFAULTS["gateway"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Every bound of the server (docs/PROTOCOL.md, "Limits"); those config.yaml sets default
    to the configuration's defaults."""

    #: Largest frame body accepted from an authenticated client (``gateway.max_frame_bytes``).
    max_frame_bytes: int = _CONFIGURED["max_frame_bytes"]
    #: Largest frame before authentication (an auth frame is small).
    auth_frame_bytes: int = 4096
    #: Failed authentication attempts before the connection is closed.
    auth_failures: int = 3
    #: Time a new connection has to authenticate (``gateway.auth_timeout_seconds``).
    auth_timeout_s: float = _CONFIGURED["auth_timeout_seconds"]
    #: Consecutive protocol errors (bad frames, unknown ops, bad arguments) before closing.
    consecutive_errors: int = 16
    #: Time the rest of a frame may take once its length prefix has arrived (per chunk when
    #: an oversized body is discarded).
    frame_timeout_s: float = 30.0
    #: An oversized frame up to this size is read and discarded; a bigger one closes the
    #: connection (it is more likely a client out of step than a frame).
    skip_limit_bytes: int = 64 * MIB
    #: Outbound frames (answers and pushed events) queued for one client, and their bytes
    #: (``gateway.outbound_bytes``). Over half of either, the connection's requests are no
    #: longer read; at the bound it is disconnected with its resume point.
    outbound_frames: int = 1024
    outbound_bytes: int = _CONFIGURED["outbound_bytes"]
    #: Outbound bytes queued for all clients together (``gateway.total_outbound_bytes``);
    #: beyond, the client with the most queued is disconnected with its resume point.
    total_outbound_bytes: int = _CONFIGURED["total_outbound_bytes"]
    #: Requests of one connection queued or running at once; beyond, its reading pauses.
    inflight_requests: int = 64
    #: Bytes of the requests of one connection read and not yet answered
    #: (``gateway.inflight_bytes``); beyond, its reading pauses (one frame is always taken
    #: when none is pending).
    inflight_bytes: int = _CONFIGURED["inflight_bytes"]
    #: The same, all connections together (``gateway.total_inflight_bytes``).
    total_inflight_bytes: int = _CONFIGURED["total_inflight_bytes"]
    #: Authenticated connections (``gateway.max_connections``); one more is answered
    #: ``unavailable`` when it authenticates, then closed.
    max_connections: int = _CONFIGURED["max_connections"]
    #: Connections still authenticating, all peers (``gateway.max_unauthenticated``), and
    #: from one remote address (``gateway.max_unauthenticated_per_peer``): when full, the
    #: oldest one makes room for the new one.
    max_unauthenticated: int = _CONFIGURED["max_unauthenticated"]
    max_unauthenticated_per_peer: int = _CONFIGURED["max_unauthenticated_per_peer"]
    #: Connections from one remote address, authenticated or not
    #: (``gateway.max_connections_per_peer``); one more is refused.
    max_connections_per_peer: int = _CONFIGURED["max_connections_per_peer"]
    #: Requests waiting for the worker, all connections together; beyond, ``unavailable``.
    worker_queue: int = 4096
    #: A request that waited longer than this for the worker is answered ``unavailable``
    #: without being carried out.
    queue_timeout_s: float = 10.0
    #: How long the idle worker listens for pushed events before looking at its queue again:
    #: from ``min_poll_s`` after any activity, doubling while idle, up to ``poll_s``. A request
    #: arriving while a connected Gateway listens waits for the end of that window.
    poll_s: float = 0.02
    min_poll_s: float = 0.001
    #: How often the worker probes the engine (when it has a probe).
    health_interval_s: float = 1.0
    #: Subscriptions one connection may hold.
    subscriptions: int = 1000

    def __post_init__(self) -> None:
        for item in fields(self):
            if getattr(self, item.name) <= 0:
                raise ValueError(f"Limits.{item.name} must be > 0")

    def worker_limits(self) -> WorkerLimits:
        return WorkerLimits(
            queue_timeout_s=self.queue_timeout_s,
            poll_s=self.poll_s,
            min_poll_s=self.min_poll_s,
            health_interval_s=self.health_interval_s,
            subscriptions=self.subscriptions,
        )


def limits_of(settings: Settings) -> Limits:
    """The limits config.yaml sets (``gateway``), the others at their defaults."""
    gateway = settings.gateway
    return Limits(
        max_frame_bytes=gateway.max_frame_bytes,
        auth_timeout_s=gateway.auth_timeout_seconds,
        max_connections=gateway.max_connections,
        max_unauthenticated=gateway.max_unauthenticated,
        max_unauthenticated_per_peer=gateway.max_unauthenticated_per_peer,
        max_connections_per_peer=gateway.max_connections_per_peer,
        inflight_bytes=gateway.inflight_bytes,
        total_inflight_bytes=gateway.total_inflight_bytes,
        outbound_bytes=gateway.outbound_bytes,
        total_outbound_bytes=gateway.total_outbound_bytes,
    )


C = TypeVar("C", bound=Hashable)


@dataclass(slots=True)
class Admitted(Generic[C]):
    """What :meth:`Admission.admit` decided: ``refused`` (why) or let in, after closing the
    connections of ``evict`` (each still authenticating) to make room."""

    evict: list[tuple[C, str]] = field(default_factory=list)
    refused: str | None = None


class Admission(Generic[C]):
    """Who holds a connection: per remote address, authenticated or still authenticating.

    Pure bookkeeping (no sockets): the server asks :meth:`admit` for each new connection,
    tells :meth:`authenticated` and :meth:`leave`, and closes what it is told to close."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._peer: dict[C, str] = {}
        self._pending: dict[C, None] = {}  # still authenticating, oldest first
        self._pending_of: dict[str, dict[C, None]] = {}
        self._authenticated: set[C] = set()
        self._count_of: Counter[str] = Counter()

    # ------------------------------------------------------------------ counts

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def authenticated_count(self) -> int:
        return len(self._authenticated)

    def pending_of(self, peer: str) -> int:
        return len(self._pending_of.get(peer, {}))

    def count_of(self, peer: str) -> int:
        return self._count_of[peer]

    # ------------------------------------------------------------------ changes

    def admit(self, connection: C, peer: str) -> Admitted[C]:
        """Let ``connection`` from ``peer`` in (as still authenticating), or refuse it."""
        limits = self._limits
        decision: Admitted[C] = Admitted()
        own = self._pending_of.get(peer, {})
        if own and (
            len(own) >= limits.max_unauthenticated_per_peer
            or self._count_of[peer] >= limits.max_connections_per_peer
        ):
            oldest = next(iter(own))
            decision.evict.append(
                (
                    oldest,
                    f"{len(own)} connections from {peer} are waiting to authenticate (the"
                    f" limit per address is {limits.max_unauthenticated_per_peer}): the oldest"
                    " makes room for a new one",
                )
            )
            self.leave(oldest)
        if self._count_of[peer] >= limits.max_connections_per_peer:
            decision.refused = (
                f"{self._count_of[peer]} connections from {peer} (the limit per address,"
                " gateway.max_connections_per_peer)"
            )
            return decision
        if len(self._pending) >= limits.max_unauthenticated:
            oldest = next(iter(self._pending))
            decision.evict.append(
                (
                    oldest,
                    f"{len(self._pending)} connections are waiting to authenticate (the limit,"
                    " gateway.max_unauthenticated): the oldest makes room for a new one",
                )
            )
            self.leave(oldest)
        self._peer[connection] = peer
        self._pending[connection] = None
        self._pending_of.setdefault(peer, {})[connection] = None
        self._count_of[peer] += 1
        return decision

    def authenticated(self, connection: C) -> str | None:
        """``connection`` presented the token: None once it counts as authenticated, else why
        it is refused (the authenticated connections are at their limit)."""
        if connection in self._authenticated:
            return None
        if len(self._authenticated) >= self._limits.max_connections:
            return (
                f"the gateway has {len(self._authenticated)} authenticated connections (the"
                " limit, gateway.max_connections)"
            )
        peer = self._peer[connection]
        self._drop_pending(connection, peer)
        self._authenticated.add(connection)
        return None

    def leave(self, connection: C) -> None:
        """``connection`` is closed (idempotent)."""
        peer = self._peer.pop(connection, None)
        if peer is None:
            return
        self._drop_pending(connection, peer)
        self._authenticated.discard(connection)
        self._count_of[peer] -= 1
        if not self._count_of[peer]:
            del self._count_of[peer]

    def _drop_pending(self, connection: C, peer: str) -> None:
        self._pending.pop(connection, None)
        own = self._pending_of.get(peer)
        if own is not None:
            own.pop(connection, None)
            if not own:
                del self._pending_of[peer]
