"""One client connection of the network gateway: reading requests, writing answers and pushed
events, within the connection's bounds and the server's (docs/PROTOCOL.md, "Limits").

Memory: what the server holds for a connection is its requests read and not yet answered
(``in_bytes``, at most ``inflight_bytes`` and ``inflight_requests``; beyond, reading pauses)
and its queued outbound frames (``out_bytes``; over half of ``outbound_bytes`` or of
``outbound_frames`` its requests are no longer read, at the bound it is disconnected). The
server adds them up over every connection (``total_inflight_bytes``: reading pauses;
``total_outbound_bytes``: the connection with the most queued is disconnected). A connection
disconnected for its bounds gets a last ``disconnect`` frame with its resume point: the last
seq written to it for each subscription and conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import TYPE_CHECKING, Any

from domain.errors import ErrorKind
from infra.logs import get_logger
from runtime.netgateway.codec import (
    HEADER,
    ProtocolError,
    PushFrame,
    Request,
    answer,
    decode,
    disconnect,
    failure,
    parse_request,
    request_id_of,
)
from runtime.netgateway.ops import OPS, check_args
from runtime.netgateway.worker import Job

if TYPE_CHECKING:
    from runtime.netgateway.server import NetGateway

__all__ = ["Connection"]

log = get_logger("cx.netgateway")

_WRITE_CHUNK = 64 * 1024
_SKIP_CHUNK = 64 * 1024
#: How long the last frames of a closing connection may take to be written.
FLUSH_TIMEOUT_S = 5.0


class Connection:
    """One client. Everything here runs on the loop thread except :meth:`deliver` and
    :meth:`drop`, the worker's way in."""

    def __init__(
        self,
        server: NetGateway,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        number: int,
        peer: str,
    ) -> None:
        address = writer.get_extra_info("peername")
        where = f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address)
        self.name = f"{where}#{number}"
        self.peer = peer
        self._server = server
        self._limits = server.limits
        self._reader = reader
        self._writer = writer
        self._loop = asyncio.get_running_loop()
        self.authenticated = False
        self.auth_failures = 0
        self.errors = 0  # consecutive protocol errors
        self._out: deque[bytes] = deque()
        self.out_bytes = 0
        self._in: deque[int] = deque()  # sizes of the requests the worker has not answered
        self.in_bytes = 0
        self._sent: dict[tuple[str, str], int] = {}  # (subscription, conversation) -> seq
        self._wake = asyncio.Event()  # something to write, or closing
        self._room = asyncio.Event()  # something may have made room to read again
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
            if self._in:
                self._answered(self._in.popleft())
        self.send(frame)

    def _hold(self, size: int) -> None:
        self.in_bytes += size
        self._server.buffered_in += size
        self._server.peak(self)

    def _answered(self, size: int) -> None:
        self.in_bytes -= size
        self._server.buffered_in -= size
        self._server.room()

    # ------------------------------------------------------------------ output

    def send(self, frame: bytes) -> None:
        """Queue a frame; a client whose queue is full is disconnected (it does not read)."""
        if self._closing or self._closed:
            return
        limits = self._limits
        if self._out and (
            len(self._out) >= limits.outbound_frames
            or self.out_bytes + len(frame) > limits.outbound_bytes
        ):
            self._server.stats["slow_clients"] += 1
            self.disconnect(
                "slow_reader",
                f"outbound queue full ({len(self._out)} frames, {self.out_bytes} bytes; limits"
                f" {limits.outbound_frames} frames, {limits.outbound_bytes} bytes): the client"
                " does not read",
            )
            return
        if not self._server.make_room_out(len(frame), self):
            return  # this connection was the one disconnected
        self._out.append(frame)
        self.out_bytes += len(frame)
        self._server.buffered_out += len(frame)
        self._server.peak(self)
        self._wake.set()

    def _forget_output(self) -> None:
        self._server.buffered_out -= self.out_bytes
        self._out.clear()
        self.out_bytes = 0
        self._room.set()

    def resume_point(self) -> list[dict[str, Any]]:
        """The last seq written to this client per subscription and conversation."""
        return [
            {"subscription": subscription, "conversation_id": conversation, "seq": seq}
            for (subscription, conversation), seq in sorted(self._sent.items())
        ]

    def close_after_flush(self) -> None:
        """Stop reading; write what is queued, then close."""
        self._closing = True
        self._wake.set()
        self._room.set()

    def disconnect(self, reason: str, message: str) -> None:
        """Close for a bound: drop what is queued, write a last ``disconnect`` frame with the
        resume point, close (aborted if it cannot be written in time)."""
        if self._closed:
            return
        resume = self.resume_point()
        log.warning(
            "connection disconnected", peer=self.name, reason=reason, problem=message, resume=resume
        )
        self._server.stats["disconnected"] += 1
        self._closed = True
        self._closing = True
        self._forget_output()
        transport = self._writer.transport
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            self._writer.write(disconnect(reason, message, resume))
            self._writer.close()
        self._loop.call_later(FLUSH_TIMEOUT_S, transport.abort)
        self._wake.set()

    def abort(self, reason: str) -> None:
        """Close at once, dropping what is queued."""
        if self._closed:
            return
        log.info("connection dropped", peer=self.name, reason=reason)
        self._closed = True
        self._closing = True
        self._forget_output()
        self._writer.transport.abort()
        self._wake.set()

    def release(self) -> None:
        """The connection has ended: what it held no longer counts."""
        self._forget_output()
        self._server.buffered_in -= self.in_bytes
        self.in_bytes = 0
        self._in.clear()
        self._server.room()

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
                    if isinstance(frame, PushFrame) and frame.seq is not None:
                        self._sent[frame.subscription, frame.conversation_id] = frame.seq
                self.out_bytes -= size
                self._server.buffered_out -= size
                self._room.set()
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
        server = self._server
        return not self._closing and (
            (self.in_bytes > 0 and self.in_bytes + length > limits.inflight_bytes)
            or (
                server.buffered_in > 0
                and server.buffered_in + length > limits.total_inflight_bytes
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
        self._server.stats["paused"] += 1
        self._server.paused.add(self)
        try:
            while self._no_room(length):
                self._room.clear()
                await self._room.wait()
        finally:
            self._server.paused.discard(self)
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
        if not self._server.token_matches(token):
            self._auth_failed(request.id, "wrong token")
            return
        refused = self._server.admission.authenticated(self)
        if refused is not None:
            self._server.stats["refused"] += 1
            log.warning("authenticated connection refused", peer=self.name, problem=refused)
            self.send(failure(request.id, ErrorKind.UNAVAILABLE, f"{refused}; closing"))
            self.close_after_flush()
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
            self._server.stats["closed_for_errors"] += 1
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
            if self._server.token_matches(args["token"]):
                self.send(answer(request.id, self._server.hello()))
            else:
                self._protocol_error(request.id, ErrorKind.AUTH, "wrong token")
            return False
        worker = self._server.worker
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
