"""One client connection of the network gateway: reading requests, writing answers and pushed
events (the writing half is :class:`~runtime.netgateway.outbound.Outbound`), within the
connection's bounds and those of all connections together, kept by the
:class:`~runtime.netgateway.pool.ConnectionPool` it shares with the server (docs/PROTOCOL.md,
"Limits").

Memory: what the server holds for a connection is its requests read and not yet answered
(``in_bytes``, at most ``inflight_bytes`` and ``inflight_requests``; beyond, reading pauses)
and its queued outbound frames (``out_bytes``; over half of ``outbound_bytes`` or of
``outbound_frames`` its requests are no longer read, at the bound it is disconnected). The
pool adds them up over every connection (``total_inflight_bytes``: reading pauses;
``total_outbound_bytes``: the connection with the most queued is disconnected). A connection
disconnected for its bounds gets a last ``disconnect`` frame with its resume point: the last
seq written to it for each subscription and conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from domain.errors import ErrorKind
from infra.logs import get_logger
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
from runtime.netgateway.outbound import Outbound
from runtime.netgateway.pool import ConnectionPool
from runtime.netgateway.worker import Job

__all__ = ["Connection"]

log = get_logger("cx.netgateway")

_SKIP_CHUNK = 64 * 1024


class Connection(Outbound):
    """One client. Everything here runs on the loop thread except :meth:`deliver` and
    :meth:`drop`, the worker's way in."""

    def __init__(
        self,
        pool: ConnectionPool[Connection],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        number: int,
        peer: str,
    ) -> None:
        address = writer.get_extra_info("peername")
        where = f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address)
        super().__init__(pool, writer, f"{where}#{number}")
        self.peer = peer
        self._reader = reader
        self.authenticated = False
        self.auth_failures = 0
        self.errors = 0  # consecutive protocol errors
        self._in: deque[int] = deque()  # sizes of the requests the worker has not answered
        self.in_bytes = 0
        self._inflight = asyncio.Semaphore(self._limits.inflight_requests)

    @property
    def in_flight(self) -> int:
        """Requests read from this client that the worker has not answered yet."""
        return len(self._in)

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
            if self._in:
                self._answered(self._in.popleft())
        self.send(frame)

    def _hold(self, size: int) -> None:
        self.in_bytes += size
        self._pool.buffered_in += size
        self._pool.peak(self)

    def _answered(self, size: int) -> None:
        self.in_bytes -= size
        self._pool.buffered_in -= size
        self._pool.room()

    def release(self) -> None:
        """The connection has ended: what it held no longer counts."""
        self._forget_output()
        self._pool.buffered_in -= self.in_bytes
        self.in_bytes = 0
        self._in.clear()
        self._pool.room()

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
            if not await self._wait_for_room(length):
                return  # closed meanwhile
            self._hold(length)  # counted from now on: the body is read into memory
            try:
                async with asyncio.timeout(limits.frame_timeout_s):
                    body = await self._reader.readexactly(length)
            except TimeoutError:
                self._protocol_error(
                    None,
                    ErrorKind.BAD_FRAME,
                    f"a frame of {length} bytes did not arrive within"
                    f" {limits.frame_timeout_s:g} s; closing",
                    final=True,
                )
                return
            if not await self._handle(body):
                self._answered(length)  # answered by the server itself: nothing is held

    def _no_room(self, length: int) -> bool:
        limits = self._limits
        pool = self._pool
        return not self._closing and (
            (self.in_bytes > 0 and self.in_bytes + length > limits.inflight_bytes)
            or (
                pool.buffered_in > 0
                and pool.buffered_in + length > limits.total_inflight_bytes
            )
            or self.out_bytes > limits.outbound_bytes // 2
            or len(self._out) > limits.outbound_frames // 2
        )

    async def _wait_for_room(self, length: int) -> bool:
        """Back-pressure: do not read the next request while this connection (or all of them)
        holds too much; the client's own socket buffers fill up and its sending stops. False
        when the connection is closing instead."""
        if not self._no_room(length):
            return not self._closing
        self._pool.stats["paused"] += 1
        self._pool.paused.add(self)
        try:
            while self._no_room(length):
                self._room.clear()
                await self._room.wait()
        finally:
            self._pool.paused.discard(self)
        return not self._closing

    def room(self) -> None:
        """Something was freed: look again whether reading may go on."""
        self._room.set()

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
                ErrorKind.FRAME_TOO_LARGE,
                f"frame of {length} bytes is over gateway.max_frame_bytes"
                f" ({limits.max_frame_bytes}) and too large to skip; closing",
                final=True,
            )
            return
        self._protocol_error(
            None,
            ErrorKind.FRAME_TOO_LARGE,
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
                    ErrorKind.BAD_FRAME,
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
                    ErrorKind.AUTH, f"got op {request.op[:64]!r} before authenticating", request.id
                )
            token: str = check_args(OPS["auth"], request.args, request.id)["token"]
        except ProtocolError as error:
            self._auth_failed(
                request_id,
                f"authenticate first with {{op: auth, args: {{token}}, id}} ({error.message})",
            )
            return
        if not self._pool.token_matches(token):
            self._auth_failed(request.id, "wrong token")
            return
        refused = self._pool.admission.authenticated(self)
        if refused is not None:
            self._pool.stats["refused"] += 1
            log.warning("authenticated connection refused", peer=self.name, problem=refused)
            self.send(failure(request.id, ErrorKind.UNAVAILABLE, f"{refused}; closing"))
            self.close_after_flush()
            return
        self.authenticated = True
        log.info("connection authenticated", peer=self.name)
        self.send(answer(request.id, self._pool.hello()))

    def _auth_failed(
        self, request_id: int | str | None, message: str, *, final: bool = False
    ) -> None:
        self.auth_failures += 1
        self._pool.stats["auth_failures"] += 1
        limit = self._limits.auth_failures
        final = final or self.auth_failures >= limit
        log.warning("authentication failed", peer=self.name, problem=message)
        if final:
            message = f"{message}; closing (failed attempts: {self.auth_failures}, limit {limit})"
        self.send(failure(request_id, ErrorKind.AUTH, message))
        if final:
            self.close_after_flush()

    def _protocol_error(
        self, request_id: int | str | None, kind: ErrorKind, message: str, *, final: bool = False
    ) -> None:
        self.errors += 1
        limit = self._limits.consecutive_errors
        if self.errors >= limit and not final:
            final = True
            message = f"{message}; closing after {self.errors} consecutive errors"
            self._pool.stats["closed_for_errors"] += 1
        self.send(failure(request_id, kind, message))
        if final:
            self.close_after_flush()

    async def _handle(self, body: bytes) -> bool:
        """Answer or submit one request; True when it went to the worker."""
        try:
            request = parse_request(decode(body))
            spec = OPS.get(request.op)
            if spec is None:
                raise ProtocolError(
                    ErrorKind.UNKNOWN_OP,
                    f"unknown op {request.op[:64]!r} (see docs/PROTOCOL.md for the operations)",
                    request.id,
                )
            args = check_args(spec, request.args, request.id)
        except ProtocolError as error:
            self._protocol_error(error.request_id, error.kind, error.message)
            return False
        self.errors = 0
        if request.op == "ping":
            self.send(answer(request.id, "pong"))
            return False
        if request.op == "auth":
            if self._pool.token_matches(args["token"]):
                self.send(answer(request.id, self._pool.hello()))
            else:
                self._protocol_error(request.id, ErrorKind.AUTH, "wrong token")
            return False
        worker = self._pool.worker
        if worker.pending() >= self._limits.worker_queue:
            self.send(
                failure(
                    request.id,
                    ErrorKind.UNAVAILABLE,
                    f"the gateway has {worker.pending()} requests waiting for the engine;"
                    f" {request.op} not carried out, retry later",
                )
            )
            return False
        await self._inflight.acquire()  # too many of ours pending: stop reading until one ends
        if self._closed:
            self._inflight.release()
            return False
        self._in.append(len(body))  # held until the worker's answer comes
        worker.submit(Job(self, Request(request.id, request.op, args)))
        return True
