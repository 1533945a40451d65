"""Bare Thespian actors for the raw references (Thespian needs actor classes in an importable
module). Messages are plain tuples and strings, as small as Thespian allows."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from typing import Any

from thespian.actors import Actor, ActorExitRequest, ChildActorExited, WakeupMessage


class Sink(Actor):  # type: ignore[misc]
    """Counts what it gets; ``("count", reply_to)`` answers ``("count", n)``, ``"pid"`` its pid,
    ``("echo", x)`` answers ``x``."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def receiveMessage(self, message: Any, sender: Any) -> None:  # noqa: N802
        if isinstance(message, tuple) and message:
            kind = message[0]
            if kind == "count":
                self.send(
                    message[1] if len(message) > 1 and message[1] else sender, ("count", self.count)
                )
                return
            if kind == "echo":
                self.send(sender, message[1])
                return
            if kind == "m":
                self.count += 1
                return
        if message == "pid":
            self.send(sender, os.getpid())
        elif isinstance(message, str):
            self.count += 1


class FanOut(Actor):  # type: ignore[misc]
    """``("targets", [addresses])``, then ``("go", n)``: sends ``n`` messages to each target,
    then asks each to report its count to the sender of ``go``."""

    def __init__(self) -> None:
        super().__init__()
        self.targets: list[Any] = []

    def receiveMessage(self, message: Any, sender: Any) -> None:  # noqa: N802
        if not isinstance(message, tuple):
            return
        if message[0] == "targets":
            self.targets = list(message[1])
            self.send(sender, "ok")
        elif message[0] == "go":
            count, reply_to = message[1], sender
            for n in range(count):
                for target in self.targets:
                    self.send(target, ("m", n))
            for target in self.targets:
                self.send(target, ("count", reply_to))


class Child(Actor):  # type: ignore[misc]
    def receiveMessage(self, message: Any, sender: Any) -> None:  # noqa: N802
        if message == "hello":
            self.send(sender, "hello back")


class Churn(Actor):  # type: ignore[misc]
    """``("churn", total, concurrent)``: create a child, send it a message, have it answer, make
    it exit; ``concurrent`` at a time until ``total`` are done, then answer ``("churned",
    total)`` to the sender. A child counts as done at its first ChildActorExited (Thespian may
    report an exit more than once)."""

    def __init__(self) -> None:
        super().__init__()
        self.total = self.started = self.done = 0
        self.live: list[Any] = []  # addresses of children not yet exited (compare with ==)
        self.reply_to: Any = None

    def _start_one(self) -> None:
        self.started += 1
        child = self.createActor(Child)
        self.live.append(child)
        self.send(child, "hello")

    def receiveMessage(self, message: Any, sender: Any) -> None:  # noqa: N802
        if isinstance(message, tuple) and message[0] == "churn":
            self.total, concurrent, self.reply_to = message[1], message[2], sender
            self.started = self.done = 0
            for _ in range(min(concurrent, self.total)):
                self._start_one()
        elif message == "hello back":
            self.send(sender, ActorExitRequest())
        elif isinstance(message, ChildActorExited):
            known = [n for n, child in enumerate(self.live) if child == message.childAddress]
            if not known:
                return
            del self.live[known[0]]
            self.done += 1
            if self.started < self.total:
                self._start_one()
            elif self.done >= self.total:
                self.send(self.reply_to, ("churned", self.done))


class Timers(Actor):  # type: ignore[misc]
    """``("arm", delays_ms)``: one ``wakeupAfter`` per delay; when every one has
    fired, answer the sender ``("lags", lags_ms, arm_seconds)``: each wakeup's lag behind its deadline (the
    time of its ``wakeupAfter`` call plus its delay) and how long arming them all took."""

    def __init__(self) -> None:
        super().__init__()
        self.lags: list[float] = []
        self.expected = 0
        self.reply_to: Any = None
        self.arm_seconds = 0.0

    def receiveMessage(self, message: Any, sender: Any) -> None:  # noqa: N802
        if isinstance(message, tuple) and message[0] == "arm":
            delays, self.reply_to = message[1], sender
            self.lags, self.expected = [], len(delays)
            started = time.monotonic()
            for delay in delays:
                deadline = time.monotonic() + delay / 1000
                self.wakeupAfter(timedelta(milliseconds=delay), payload=deadline)
            self.arm_seconds = time.monotonic() - started
        elif isinstance(message, WakeupMessage):
            self.lags.append((time.monotonic() - message.payload) * 1000)
            if len(self.lags) == self.expected:
                self.send(self.reply_to, ("lags", self.lags, self.arm_seconds))
