"""The building blocks of a command: planned events, state changes looked up in the lifecycle
table with their entry, exit and row actions, timer starts and stops, and the finish that
turns a command's plan into its effects.

Every block works on the machine's working copy (see :meth:`MachineBase._working_copy`) while
a command's :class:`~domain.machine_parts.CommandPlan` is open.
"""

from __future__ import annotations

from dataclasses import replace

from domain.bot import BOT_INTERESTS
from domain.commands import StartSession
from domain.effects import (
    ArchiveConversation,
    DeliverEvents,
    Effect,
    Publish,
    ReleaseAgent,
    ReportState,
    TellAgent,
    TellBot,
)
from domain.enums import (
    Channel,
    EventType,
    ParticipantState,
    ParticipantType,
    Role,
    SessionEndReason,
    SessionState,
    State,
    UnsubscribeReason,
)
from domain.events import EVENT_TYPES, EventName
from domain.machine_base import BOT, BOT_ID
from domain.machine_parts import Bucket, Participant, Session, bucket_of
from domain.machine_requests import MachineRequests
from domain.machine_timers import HOLD_KEY
from domain.records import SYSTEM, ConversationRecord, Emitter, Event, Payload
from domain.sequence import next_seq
from domain.timers import TimerKey, TimerKind
from domain.transitions import LIFECYCLE, Action, Trigger, transition_for


