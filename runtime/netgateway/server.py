"""The network gateway's TCP server (asyncio); ``cx gateway`` is :mod:`runtime.netgateway.command`.

Threads: the asyncio loop (the main thread under ``cx gateway``, a background thread under
:func:`serve`) reads and writes every connection (:mod:`runtime.netgateway.connection`); one
:class:`~runtime.netgateway.worker.Worker` thread holds the Gateway and runs the operations in
order. Answers come back to the loop with ``loop.call_soon_threadsafe``. Neither side ever
waits for a client: what the server holds for each connection, and for all of them, is bounded
(:mod:`runtime.netgateway.limits`), and who may hold a connection is decided by
:class:`~runtime.netgateway.limits.Admission`.

The protocol, its limits and the reasons for them: docs/PROTOCOL.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import replace

from domain.errors import CxError, ErrorKind
from infra.config import token_problem
from infra.logs import get_logger
from runtime.gateway import Gateway
from runtime.netgateway.codec import failure
from runtime.netgateway.connection import Connection
from runtime.netgateway.limits import Admission, Limits
from runtime.netgateway.outbound import FLUSH_TIMEOUT_S
from runtime.netgateway.pool import ConnectionPool
from runtime.netgateway.worker import Worker

__all__ = ["ListenError", "NetGateway", "serve", "split_listen"]

log = get_logger("cx.netgateway")



class ListenError(CxError, OSError):
    kind = ErrorKind.UNAVAILABLE

    """The server could not listen on its address (in use, not an address of this host)."""


def split_listen(listen: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:7700`` for IPv6) as (host, port)."""
    host, _, port = listen.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f'listen address must be "host:port", got {listen!r}')
    return host, int(port)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ------------------------------------------------------------------------------ the server


