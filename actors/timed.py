"""An engine actor with an alarm heap: one Thespian wakeup at a time, or the virtual clock.

Under real time the actor asks Thespian for one wakeup, at its earliest alarm but never more
than ``TICK_MS`` away while any alarm is armed: a periodic look at the heap, so that a wakeup
Thespian delays cannot stall the timers. Thespian cannot cancel a wakeup, so each one carries
the instant it was asked for, and the actor knows every wakeup still on its way. It asks for a
new one only when every wakeup on its way comes later than it needs; otherwise it waits for the
earliest of them. So at most two are ever pending (the next regular look, and one earlier
instant such as a journal sync), and an actor with no alarm and nothing else to do
(``wakeup_hint_ms``) asks for none. Under the virtual clock the gateway
drives the heap instead: every time the actor's earliest alarm changes it tells the gateway
(:class:`AlarmAt`), and :class:`FireAlarms` moves the clock and fires every alarm due by then,
in order. So the gateway always knows the next instant anything is due without asking.
"""

from __future__ import annotations

from collections.abc import Hashable
from datetime import timedelta
from typing import Any

from actors.alarms import AlarmHeap
from actors.base import EngineActor
from actors.messages import AlarmAt, FireAlarms

TICK_MS = 1000
OVERDUE_MS = 10 * TICK_MS  # a wakeup this late is not waited for any more


class TimedActor(EngineActor):
    def __init__(self) -> None:
        super().__init__()
        self.alarms = AlarmHeap()
        self._wakeup_at: int | None = None  # the wakeup it waits for
        self._on_the_way: set[int] = set()  # every wakeup asked for and not delivered yet
        self._reported_at: int | None = None  # virtual clock: what the gateway was last told

    def on_alarm(self, key: Hashable, payload: Any) -> None:
        raise NotImplementedError

    def on_message(self, message: Any, sender: Any) -> None:
        if isinstance(message, FireAlarms):
            self.advance_clock(message.now)
            self.fire_due()
        else:
            super().on_message(message, sender)

    def on_wakeup(self, payload: Any) -> None:
        self._on_the_way.discard(payload)
        if payload == self._wakeup_at:  # the one it waits for; a superseded one changes nothing
            self._wakeup_at = None
            self.on_tick()
        self.fire_due()

    def on_tick(self) -> None:
        """Called on every real-time wakeup (at least every TICK_MS)."""

    def wakeup_hint_ms(self) -> int | None:
        """Something other than an alarm that needs a wakeup within this many ms."""
        return None

    def fire_due(self) -> None:
        now = self.now()
        while (due := self.alarms.pop_due(now)) is not None:
            self.on_alarm(*due)

    def flush(self) -> None:
        super().flush()
        if self.wiring is None:
            return
        if not self.virtual:
            self._schedule_wakeup()
        elif self.wiring.clock is not None:
            next_at = self.alarms.next_at()
            if next_at != self._reported_at:
                self._reported_at = next_at
                self.send(self.wiring.clock, AlarmAt(self.myAddress, next_at))

    def on_rewired(self, reroute: bool) -> None:
        self._reported_at = None  # a new clock driver: tell it (at the flush) from scratch
        if (
            self.wiring is not None
            and self.wiring.clock is not None
            and self.alarms.next_at() is None
        ):
            self.send(self.wiring.clock, AlarmAt(self.myAddress, None))

    def _schedule_wakeup(self) -> None:
        next_at = self.alarms.next_at()
        hint = self.wakeup_hint_ms()
        if next_at is None and hint is None:
            return  # nothing to wait for: no wakeup at all
        now = self.now()
        target = now + TICK_MS if next_at is None else min(next_at, now + TICK_MS)
        if hint is not None:
            target = min(target, now + hint)
        if self._wakeup_at is not None and self._wakeup_at < now - OVERDUE_MS:
            self._on_the_way.clear()  # held up far past their time: ask afresh
            self._wakeup_at = None
        if self._wakeup_at is not None and self._wakeup_at <= target:
            return
        coming = min((at for at in self._on_the_way if at <= target), default=None)
        if coming is not None:  # one already on its way is soon enough: wait for it instead
            self._wakeup_at = coming
            return
        self._wakeup_at = target
        self._on_the_way.add(target)
        self.wakeupAfter(timedelta(milliseconds=max(0, target - now)), payload=target)