class MachineSteps(MachineRequests):
    def _finish(self) -> list[Effect]:
        t = self._t
        self._settle_timers(t)
        # sorted() is stable: events of one bucket keep the order they were emitted in
        events: list[Event] = []
        for _, name, emitter, session_id, data, event_type in sorted(t.events, key=bucket_of):
            self.seq = next_seq(self.seq)
            kind = event_type or EVENT_TYPES.get(name, EventType.NOTIFICATION)
            events.append(
                Event(
                    self.id,
                    self.room_id,
                    self.seq,
                    str(name),
                    kind,
                    t.now,
                    emitter,
                    session_id,
                    dict(data),
                )
            )
        effects = self._announce(events, t.ended_sessions, t.entered)
        subscribed = set(self.subscribed_agents())
        for agent_id, name in t.notify:
            told = tuple(e for e in events if e.name == name)
            if agent_id not in subscribed and told:
                effects.append(TellAgent(agent_id, told, self.offered_to == agent_id))
        if self.state is State.CLOSING and not self._closing_events:
            effects.append(self._prepare_archive(t.now))
        self._plan = None
        return effects + t.effects

    def _announce(
        self,
        events: list[Event],
        ended_sessions: list[str],
        entered: list[State],
        *,
        final: bool = False,
    ) -> list[Effect]:
        """Publish ``events`` and say where they go: the live sessions and those that ended
        in this command (they get the events of the command that ended them), every agent,
        the bot what it reacts to, and the TopicMonitor each state entered. ``final``: the
        conversation's last events, for every session and every agent that took part."""
        effects: list[Effect] = [Publish(e) for e in events]
        if not events:
            return effects
        if final:
            agents = tuple(
                p.id for p in self._participants.values() if p.type is ParticipantType.AGENT
            )
            effects.append(DeliverEvents(tuple(self._sessions), agents, final=True))
        else:
            live = self.live_session_ids()
            effects.append(
                DeliverEvents(tuple(live + [s for s in ended_sessions if s not in live]))
            )
        bot_role = self.bot_role()
        if bot_role is not None:
            # a consult's routing concerns the agents, not the bot's customer
            interesting = tuple(
                e for e in events if e.name in BOT_INTERESTS and not e.data.get("consult")
            )
            if interesting:
                effects.append(TellBot(interesting, bot_role, self.pending_request is not None))
        effects += [ReportState(state) for state in entered]
        return effects

    # ------------------------------------------------------------------ the lifecycle table

    def _transition(self, trigger: Trigger, cause: EventName) -> State:
        """Change state as the table says (raises MissingTransition if it has no row), with
        the old state's exit actions, then the new state's entry actions and the row's."""
        row = transition_for(self.state, trigger, self)
        source = self.state
        if source is not None:
            self._act(LIFECYCLE[source].on_exit, trigger)
        self.state = row.target
        self._emit(
            Bucket.STATE,
            EventName.TOPIC_STATE_CHANGED,
            SYSTEM,
            None,
            {
                "from": str(source) if source else None,
                "to": str(row.target),
                "reason": str(trigger),
                "cause": str(cause),
            },
        )
        self._t.entered.append(row.target)
        self._act(LIFECYCLE[row.target].on_entry + row.actions, trigger)
        return row.target

    def _act(self, actions: tuple[Action, ...], trigger: Trigger) -> None:
        for action in actions:
            if action is Action.CLOSE_OUT:
                self._close_out(trigger)
            elif action is Action.BOT_PRIMARY:
                self._set_bot_role(Role.PRIMARY)
            elif action is Action.BOT_ASSISTANT:
                self._set_bot_role(Role.ASSISTANT)
            elif action is Action.WRAP_UP_AGENTS:
                for agent in [p for p in self._participants.values() if p.present]:
                    self._start_wrap_up(agent, Bucket.PARTICIPANT, promote=False)
            elif action is Action.STOP_HOLD:
                self._stop(HOLD_KEY)
            else:  # UNSUBSCRIBE_BOT: the archive has committed the bot's departure
                bot = self._participants.get(BOT_ID)
                if bot is not None and bot.subscribed:
                    bot.state = ParticipantState.UNSUBSCRIBED
                    bot.left_at = self.ended_at

    def _close_out(self, trigger: Trigger) -> None:
        self.ended_at = self._t.now
        for session in self._sessions.values():
            if session.live:
                self._end_session(
                    session, SessionEndReason.FORCE_CLOSED, Bucket.PARTICIPANT, SYSTEM, quiet=True
                )
        reason = (
            UnsubscribeReason.FORCE_CLOSED
            if trigger is Trigger.END_CONVERSATION
            else UnsubscribeReason.CONVERSATION_CLOSED
        )
        for agent in [
            p
            for p in self._participants.values()
            if p.subscribed and p.type is ParticipantType.AGENT
        ]:
            self._unsubscribe(agent, reason, Bucket.PARTICIPANT, promote=False)
        self._cancel_request()

    def _prepare_archive(self, now: int) -> ArchiveConversation:
        """At CLOSING: the events that the archive's commit will publish (the change to CLOSED
        as the table has it, the bot leaving) and the record as it will be then."""
        row = transition_for(self.state, Trigger.ARCHIVED, self)
        names: list[tuple[str, Emitter, Payload]] = [
            (
                EventName.TOPIC_STATE_CHANGED,
                SYSTEM,
                {
                    "from": str(self.state),
                    "to": str(row.target),
                    "reason": str(row.trigger),
                    "cause": str(row.trigger),
                },
            )
        ]
        bot_role = self.bot_role()
        if bot_role is not None:
            names.append((EventName.BOT_UNSUBSCRIBED, BOT, {"role": bot_role.value}))
        for name, emitter, data in names:
            self.seq = next_seq(self.seq)
            self._closing_events.append(
                Event(
                    self.id,
                    self.room_id,
                    self.seq,
                    str(name),
                    EventType.NOTIFICATION,
                    now,
                    emitter,
                    None,
                    dict(data),
                )
            )
        return ArchiveConversation(self._closed_record(), tuple(self._closing_events))

    def closing_effect(self) -> ArchiveConversation | None:
        """While CLOSING: the archive write still to be done (for a rebuilt conversation)."""
        if self.state is not State.CLOSING:
            return None
        return ArchiveConversation(self._closed_record(), tuple(self._closing_events))

    def _closed_record(self) -> ConversationRecord:
        record = self.record()
        participants = tuple(
            replace(p, state=ParticipantState.UNSUBSCRIBED, left_at=self.ended_at)
            if p.id == BOT_ID and p.state is ParticipantState.SUBSCRIBED
            else p
            for p in record.participants
        )
        return replace(record, state=State.CLOSED, participants=participants, seq=self.seq)

    # ------------------------------------------------------------------ sessions, participants

    def _add_session(self, cmd: StartSession) -> None:
        now = self._t.now
        self._sessions[cmd.session_id] = Session(
            cmd.session_id, cmd.channel, cmd.identifier, SessionState.STARTED, now, dict(cmd.data)
        )
        self._emit(
            Bucket.OWN,
            EventName.CHANNEL_SESSION_STARTED,
            self._customer(),
            cmd.session_id,
            {"channel": cmd.channel.value, "identifier": cmd.identifier},
        )

    def _end_session(
        self,
        session: Session,
        reason: SessionEndReason,
        bucket: Bucket,
        emitter: Emitter,
        *,
        quiet: bool = False,
    ) -> None:
        was_voice = session.channel is Channel.VOICE
        session.state = SessionState.ENDED
        session.end_reason = reason
        session.ended_at = self._t.now
        self._t.ended_sessions.append(session.id)
        self._emit(
            bucket,
            EventName.CHANNEL_SESSION_ENDED,
            emitter,
            session.id,
            {"end_reason": reason.value},
        )
        if quiet:
            return
        if not self.customer_present:
            self._cancel_request()
            self._transition(Trigger.LAST_CUSTOMER_LEFT, EventName.CHANNEL_SESSION_ENDED)
        elif was_voice and not self.voice_active:
            self._start_all_inactivity()

    def _unsubscribe(
        self,
        agent: Participant,
        reason: UnsubscribeReason,
        bucket: Bucket,
        *,
        promote: bool = True,
    ) -> None:
        # ``promote=False`` when every agent goes at once: nobody is promoted in passing.
        was_primary = agent.role is Role.PRIMARY
        agent.state = ParticipantState.UNSUBSCRIBED
        agent.left_at = self._t.now
        self._emit(
            bucket,
            EventName.AGENT_UNSUBSCRIBED,
            self._agent(agent.id),
            None,
            {"agent_id": agent.id, "reason": reason.value},
        )
        self._t.effects.append(ReleaseAgent(agent.id, reason))
        self._consult_left(agent.id)
        if was_primary and promote:
            self._promote_assistant()

    def _start_wrap_up(self, agent: Participant, bucket: Bucket, *, promote: bool = True) -> None:
        was_primary = agent.role is Role.PRIMARY
        self._set_role(agent, Role.WRAP_UP, bucket)
        self._start(TimerKey(TimerKind.WRAP_UP, agent.id), self.policy.wrap_up_ms)
        self._consult_left(agent.id)
        if was_primary and promote:
            self._promote_assistant()

    def _promote_assistant(self) -> None:
        if self._primary() is not None:
            return
        assistant = next(
            (p for p in self._participants.values() if p.present and p.role is Role.ASSISTANT), None
        )
        if assistant is not None:
            self._set_role(assistant, Role.PRIMARY, Bucket.PARTICIPANT)

    def _after_agents_left(
        self, was_present: bool, was_wrapping_up: bool, reason: UnsubscribeReason
    ) -> None:
        """Once agents have left: the last present one, or the last one wrapping up."""
        if was_present and not self.agents_present:
            target = self._transition(Trigger.LAST_AGENT_LEFT, EventName.AGENT_UNSUBSCRIBED)
            if target is State.INACTIVE and reason is not UnsubscribeReason.DIRECT_TRANSFER:
                self._start_all_inactivity()
        elif self.state is State.WRAP_UP and was_wrapping_up and not self.agents_wrapping_up:
            self._transition(Trigger.WRAP_UP_DONE, EventName.AGENT_UNSUBSCRIBED)

    def _set_role(self, participant: Participant, role: Role, bucket: Bucket) -> None:
        old = participant.role
        if old is role:
            return
        participant.role = role
        self._emit(
            bucket,
            EventName.PARTICIPANT_ROLE_CHANGED,
            SYSTEM,
            None,
            {"participant_id": participant.id, "from": old.value, "to": role.value},
        )

    def _set_bot_role(self, role: Role) -> None:
        bot = self._participants.get(BOT_ID)
        if bot is not None and bot.subscribed:
            self._set_role(bot, role, Bucket.PARTICIPANT)