class NetGateway:
    """The network gateway: a TCP server on ``listen`` in front of one Gateway.

    ``gateway`` is a built Gateway (the caller keeps it and closes it after :meth:`close`;
    only the worker thread touches it meanwhile) or a function that builds one (called on the
    worker thread; the server closes it, and calls it again to reconnect after the engine was
    unreachable). ``probe`` returns None while the engine is reachable, else why not.
    """

    def __init__(
        self,
        gateway: Gateway | Callable[[], Gateway],
        *,
        listen: str = "127.0.0.1:7700",
        token: str,
        limits: Limits | None = None,
        probe: Callable[[], str | None] | None = None,
    ) -> None:
        problem = token_problem(token) if isinstance(token, str) else "the token is not a string"
        if problem is not None:
            raise ValueError(f"the network gateway's token is refused: {problem}")
        self.limits = limits or Limits()
        self.host, self.port = split_listen(listen)
        self.worker = Worker(gateway, self.limits.worker_limits(), probe=probe)
        self.pool: ConnectionPool[Connection] = ConnectionPool(
            self.limits, self.worker, token.encode("utf-8")
        )
        self._numbers = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # ------------------------------------------------------------------ public

    @property
    def connections(self) -> int:
        return len(self.pool.members)

    @property
    def stats(self) -> dict[str, int]:
        """Counters and peaks since the server started (see :class:`ConnectionPool`)."""
        return self.pool.stats

    @property
    def admission(self) -> Admission[Connection]:
        return self.pool.admission

    @property
    def paused(self) -> set[Connection]:
        """The connections whose reading is paused for the bounds."""
        return self.pool.paused

    @property
    def buffered_in(self) -> int:
        """Bytes of requests read and not yet answered, all connections together."""
        return self.pool.buffered_in

    @property
    def buffered_out(self) -> int:
        """Bytes of outbound frames queued, all connections together."""
        return self.pool.buffered_out

    def start(self, timeout: float = 60.0) -> NetGateway:
        """Serve from a background thread; returns once listening (``.port`` is set)."""
        self._thread = threading.Thread(target=self._thread_main, name="cx-netgateway", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            self.close()
            raise TimeoutError(f"the network gateway did not start within {timeout:g} s")
        if self._error is not None:
            self._thread.join(timeout)
            raise self._error
        return self

    def run(self, on_ready: Callable[[NetGateway], None] | None = None) -> None:
        """Serve from this thread until SIGINT or SIGTERM (or :meth:`close`)."""

        async def main() -> None:
            loop = asyncio.get_running_loop()
            if threading.current_thread() is threading.main_thread():
                for number in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(number, self._request_stop)
            await self._main(on_ready)

        asyncio.run(main())

    def close(self, timeout: float = 15.0) -> None:
        """Stop serving: close every connection, stop the worker. Idempotent."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # already stopped
                loop.call_soon_threadsafe(self._request_stop)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                log.warning("the network gateway did not stop in time")

    def __enter__(self) -> NetGateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ loop

    def _request_stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._main(None))
        except BaseException as error:
            if not self._ready.is_set():
                self._error = error
            else:
                log.exception("the network gateway failed")
        finally:
            self._ready.set()

    async def _main(self, on_ready: Callable[[NetGateway], None] | None) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.worker.start()
        await asyncio.to_thread(self.worker.ready.wait)
        if self.worker.startup_error is not None:
            raise self.worker.startup_error
        try:
            server = await asyncio.start_server(self._accept, self.host, self.port)
        except BaseException as error:
            self.worker.stop()
            await asyncio.to_thread(self.worker.join, 10.0)
            if isinstance(error, OSError):
                raise ListenError(
                    error.errno,
                    f"cannot listen on {self.host}:{self.port}: {error.strerror or error}",
                ) from error
            raise
        self.port = int(server.sockets[0].getsockname()[1])
        if not _is_loopback(self.host):
            log.warning(
                "the network gateway listens beyond loopback: every host that reaches it may try"
                " the token, which travels in clear text (use a trusted network or TLS in front)",
                listen=f"{self.host}:{self.port}",
            )
        log.info("network gateway listening", host=self.host, port=self.port)
        self._ready.set()
        if on_ready is not None:
            on_ready(self)
        try:
            await self._stop.wait()
        finally:
            server.close()
            for connection in list(self.pool.members):
                connection.abort("the gateway is shutting down")
            self.worker.stop()
            await asyncio.to_thread(self.worker.join, 10.0)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FLUSH_TIMEOUT_S):
                    await server.wait_closed()
            log.info("network gateway stopped")

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        address = writer.get_extra_info("peername")
        peer = str(address[0]) if isinstance(address, tuple) else str(address)
        connection = Connection(self.pool, reader, writer, next(self._numbers), peer)
        decision = self.pool.admission.admit(connection, peer)
        for evicted, reason in decision.evict:
            self.pool.stats["evicted"] += 1
            log.warning("connection still authenticating closed", peer=evicted.name, reason=reason)
            evicted.send(failure(None, ErrorKind.UNAVAILABLE, f"{reason}; closing"))
            evicted.close_after_flush()
        if decision.refused is not None:
            self.pool.stats["refused"] += 1
            log.warning("connection refused", peer=connection.name, reason=decision.refused)
            with contextlib.suppress(ConnectionError, OSError):
                writer.write(failure(None, ErrorKind.UNAVAILABLE, f"{decision.refused}; closing"))
                writer.close()
            return
        self.pool.stats["accepted"] += 1
        self.pool.members.add(connection)
        log.info("connection opened", peer=connection.name)
        writing = asyncio.create_task(connection.write_frames())
        try:
            await connection.read_frames()
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass  # the client went away (or was dropped)
        except Exception:
            log.exception("connection failed", peer=connection.name)
            connection.abort("internal error (logged)")
        finally:
            self.pool.admission.leave(connection)  # its place is free as soon as it stops reading
            connection.close_after_flush()
            try:
                async with asyncio.timeout(FLUSH_TIMEOUT_S):
                    await writing
            except (TimeoutError, asyncio.CancelledError):
                connection.abort("its last frames could not be written in time")
                writing.cancel()
            self.pool.members.discard(connection)
            connection.release()
            self.worker.gone(connection)
            log.info("connection closed", peer=connection.name)


def serve(
    gateway: Gateway | Callable[[], Gateway],
    listen: str = "127.0.0.1:0",
    token: str = "",
    max_frame_bytes: int | None = None,
    *,
    limits: Limits | None = None,
    probe: Callable[[], str | None] | None = None,
) -> NetGateway:
    """Start a network gateway in a background thread; ``.port`` is its port, ``.close()``
    stops it. ``max_frame_bytes`` overrides ``limits.max_frame_bytes``."""
    chosen = limits or Limits()
    if max_frame_bytes is not None:
        chosen = replace(chosen, max_frame_bytes=max_frame_bytes)
    return NetGateway(gateway, listen=listen, token=token, limits=chosen, probe=probe).start()
