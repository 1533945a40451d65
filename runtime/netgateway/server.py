"""The network gateway's TCP server (asyncio), its connections, and ``cx gateway``.

Threads: the asyncio loop (the main thread under ``cx gateway``, a background thread under
:func:`serve`) reads and writes every connection; one :class:`~runtime.netgateway.worker.Worker`
thread holds the Gateway and runs the operations in order. Answers come back to the loop with
``loop.call_soon_threadsafe``. Neither side ever waits for a client: each connection has a
bounded outbound queue, and a client that does not read is disconnected when it is full.

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
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, Final

from runtime.config import ConfigError, Settings, load_config
from runtime.gateway import Gateway
from runtime.logs import configure_logging, get_logger
from runtime.netgateway.codec import (
    HEADER,
    ProtocolError,
    Request,
    answer,
    decode,
    failure,
    parse_request,
    request_id_of,
)
from runtime.netgateway.ops import OPS, check_args
from runtime.netgateway.worker import Job, Worker, WorkerLimits

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
_WRITE_CHUNK = 64 * 1024
_SKIP_CHUNK = 64 * 1024
_FLUSH_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class Limits:
    """Every bound of the server (docs/PROTOCOL.md, "Limits")."""

    #: Largest frame body accepted from an authenticated client (``gateway.max_frame_bytes``).
    max_frame_bytes: int = 1_048_576
    #: Largest frame before authentication (an auth frame is small).
    auth_frame_bytes: int = 4096
    #: Failed authentication attempts before the connection is closed.
    auth_failures: int = 3
    #: Time a new connection has to authenticate.
    auth_timeout_s: float = 10.0
    #: Consecutive protocol errors (bad frames, unknown ops, bad arguments) before closing.
    consecutive_errors: int = 16
    #: Time the rest of a frame may take once its length prefix has arrived (per chunk when
    #: an oversized body is discarded).
    frame_timeout_s: float = 30.0
    #: An oversized frame up to this size is read and discarded; a bigger one closes the
    #: connection (it is more likely a client out of step than a frame).
    skip_limit_bytes: int = 64 * 1024 * 1024
    #: Outbound frames (answers and pushed events) queued for one client, and their bytes.
    outbound_frames: int = 1024
    outbound_bytes: int = 16 * 1024 * 1024
    #: Requests of one connection queued or running at once; beyond, its reading pauses.
    inflight_requests: int = 64
    #: Open connections; more are refused (an ``unavailable`` frame, then closed).
    max_connections: int = 256
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


class ListenError(OSError):
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


# ------------------------------------------------------------------------------ connections


class _Connection:
    """One client. Everything here runs on the loop thread except :meth:`deliver` and
    :meth:`drop`, the worker's way in."""

    def __init__(
        self,
        server: NetGateway,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        number: int,
    ) -> None:
        peer = writer.get_extra_info("peername")
        where = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.name = f"{where}#{number}"
        self._server = server
        self._limits = server.limits
        self._reader = reader
        self._writer = writer
        self._loop = asyncio.get_running_loop()
        self.authenticated = False
        self.auth_failures = 0
        self.errors = 0  # consecutive protocol errors
        self._out: deque[bytes] = deque()
        self._out_bytes = 0
        self._wake = asyncio.Event()
        self._inflight = asyncio.Semaphore(self._limits.inflight_requests)
        self._closing = False  # reading stopped; what is queued is written, then closed
        self._closed = False  # the transport is closed or aborted

    # ------------------------------------------------------------------ worker side

    def deliver(self, frame: bytes, *, is_answer: bool) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has stopped: nobody to tell
            self._loop.call_soon_threadsafe(self._delivered, frame, is_answer)

    def drop(self, reason: str) -> None:
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self.abort, reason)

    def _delivered(self, frame: bytes, is_answer: bool) -> None:
        if is_answer:
            self._inflight.release()
        self.send(frame)

    # ------------------------------------------------------------------ output

    def send(self, frame: bytes) -> None:
        """Queue a frame; a client whose queue is full is disconnected (it does not read)."""
        if self._closing or self._closed:
            return
        if self._out and (
            len(self._out) >= self._limits.outbound_frames
            or self._out_bytes + len(frame) > self._limits.outbound_bytes
        ):
            self._server.stats["slow_clients"] += 1
            self.abort(
                f"outbound queue full ({len(self._out)} frames, {self._out_bytes} bytes):"
                " the client does not read"
            )
            return
        self._out.append(frame)
        self._out_bytes += len(frame)
        self._wake.set()

    def close_after_flush(self) -> None:
        """Stop reading; write what is queued, then close."""
        self._closing = True
        self._wake.set()

    def abort(self, reason: str) -> None:
        """Close at once, dropping what is queued."""
        if self._closed:
            return
        log.info("connection dropped", peer=self.name, reason=reason)
        self._closed = True
        self._closing = True
        self._out.clear()
        self._out_bytes = 0
        self._writer.transport.abort()
        self._wake.set()

    async def write_frames(self) -> None:
        try:
            while not self._closed:
                if not self._out:
                    if self._closing:
                        break
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                chunk: list[bytes] = []
                size = 0
                while self._out and size < _WRITE_CHUNK:
                    frame = self._out.popleft()
                    chunk.append(frame)
                    size += len(frame)
                self._out_bytes -= size
                self._writer.write(b"".join(chunk))
                await self._writer.drain()
        except (ConnectionError, OSError):
            self.abort("the client went away")
        finally:
            if not self._closed:
                self._closed = True
                self._writer.close()

    # ------------------------------------------------------------------ input

    async def read_frames(self) -> None:
        limits = self._limits
        deadline = self._loop.time() + limits.auth_timeout_s
        while not self._closing:
            if not self.authenticated:
                try:
                    async with asyncio.timeout_at(deadline):
                        body = await self._read_auth_frame()
                except TimeoutError:
                    self._auth_failed(
                        None, f"not authenticated within {limits.auth_timeout_s:g} s", final=True
                    )
                    return
                if body is not None:
                    self._authenticate(body)
                continue
            (length,) = HEADER.unpack(await self._reader.readexactly(HEADER.size))
            if length > limits.max_frame_bytes:
                await self._oversized(length)
                continue
            try:
                async with asyncio.timeout(limits.frame_timeout_s):
                    body = await self._reader.readexactly(length)
            except TimeoutError:
                self._protocol_error(
                    None,
                    "bad_frame",
                    f"a frame of {length} bytes did not arrive within"
                    f" {limits.frame_timeout_s:g} s; closing",
                    final=True,
                )
                return
            await self._handle(body)

    async def _read_auth_frame(self) -> bytes | None:
        (length,) = HEADER.unpack(await self._reader.readexactly(HEADER.size))
        limit = min(self._limits.auth_frame_bytes, self._limits.max_frame_bytes)
        if length > limit:
            # Nothing of an unauthenticated client is read beyond this bound.
            self._auth_failed(
                None,
                f"authenticate first: a frame of {length} bytes is over the {limit} bytes"
                " allowed before authentication",
                final=True,
            )
            return None
        return await self._reader.readexactly(length)

    async def _oversized(self, length: int) -> None:
        limits = self._limits
        if length > limits.skip_limit_bytes:
            self._protocol_error(
                None,
                "frame_too_large",
                f"frame of {length} bytes is over gateway.max_frame_bytes"
                f" ({limits.max_frame_bytes}) and too large to skip; closing",
                final=True,
            )
            return
        self._protocol_error(
            None,
            "frame_too_large",
            f"frame of {length} bytes is over gateway.max_frame_bytes ({limits.max_frame_bytes});"
            " its body is discarded",
        )
        remaining = length
        while remaining and not self._closed:
            try:
                async with asyncio.timeout(limits.frame_timeout_s):
                    chunk = await self._reader.read(min(remaining, _SKIP_CHUNK))
            except TimeoutError:
                self._protocol_error(
                    None,
                    "bad_frame",
                    f"the rest of a discarded frame ({remaining} bytes) did not arrive within"
                    f" {limits.frame_timeout_s:g} s; closing",
                    final=True,
                )
                return
            if not chunk:
                raise asyncio.IncompleteReadError(b"", remaining)
            remaining -= len(chunk)

    def _authenticate(self, body: bytes) -> None:
        request_id = None
        try:
            value = decode(body)
            request_id = request_id_of(value)
            request = parse_request(value)
            if request.op != "auth":
                raise ProtocolError(
                    "auth", f"got op {request.op[:64]!r} before authenticating", request.id
                )
            token: str = check_args(OPS["auth"], request.args, request.id)["token"]
        except ProtocolError as error:
            self._auth_failed(
                request_id,
                f"authenticate first with {{op: auth, args: {{token}}, id}} ({error.message})",
            )
            return
        if not self._server.token_matches(token):
            self._auth_failed(request.id, "wrong token")
            return
        self.authenticated = True
        log.info("connection authenticated", peer=self.name)
        self.send(answer(request.id, self._server.hello()))

    def _auth_failed(
        self, request_id: int | str | None, message: str, *, final: bool = False
    ) -> None:
        self.auth_failures += 1
        self._server.stats["auth_failures"] += 1
        limit = self._limits.auth_failures
        final = final or self.auth_failures >= limit
        log.warning("authentication failed", peer=self.name, problem=message)
        if final:
            message = f"{message}; closing (failed attempts: {self.auth_failures}, limit {limit})"
        self.send(failure(request_id, "auth", message))
        if final:
            self.close_after_flush()

    def _protocol_error(
        self, request_id: int | str | None, type_: str, message: str, *, final: bool = False
    ) -> None:
        self.errors += 1
        limit = self._limits.consecutive_errors
        if self.errors >= limit and not final:
            final = True
            message = f"{message}; closing after {self.errors} consecutive errors"
            self._server.stats["closed_for_errors"] += 1
        self.send(failure(request_id, type_, message))
        if final:
            self.close_after_flush()

    async def _handle(self, body: bytes) -> None:
        try:
            request = parse_request(decode(body))
            spec = OPS.get(request.op)
            if spec is None:
                raise ProtocolError(
                    "unknown_op",
                    f"unknown op {request.op[:64]!r} (see docs/PROTOCOL.md for the operations)",
                    request.id,
                )
            args = check_args(spec, request.args, request.id)
        except ProtocolError as error:
            self._protocol_error(error.request_id, error.type, error.message)
            return
        self.errors = 0
        if request.op == "ping":
            self.send(answer(request.id, "pong"))
            return
        if request.op == "auth":
            if self._server.token_matches(args["token"]):
                self.send(answer(request.id, self._server.hello()))
            else:
                self._protocol_error(request.id, "auth", "wrong token")
            return
        worker = self._server.worker
        if worker.pending() >= self._limits.worker_queue:
            self.send(
                failure(
                    request.id,
                    "unavailable",
                    f"the gateway has {worker.pending()} requests waiting for the engine;"
                    f" {request.op} not carried out, retry later",
                )
            )
            return
        await self._inflight.acquire()  # too many of ours pending: stop reading until one ends
        if self._closed:
            self._inflight.release()
            return
        worker.submit(Job(self, Request(request.id, request.op, args)))


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
        if not isinstance(token, str) or not token.strip():
            raise ValueError("the network gateway needs a non-empty token")
        self._token = token.encode("utf-8")
        self.limits = limits or Limits()
        self.host, self.port = split_listen(listen)
        self.worker = Worker(gateway, self.limits.worker_limits(), probe=probe)
        self.stats: dict[str, int] = {
            "accepted": 0,
            "refused": 0,
            "auth_failures": 0,
            "slow_clients": 0,
            "closed_for_errors": 0,
        }
        self._connections: set[_Connection] = set()
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
                async with asyncio.timeout(_FLUSH_TIMEOUT_S):
                    await server.wait_closed()
            log.info("network gateway stopped")

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if len(self._connections) >= self.limits.max_connections:
            self.stats["refused"] += 1
            with contextlib.suppress(ConnectionError, OSError):
                writer.write(
                    failure(
                        None,
                        "unavailable",
                        f"the gateway has {len(self._connections)} connections (the limit)",
                    )
                )
                writer.close()
            return
        self.stats["accepted"] += 1
        connection = _Connection(self, reader, writer, next(self._numbers))
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
            connection.close_after_flush()
            try:
                async with asyncio.timeout(_FLUSH_TIMEOUT_S):
                    await writing
            except (TimeoutError, asyncio.CancelledError):
                connection.abort("its last frames could not be written in time")
                writing.cancel()
            self._connections.discard(connection)
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
        chosen = _replace(chosen, max_frame_bytes=max_frame_bytes)
    return NetGateway(gateway, listen=listen, token=token, limits=chosen, probe=probe).start()


def _replace(limits: Limits, **changes: Any) -> Limits:
    values = {item.name: getattr(limits, item.name) for item in fields(limits)}
    values.update(changes)
    return Limits(**values)


# ------------------------------------------------------------------------------ cx gateway


def resolve_token(settings: Settings) -> str:
    """``gateway.token``, else the environment variable; ConfigError when there is neither."""
    token = settings.gateway.token or os.environ.get(TOKEN_VARIABLE, "")
    if not token.strip():
        raise ConfigError(
            settings.source,
            "gateway.token",
            f"the network gateway needs a shared token: set gateway.token or the environment"
            f" variable {TOKEN_VARIABLE}",
        )
    if len(token) < 16:
        log.warning("the gateway token is short (fewer than 16 characters): use a long random one")
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
    server = NetGateway(
        lambda: builder(path),
        listen=settings.gateway.listen,
        token=token,
        limits=Limits(max_frame_bytes=settings.gateway.max_frame_bytes),
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
