"""The timers of a conversation machine: starts and stops a command plans, and the settling
at the end of every command that applies the rules of ``TIMER_RULES`` (a timer whose rule no
longer holds is stopped; a start whose rule fails is dropped)."""

from __future__ import annotations

from domain.effects import ArmAlarm, DisarmTimer
from domain.enums import Channel
from domain.machine_base import MachineBase
from domain.machine_parts import Bucket, CommandPlan, Session
from domain.records import SYSTEM
from domain.timers import OBSERVABLE_KINDS, TIMER_EVENTS, RunningTimer, TimerKey, TimerKind
from domain.transitions import may_run

AGENT_SLA_KEY = TimerKey(TimerKind.AGENT_SLA)
HOLD_KEY = TimerKey(TimerKind.HOLD)


class MachineTimers(MachineBase):
    def _settle_timers(self, t: CommandPlan) -> None:
        """Stop the timers the command stopped or whose rule no longer holds, then start the
        ones it started whose rule holds (see ``TIMER_RULES``)."""
        state = self.state
        verdicts: dict[TimerKey, bool] = {}

        def allowed(key: TimerKey) -> bool:
            verdict = verdicts.get(key)
            if verdict is None:
                verdict = verdicts[key] = may_run(key, state, self)
            return verdict

        running = self._timers
        stops = [k for k, d in t.timers.items() if k in running and (d is None or not allowed(k))]
        stops += [k for k in running if k not in t.timers and not allowed(k)]
        starts = [(k, d) for k, d in t.timers.items() if d is not None and allowed(k)]
        for key in stops:
            del self._timers[key]
            t.effects.append(DisarmTimer(key))
            if key.kind in OBSERVABLE_KINDS:
                self._emit(
                    Bucket.TIMER_STOPPED,
                    TIMER_EVENTS[key.kind].stopped,
                    SYSTEM,
                    self._subject_session(key),
                    {},
                )
        for key, duration in starts:
            self._next_token += 1
            token = self._next_token
            self._timers[key] = RunningTimer(token, t.now, t.now + duration)
            for threshold in self._thresholds(key.kind):
                at = t.now + duration * threshold.percent // 100
                t.effects.append(ArmAlarm(key, token, at, threshold.percent))
            t.effects.append(ArmAlarm(key, token, t.now + duration, 100))
            if key.kind in OBSERVABLE_KINDS:
                self._emit(
                    Bucket.TIMER_STARTED,
                    TIMER_EVENTS[key.kind].started,
                    SYSTEM,
                    self._subject_session(key),
                    {"seconds": duration / 1000},
                )

    @staticmethod
    def _subject_session(key: TimerKey) -> str | None:
        return key.subject if key.kind is TimerKind.CUSTOMER_SLA else None

    def _stop(self, key: TimerKey) -> None:
        self._t.timers.pop(key, None)
        self._t.timers[key] = None

    def _stop_all(self, kind: TimerKind) -> None:
        keys = {k for k in self._timers if k.kind is kind} | {
            k for k in self._t.timers if k.kind is kind
        }
        for key in sorted(keys):
            self._stop(key)

    def _start(self, key: TimerKey, duration: int) -> None:
        self._t.timers.pop(key, None)
        self._t.timers[key] = duration

    def _start_inactivity(self, session: Session) -> None:
        if session.channel is not Channel.VOICE:
            self._start(
                TimerKey(TimerKind.CUSTOMER_SLA, session.id),
                self.policy.inactivity_for(session.channel),
            )

    def _start_all_inactivity(self) -> None:
        for session in self._sessions.values():
            if session.live:
                self._start_inactivity(session)

    def _start_agent_sla(self) -> None:
        self._start(AGENT_SLA_KEY, self.policy.sla_ms(self.queue))
