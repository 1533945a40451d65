"""A gateway's clock: the wall clock, or a virtual one that only moves when told to.

Under a virtual clock every timer owner of the engine (hosts, the router, the agents'
supervisor) reports its earliest alarm to the gateway (``AlarmAt``); :meth:`VirtualClock.advance`
moves the clock to a target, firing on the way every owner due, earliest first, and owners due
at the same instant in a fixed order. The owners are one per actor, so the table is bounded by
the engine's actors; an owner with nothing due is dropped, and so is an actor that exited (its
parent reports it when it hears ``ChildActorExited``; the TopicMonitor also for a host of a
node declared dead).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from actors.messages import AlarmAt
from infra.timefmt import wall_ms


class VirtualClock:
    def __init__(self, now: int = 0) -> None:
        self.now = now
        self._alarms: dict[str, tuple[Any, int]] = {}  # owner's address -> (owner, earliest)

    def report(self, message: AlarmAt) -> None:
        if message.at is None:  # nothing due there
            self._alarms.pop(str(message.owner), None)
        else:
            self._alarms[str(message.owner)] = (message.owner, message.at)

    def alarms(self) -> dict[str, int]:
        """The earliest alarm of each timer owner, by its address."""
        return {owner: at for owner, (_, at) in self._alarms.items()}

    def advance(
        self, target: int, take: Callable[[], None], fire: Callable[[Any, int], None]
    ) -> None:
        """Move to ``target`` (ms): ``take`` takes in the owners' reports, ``fire(owner, now)``
        tells an owner that its time has come."""
        while True:
            take()  # every timer owner has reported its earliest alarm
            due = [(at, owner) for owner, at in self._alarms.values() if at <= target]
            if not due:
                break
            at = min(a for a, _ in due)
            self.now = max(self.now, at)
            for when, owner in due:  # owners due at the same instant: in a fixed order
                if when == at:
                    fire(owner, self.now)
        self.now = target


class WallClock:
    """Real time: nothing to advance, alarms fire in the engine by themselves."""

    @property
    def now(self) -> int:
        return wall_ms()

    def report(self, message: AlarmAt) -> None:
        return None

    def alarms(self) -> dict[str, int]:
        return {}
