"""A timed actor keeps few Thespian wakeups pending, whatever asks it for earlier ones, and
a host keeps no alarm bookkeeping for what its entities disarmed."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any

from actors.host import Host
from actors.messages import Alarm
from actors.timed import TICK_MS, TimedActor


class Recorder(TimedActor):
    """A TimedActor on a hand-driven clock that records the wakeups it asks Thespian for."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = 0
        self.hint: int | None = None
        self.unsynced_since: int | None = None  # a journal with the interval policy (50 ms)
        self.pending: list[tuple[int, Any]] = []  # (due at, payload) of wakeups not delivered
        self.asked = 0
        self.wiring = SimpleNamespace(virtual=False, clock=None)  # type: ignore[assignment]

    def now(self) -> int:
        return self.clock

    def wakeupAfter(self, period: timedelta, payload: Any = None) -> None:
        self.asked += 1
        self.pending.append((self.clock + int(period.total_seconds() * 1000), payload))

    def wakeup_hint_ms(self) -> int | None:
        if self.unsynced_since is not None:
            return max(0, self.unsynced_since + 50 - self.clock)
        return self.hint

    def on_tick(self) -> None:
        if self.unsynced_since is not None and self.unsynced_since + 50 <= self.clock:
            self.unsynced_since = None  # synced

    def journal_write(self) -> None:
        if self.unsynced_since is None:
            self.unsynced_since = self.clock

    def on_alarm(self, key: Any, payload: Any) -> None:
        pass

    def handle(self) -> None:
        """One message handled: whatever it was, the actor flushes at its end."""
        self.flush()

    def run_until(self, t: int) -> None:
        """Deliver every wakeup due by ``t``, in order, as Thespian would."""
        while True:
            due = sorted(w for w in self.pending if w[0] <= t)
            if not due:
                break
            self.pending.remove(due[0])
            self.clock = max(self.clock, due[0][0])
            self.on_wakeup(due[0][1])
            self.flush()
        self.clock = t


def test_journal_sync_hints_under_load_never_pile_up_wakeups() -> None:
    actor = Recorder()
    actor.alarms.arm("inactivity", 1, 10_000_000, None)  # a far timer: the regular tick runs
    most = 0
    for step in range(3_000):  # a message every 10 ms, each leaving records to sync within 50 ms
        actor.run_until(step * 10)
        actor.journal_write()
        actor.handle()
        most = max(most, len(actor.pending))
    assert most <= 2
    actor.run_until(60_000)  # the load stops: one tick a second for the far timer, no more
    assert len(actor.pending) == 1


def test_after_an_earlier_wakeup_the_actor_waits_for_the_superseded_one() -> None:
    actor = Recorder()
    actor.alarms.arm("t", 1, 10_000_000, None)
    actor.handle()  # the regular look, TICK_MS away
    actor.hint = 50
    actor.handle()  # an earlier target: a second wakeup
    assert [at for at, _ in actor.pending] == [TICK_MS, 50]
    actor.hint = None
    actor.run_until(50)
    assert actor.asked == 2  # the next look is the one already on its way
    assert [at for at, _ in actor.pending] == [TICK_MS]
    actor.run_until(TICK_MS)
    assert [at for at, _ in actor.pending] == [2 * TICK_MS]


def test_an_actor_with_nothing_to_wait_for_asks_for_no_wakeup() -> None:
    actor = Recorder()
    actor.hint = 50
    actor.handle()
    actor.hint = None
    actor.run_until(5_000)
    assert actor.pending == []
    for step in range(100):
        actor.run_until(5_000 + step * 1_000)
        actor.handle()
    assert actor.pending == []


def test_a_host_forgets_the_alarm_keys_its_entities_disarm() -> None:
    host = Host()
    for n in range(1_000):  # an agent that stays logged in joins conversation after conversation
        host.arm("a:alice", ("RESERVATION", f"conv-{n}"), n + 1, 30_000 + n, 100)
        host.disarm("a:alice", ("RESERVATION", f"conv-{n}"))
    host.arm("a:alice", ("RESERVATION", "conv-last"), 2_000, 60_000, 100)
    assert host.armed_keys("a:alice") == {("RESERVATION", "conv-last")}


def test_an_expired_alarm_leaves_no_key_behind() -> None:
    host = Host()
    host.arm("a:alice", ("RESERVATION", "conv-1"), 1, 30_000, 100)
    host.on_alarm(("a:alice", ("RESERVATION", "conv-1")), Alarm(("RESERVATION", "conv-1"), 1, 100))
    assert host.armed_keys("a:alice") == frozenset()
