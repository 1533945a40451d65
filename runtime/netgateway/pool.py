"""What every connection of the network gateway shares, and the totals kept over all of them.

The server and each :class:`~runtime.netgateway.connection.Connection` hold the one
:class:`ConnectionPool`: the limits, the bytes held now by all connections together (requests
read and not yet answered, outbound frames queued) with their peaks, the counters, who may hold
a connection (:class:`~runtime.netgateway.limits.Admission`), the token check and the worker
that runs the operations. A connection changes the totals; the pool decides what must give way
when they are over their bounds (docs/PROTOCOL.md, "Limits").
"""

from __future__ import annotations

import hmac
from typing import Any, Final, Generic, Protocol, TypeVar

from runtime.netgateway.limits import Admission, Limits
from runtime.netgateway.worker import Worker

__all__ = ["PROTOCOL_VERSION", "ConnectionPool", "Member"]

PROTOCOL_VERSION: Final = 1


class Member(Protocol):
    """A connection as the pool sees it."""

    in_bytes: int
    out_bytes: int

    def room(self) -> None:
        """Something was freed: look again whether reading may go on."""

    def disconnect(self, reason: str, message: str) -> None:
        """Close for a bound, with a last ``disconnect`` frame."""

    def __hash__(self) -> int: ...


M = TypeVar("M", bound=Member)


class ConnectionPool(Generic[M]):
    """The connections of one server; see the module docstring."""

    def __init__(self, limits: Limits, worker: Worker, token: bytes) -> None:
        self.limits = limits
        self.worker = worker
        self._token = token
        self.stats: dict[str, int] = {
            "accepted": 0,
            "refused": 0,  # at accept (per address) or at authentication (max_connections)
            "evicted": 0,  # still authenticating, closed to make room for a new connection
            "auth_failures": 0,
            "slow_clients": 0,  # disconnected: their own outbound queue was full
            "gateway_full": 0,  # disconnected: every connection's outbound bytes were too many
            "disconnected": 0,  # with a resume point, for either reason
            "paused": 0,  # times a connection's reading paused for its bounds (back-pressure)
            "closed_for_errors": 0,
            "peak_inflight_bytes": 0,  # all connections together, at any moment
            "peak_outbound_bytes": 0,
            "peak_connection_inflight_bytes": 0,  # the most one connection held
            "peak_connection_outbound_bytes": 0,
        }
        #: Bytes held now, all connections together: requests read and not yet answered,
        #: outbound frames queued.
        self.buffered_in = 0
        self.buffered_out = 0
        self.admission: Admission[M] = Admission(limits)
        self.members: set[M] = set()  # the connections being served
        self.paused: set[M] = set()  # reading paused for the bounds

    def token_matches(self, token: str) -> bool:
        return hmac.compare_digest(token.encode("utf-8"), self._token)

    def hello(self) -> dict[str, Any]:
        return {"protocol": PROTOCOL_VERSION, "max_frame_bytes": self.limits.max_frame_bytes}

    def peak(self, connection: M) -> None:
        stats = self.stats
        stats["peak_inflight_bytes"] = max(stats["peak_inflight_bytes"], self.buffered_in)
        stats["peak_outbound_bytes"] = max(stats["peak_outbound_bytes"], self.buffered_out)
        stats["peak_connection_inflight_bytes"] = max(
            stats["peak_connection_inflight_bytes"], connection.in_bytes
        )
        stats["peak_connection_outbound_bytes"] = max(
            stats["peak_connection_outbound_bytes"], connection.out_bytes
        )

    def room(self) -> None:
        """Requests were answered: connections paused for the total may read again."""
        for connection in list(self.paused):
            connection.room()

    def make_room_out(self, size: int, sender: M) -> bool:
        """Room for ``size`` more outbound bytes within ``total_outbound_bytes``: the
        connections with the most queued are disconnected until it fits. False when
        ``sender`` was one of them."""
        limit = self.limits.total_outbound_bytes
        while self.buffered_out and self.buffered_out + size > limit:
            fullest = max(self.members, key=lambda c: c.out_bytes)
            if not fullest.out_bytes:
                break
            self.stats["gateway_full"] += 1
            fullest.disconnect(
                "gateway_full",
                f"the gateway's outbound queues hold {self.buffered_out} bytes (the limit,"
                f" gateway.total_outbound_bytes, is {limit}); this connection had the most"
                f" queued ({fullest.out_bytes} bytes)",
            )
            if fullest is sender:
                return False
        return True
