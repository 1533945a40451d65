"""The commands that report rather than ask: timer alarms, routing reports, activities added
by applications, and the archive's commit (CLOSING -> CLOSED). Stale alarms and reports are
ignored rather than refused."""

from __future__ import annotations

from typing import Any

from domain.commands import AddActivity, ArchiveCommitted, RoutingUpdate, TimerFired
from domain.effects import ArchiveConversation, ArchiveLate, Effect
from domain.enums import (
    EventType,
    ResumeReason,
    SessionEndReason,
    State,
    ThresholdAction,
    UnsubscribeReason,
)
from domain.errors import InvalidArgument
from domain.events import RESERVED_NAMES, EventName
from domain.machine_parts import Bucket
from domain.machine_steps import MachineSteps
from domain.records import SYSTEM, Emitter, Event
from domain.sequence import next_seq
from domain.timers import OBSERVABLE_KINDS, TIMER_EVENTS, TimerKey, TimerKind
from domain.transitions import LIFECYCLE, Trigger, transition_for

_ROUTING_REPORTS = frozenset(
    {EventName.AGENT_OFFERED, EventName.RONA, EventName.NO_AGENT_AVAILABLE}
)


class MachineReports(MachineSteps):
    def _resume(self, reason: ResumeReason, emitter: Emitter) -> None:
        self._emit(
            Bucket.OWN, EventName.CONVERSATION_RESUMED, emitter, None, {"reason": reason.value}
        )
        self._transition(Trigger.RESUME, EventName.CONVERSATION_RESUMED)
        self._start_all_inactivity()
        if self.agents_present:
            self._start_agent_sla()

    def _on_add_activity(self, cmd: AddActivity, now: int) -> list[Effect]:
        self._check_name(cmd, "name", cmd.name)
        if cmd.name in RESERVED_NAMES:
            raise self._refuse(InvalidArgument, cmd, f"{cmd.name} is an engine event name")
        if self.state is State.CLOSING:
            # The archive is being written: the activity joins the closing events and the
            # archive write is issued again (it is idempotent).
            self.seq = next_seq(self.seq)
            event = Event(
                self.id,
                self.room_id,
                self.seq,
                cmd.name,
                EventType.ACTIVITY,
                now,
                cmd.emitter,
                None,
                cmd.data,
            )
            self._closing_events.append(event)
            return [ArchiveConversation(self._closed_record(), tuple(self._closing_events))]
        self._begin(now)
        self._emit(Bucket.OWN, cmd.name, cmd.emitter, None, cmd.data, EventType.ACTIVITY)
        return self._finish()

    def _on_timer_fired(self, cmd: TimerFired, now: int) -> list[Effect]:
        running = self._timers.get(cmd.key)
        if running is None or running.token != cmd.token:
            return []  # stale alarm of a stopped or re-armed timer
        kind = cmd.key.kind
        session_id = cmd.key.subject if kind is TimerKind.CUSTOMER_SLA else None
        if cmd.percent < 100:
            if kind not in OBSERVABLE_KINDS:
                return []
            threshold = self._threshold(kind, cmd.percent)
            running.fired = (*running.fired, cmd.percent)
            self._begin(now)
            self._emit(
                Bucket.OWN,
                TIMER_EVENTS[kind].threshold,
                SYSTEM,
                session_id,
                {
                    "percent": cmd.percent,
                    "action": (threshold.action if threshold else ThresholdAction.NONE).value,
                },
            )
            return self._finish()
        del self._timers[cmd.key]  # expired: it is no longer running, and emits no _STOPPED
        self._begin(now)
        if kind is TimerKind.HOLD:
            self._resume(ResumeReason.HOLD_EXPIRED, SYSTEM)
        elif kind is TimerKind.AGENT_SLA:
            self._emit(Bucket.OWN, EventName.AGENT_SLA_EXPIRED, SYSTEM, None, {})
            present, wrapping = self.agents_present, self.agents_wrapping_up
            removed = [p for p in self._participants.values() if p.present]
            for agent in removed:
                self._unsubscribe(
                    agent, UnsubscribeReason.SLA_EXPIRED, Bucket.PARTICIPANT, promote=False
                )
            self._after_agents_left(present, wrapping, UnsubscribeReason.SLA_EXPIRED)
            if self.state is State.INACTIVE and self.pending_request is None:
                # not to the agents that just let it expire
                excluded = tuple(agent.id for agent in removed)
                self._request_agent(self.queue, SYSTEM, Bucket.FOLLOW, excluded)
        elif kind is TimerKind.CUSTOMER_SLA:
            self._emit(Bucket.OWN, EventName.CUSTOMER_SLA_EXPIRED, SYSTEM, session_id, {})
            session = self._sessions[cmd.key.subject]
            self._end_session(session, SessionEndReason.INACTIVITY, Bucket.PARTICIPANT, SYSTEM)
        else:  # WRAP_UP
            present, wrapping = self.agents_present, self.agents_wrapping_up
            agent = self._participants[cmd.key.subject]
            self._unsubscribe(agent, UnsubscribeReason.WRAP_UP_EXPIRED, Bucket.OWN)
            self._after_agents_left(present, wrapping, UnsubscribeReason.WRAP_UP_EXPIRED)
        return self._finish()

    def _on_routing_update(self, cmd: RoutingUpdate, now: int) -> list[Effect]:
        if cmd.request_id != self.pending_request or not self.is_open:
            return []  # about a request that was fulfilled or withdrawn meanwhile
        if cmd.name == EventName.QUEUE_POSITION:
            return self._queue_position(cmd, now)
        if cmd.name not in _ROUTING_REPORTS:
            raise self._refuse(InvalidArgument, cmd, f"unknown routing report {cmd.name}")
        self._begin(now)
        consult = self.request_consult
        data: dict[str, Any] = {"queue": cmd.queue}
        if cmd.agent_id is not None:
            data["agent_id"] = cmd.agent_id
        if consult:
            data["consult"] = True
        if cmd.name == EventName.AGENT_OFFERED and self.request_note:
            data["note"] = self.request_note
        self._emit(Bucket.OWN, cmd.name, SYSTEM, None, data)
        if cmd.agent_id is not None:  # an offer made to this agent, or taken back (RONA)
            self._notify(cmd.agent_id, EventName(cmd.name))
            self.offered_to = cmd.agent_id if cmd.name == EventName.AGENT_OFFERED else None
        if cmd.name == EventName.NO_AGENT_AVAILABLE:
            self._withdraw_offer()
            self._request_over()
            if consult:  # the customer is still served: its timers are as they were
                return self._finish()
            latest = self._latest_text_session()
            if latest is not None:
                self._start_inactivity(latest)
            # every other live session waits on the customer again too: a session left
            # without its timer would keep the conversation open for ever
            for session in self._sessions.values():
                key = TimerKey(TimerKind.CUSTOMER_SLA, session.id)
                if session.live and session is not latest and key not in self._timers:
                    self._start_inactivity(session)
        return self._finish()

    def _queue_position(self, cmd: RoutingUpdate, now: int) -> list[Effect]:
        """The customer is told where its request stands; an agent's consult is not theirs."""
        if self.request_consult:
            return []
        if cmd.position is None or cmd.position < 1:
            raise self._refuse(InvalidArgument, cmd, f"queue position {cmd.position} is not >= 1")
        self._begin(now)
        data = {
            "queue": cmd.queue,
            "position": cmd.position,
            "estimated_wait_seconds": cmd.estimated_wait_seconds,
        }
        self._emit(Bucket.OWN, EventName.QUEUE_POSITION, SYSTEM, None, data)
        return self._finish()

    def _on_archive_committed(self, cmd: ArchiveCommitted, now: int) -> list[Effect]:
        """CLOSING -> CLOSED, as the table has it; the change was announced when the archive
        was prepared, and its closing events are published now."""
        row = transition_for(self.state, Trigger.ARCHIVED, self)
        closing = self._closing_events
        self.state = row.target
        self._act(LIFECYCLE[row.target].on_entry + row.actions, row.trigger)
        self._closing_events = []
        effects = self._announce(closing, [], [row.target], final=True)
        late = tuple(e for e in closing if e.seq > cmd.through_seq)
        if late:
            effects.append(ArchiveLate(late))
        return effects
