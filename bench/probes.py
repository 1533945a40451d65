"""Probes the engine runs for the benchmarks (named in their configuration): a bot that
stamps when it receives a customer message.

``StampBot`` is the default bot (``bot.class_path: bench.probes:StampBot``; it passes whatever
the engine gives ``react`` on to it) that, for every
CUSTOMER_MESSAGE whose text contains :data:`STAMP`, sends one UDP datagram ``message_id
monotonic_ns`` to ``127.0.0.1:$CX_BENCH_STAMP_PORT``. ``CLOCK_MONOTONIC`` is one clock for
every process of the machine, so the benchmark compares it with its own send times. The port
is read from the environment, which the bot's process inherits from the process that starts
the system (Thespian forks the admin and every actor from it).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from typing import Any

from domain.bot import BotScript, DefaultBot
from domain.commands import Command
from domain.records import Event

STAMP = "#stamp"
PORT_VARIABLE = "CX_BENCH_STAMP_PORT"


class StampBot(DefaultBot):
    def __init__(self, script: BotScript) -> None:
        super().__init__(script)
        port = os.environ.get(PORT_VARIABLE)
        self._target = ("127.0.0.1", int(port)) if port else None
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM) if port else None

    def react(self, event: Event, *view: Any) -> list[Command]:
        if (
            self._socket is not None
            and event.name == "CUSTOMER_MESSAGE"
            and STAMP in str(event.data.get("text", ""))
        ):
            stamp = f"{event.data.get('message_id')} {time.monotonic_ns()}".encode()
            with contextlib.suppress(OSError):
                self._socket.sendto(stamp, self._target)
        return super().react(event, *view)  # type: ignore[call-arg]


class StampReceiver:
    """The benchmark's end of the stamps: a UDP socket and the stamps received so far."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.setblocking(False)
        self.port = int(self.socket.getsockname()[1])
        self.stamps: dict[str, int] = {}

    def drain(self) -> int:
        while True:
            try:
                data = self.socket.recv(512)
            except BlockingIOError:
                return len(self.stamps)
            message_id, _, at = data.decode().partition(" ")
            self.stamps[message_id] = int(at)

    def close(self) -> None:
        self.socket.close()

    def __enter__(self) -> StampReceiver:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
