"""The network gateway's TCP server (asyncio) and ``cx gateway``.

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
import hmac
import ipaddress
import itertools
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Final

from domain.errors import CxError, ErrorKind
from infra import proctitle
from infra.config import ConfigError, Settings, load_config, token_problem
from infra.logs import configure_logging, get_logger
from runtime.gateway import Gateway
from runtime.netgateway.codec import failure
from runtime.netgateway.connection import FLUSH_TIMEOUT_S, Connection
from runtime.netgateway.limits import Admission, Limits, limits_of
from runtime.netgateway.worker import Worker

__all__ = [
    "PROTOCOL_VERSION",
    "TOKEN_VARIABLE",
    "Limits",
    "ListenError",
    "NetGateway",
    "admin_probe",
    "resolve_token",
    "run_gateway",
    "serve",
]

log = get_logger("cx.netgateway")

PROTOCOL_VERSION: Final = 1
#: Where the token comes from when ``gateway.token`` is null.
TOKEN_VARIABLE: Final = "CX_GATEWAY_TOKEN"


class ListenError(CxError, OSError):
    """The server could not listen on its address (in use, not an address of this host)."""

    kind = ErrorKind.UNAVAILABLE


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
        self._token = token.encode("utf-8")
        self.limits = limits or Limits()
        self.host, self.port = split_listen(listen)
        self.worker = Worker(gateway, self.limits.worker_limits(), probe=probe)
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
        self.admission: Admission[Connection] = Admission(self.limits)
        self._connections: set[Connection] = set()
        self.paused: set[Connection] = set()  # reading paused for the bounds
        self._numbers = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # ------------------------------------------------------------------ public

    @property
    def connections(self) -> int:
        return len(self._connections)

    def token_matches(self, token: str) -> bool:
        return hmac.compare_digest(token.encode("utf-8"), self._token)

    def peak(self, connection: Connection) -> None:
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

    def make_room_out(self, size: int, sender: Connection) -> bool:
        """Room for ``size`` more outbound bytes within ``total_outbound_bytes``: the
        connections with the most queued are disconnected until it fits. False when
        ``sender`` was one of them."""
        limit = self.limits.total_outbound_bytes
        while self.buffered_out and self.buffered_out + size > limit:
            fullest = max(self._connections, key=lambda c: c.out_bytes)
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

    def hello(self) -> dict[str, Any]:
        return {"protocol": PROTOCOL_VERSION, "max_frame_bytes": self.limits.max_frame_bytes}

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
            for connection in list(self._connections):
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
        connection = Connection(self, reader, writer, next(self._numbers), peer)
        decision = self.admission.admit(connection, peer)
        for evicted, reason in decision.evict:
            self.stats["evicted"] += 1
            log.warning("connection still authenticating closed", peer=evicted.name, reason=reason)
            evicted.send(failure(None, ErrorKind.UNAVAILABLE, f"{reason}; closing"))
            evicted.close_after_flush()
        if decision.refused is not None:
            self.stats["refused"] += 1
            log.warning("connection refused", peer=connection.name, reason=decision.refused)
            with contextlib.suppress(ConnectionError, OSError):
                writer.write(failure(None, ErrorKind.UNAVAILABLE, f"{decision.refused}; closing"))
                writer.close()
            return
        self.stats["accepted"] += 1
        self._connections.add(connection)
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
            self.admission.leave(connection)  # its place is free as soon as it stops reading
            connection.close_after_flush()
            try:
                async with asyncio.timeout(FLUSH_TIMEOUT_S):
                    await writing
            except (TimeoutError, asyncio.CancelledError):
                connection.abort("its last frames could not be written in time")
                writing.cancel()
            self._connections.discard(connection)
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


# ------------------------------------------------------------------------------ cx gateway


def resolve_token(settings: Settings) -> str:
    """``gateway.token``, else the environment variable; ConfigError when there is neither,
    or when it is too short (config.py refuses a short ``gateway.token`` already)."""
    token = settings.gateway.token or os.environ.get(TOKEN_VARIABLE, "")
    if not token.strip():
        raise ConfigError(
            settings.source,
            "gateway.token",
            f"the network gateway needs a shared token: set gateway.token or the environment"
            f" variable {TOKEN_VARIABLE}",
        )
    problem = token_problem(token)
    if problem is not None:
        raise ConfigError(settings.source, f"gateway.token ({TOKEN_VARIABLE})", problem)
    return token


def admin_probe(settings: Settings, timeout: float = 0.5) -> Callable[[], str | None]:
    """None while the actor system's admin port accepts a connection, else why not."""
    address = (settings.system.bind, settings.system.admin_port)

    def probe() -> str | None:
        try:
            with socket.create_connection(address, timeout=timeout):
                return None
        except OSError as error:
            return (
                f"the actor system at {address[0]}:{address[1]} cannot be reached:"
                f" {error.strerror or error}"
            )

    return probe


def run_gateway(
    config_path: str | os.PathLike[str],
    *,
    connect: Callable[[str], Gateway] | None = None,
) -> int:
    """``cx gateway``: serve the running engine over TCP until SIGINT or SIGTERM.

    ``connect(config_path)`` builds the Gateway (default :meth:`Gateway.connect`); it is
    called again to reconnect after the engine was unreachable. Raises ConfigError without a
    token, and whatever ``connect`` raises when no engine runs.
    """
    path = os.fspath(config_path)
    settings = load_config(path)
    configure_logging(settings.logging)
    token = resolve_token(settings)
    split_listen(settings.gateway.listen)
    builder = connect if connect is not None else Gateway.connect
    proctitle.set_title(proctitle.with_config(f"gateway {settings.gateway.listen}", path))

    def build() -> Gateway:  # on the worker thread: name it for ps -T and top -H
        proctitle.set_thread_title("cx-gw-worker")
        return builder(path)

    server = NetGateway(
        build,
        listen=settings.gateway.listen,
        token=token,
        limits=limits_of(settings),
        probe=admin_probe(settings),
    )

    def ready(running: NetGateway) -> None:
        print(
            f"cx gateway: serving on {running.host}:{running.port} (engine admin"
            f" {settings.system.bind}:{settings.system.admin_port}); Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )

    try:
        server.run(ready)
    except ListenError as error:
        raise ConfigError(settings.source, "gateway.listen", error.strerror or str(error)) from None
    return 0
