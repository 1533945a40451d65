"""The writing half of a client connection: its queue of outbound frames, within its bounds.

Answers and pushed events are queued (``out_bytes``, at most ``outbound_bytes`` and
``outbound_frames``; a client whose queue is full does not read and is disconnected) and
written in chunks by :meth:`Outbound.write_frames`; the total over all connections is the
pool's (``total_outbound_bytes``: the connection with the most queued is disconnected). A
connection disconnected for its bounds gets a last ``disconnect`` frame with its resume point:
the last seq written to it for each subscription and conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

from infra.logs import get_logger
from runtime.netgateway.codec import PushFrame, disconnect
from runtime.netgateway.pool import ConnectionPool

__all__ = ["FLUSH_TIMEOUT_S", "Outbound"]

log = get_logger("cx.netgateway")

_WRITE_CHUNK = 64 * 1024
#: How long the last frames of a closing connection may take to be written.
FLUSH_TIMEOUT_S = 5.0


class Outbound:
    """A connection's output and its closing; runs on the loop thread."""

    def __init__(self, pool: ConnectionPool[Any], writer: asyncio.StreamWriter, name: str) -> None:
        self.name = name
        self._pool = pool
        self._limits = pool.limits
        self._writer = writer
        self._loop = asyncio.get_running_loop()
        self._out: deque[bytes] = deque()
        self.out_bytes = 0
        self._sent: dict[tuple[str, str], int] = {}  # (subscription, conversation) -> seq
        self._wake = asyncio.Event()  # something to write, or closing
        self._room = asyncio.Event()  # something may have made room to read again
        self._closing = False  # reading stopped; what is queued is written, then closed
        self._closed = False  # the transport is closed or aborted

    @property
    def out_frames(self) -> int:
        """Frames queued and not yet written."""
        return len(self._out)

    def send(self, frame: bytes) -> None:
        """Queue a frame; a client whose queue is full is disconnected (it does not read)."""
        if self._closing or self._closed:
            return
        limits = self._limits
        if self._out and (
            len(self._out) >= limits.outbound_frames
            or self.out_bytes + len(frame) > limits.outbound_bytes
        ):
            self._pool.stats["slow_clients"] += 1
            self.disconnect(
                "slow_reader",
                f"outbound queue full ({len(self._out)} frames, {self.out_bytes} bytes; limits"
                f" {limits.outbound_frames} frames, {limits.outbound_bytes} bytes): the client"
                " does not read",
            )
            return
        if not self._pool.make_room_out(len(frame), self):
            return  # this connection was the one disconnected
        self._out.append(frame)
        self.out_bytes += len(frame)
        self._pool.buffered_out += len(frame)
        self._pool.peak(self)
        self._wake.set()

    def _forget_output(self) -> None:
        self._pool.buffered_out -= self.out_bytes
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
        self._pool.stats["disconnected"] += 1
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
                self._pool.buffered_out -= size
                self._room.set()
                self._writer.write(b"".join(chunk))
                await self._writer.drain()
        except (ConnectionError, OSError):
            self.abort("the client went away")
        finally:
            if not self._closed:
                self._closed = True
                self._writer.close()
