"""The conversation state machine: pure, deterministic, no IO, clock, randomness or Thespian.

``ConversationMachine.handle(command, now)`` validates the command against the current state
and raises a :class:`~domain.errors.Refused` before anything changes; otherwise it applies
the command and returns the effects for its actor shell to carry out: events to publish (with
their sequence numbers), alarms to arm, routing requests, agents to release, the archive write.

One command is one *trigger*. The events of a trigger come out in a fixed order: the trigger's
own event, then TOPIC_STATE_CHANGED, then participant events, then follow-on events (routing),
then timer ``_STOPPED``, then timer ``_STARTED``. State changes are looked up in the table of
:mod:`domain.transitions`.

Besides their explicit starts and stops (docs/STATES.md), timers follow one rule: a timer may only
run while its *invariant* holds (agent SLA: ACTIVE with customer and agent present and no voice
session; customer inactivity: an open state with the customer present, its session started,
non-voice, and no voice session active; hold: ON_HOLD; wrap-up: its agent still in role
WRAP_UP). At the end of every trigger, timers whose invariant fails are stopped, and starts
whose invariant fails are dropped. That is what makes "no timer event in a state that stopped
it" hold by construction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import Enum
from operator import itemgetter
from typing import Any, ClassVar

from domain.commands import (
    AddActivity,
    AgentLeave,
    AgentMessage,
    ApplyWrapUp,
    ArchiveCommitted,
    BotMessage,
    BotNotification,
    Command,
    CustomerMessage,
    EndConversation,
    EndSession,
    Hold,
    RequestAgent,
    Resume,
    RoutingUpdate,
    SetData,
    StartSession,
    SubscribeAgent,
    TimerFired,
)
from domain.effects import (
    ArchiveConversation,
    ArchiveLate,
    ArmAlarm,
    CancelRoute,
    DisarmTimer,
    Effect,
    Publish,
    ReleaseAgent,
    RouteRequest,
)
from domain.enums import (
    OPEN_STATES,
    PRESENT_ROLES,
    SUPERVISOR_ROLES,
    VOLUNTARY_LEAVE_REASONS,
    Channel,
    Direction,
    EndedBy,
    EventType,
    ParticipantState,
    ParticipantType,
    ResumeReason,
    Role,
    SessionEndReason,
    SessionState,
    State,
    UnsubscribeReason,
)
from domain.errors import IllegalTransition, InvalidArgument, Refused, UnknownParticipant
from domain.events import EVENT_TYPES, RESERVED_NAMES
from domain.ids import agent_request_id
from domain.limits import MAX_EXTERNAL_ID, MAX_NAME, MAX_TEXT
from domain.policy import Policy, Threshold
from domain.records import (
    SYSTEM,
    ConversationRecord,
    Emitter,
    Event,
    ParticipantRecord,
    Payload,
    SessionRecord,
)
from domain.sequence import next_seq
from domain.timers import OBSERVABLE_KINDS, RunningTimer, TimerKey, TimerKind
from domain.transitions import ACCEPTED_IN, SUPERVISOR_ACCEPTED_IN, Trigger, target_of

BOT_ID = "bot"
BOT = Emitter(BOT_ID, ParticipantType.BOT)
_AGENT_SLA = TimerKey(TimerKind.AGENT_SLA)
_HOLD = TimerKey(TimerKind.HOLD)
_CUSTOMER_STATES = frozenset({State.CREATED, State.ACTIVE, State.INACTIVE})


class _Bucket(int, Enum):
    OWN = 0
    STATE = 1
    PARTICIPANT = 2
    FOLLOW = 3
    TIMER_STOPPED = 4
    TIMER_STARTED = 5


_bucket_of = itemgetter(0)  # an emitted event's _Bucket (an int)


@dataclass(slots=True)
class _Session:
    id: str
    channel: Channel
    identifier: str
    state: SessionState
    started_at: int
    data: Payload
    end_reason: SessionEndReason | None = None
    ended_at: int | None = None

    @property
    def live(self) -> bool:
        return self.state is SessionState.STARTED


@dataclass(slots=True)
class _Participant:
    id: str
    type: ParticipantType
    role: Role
    joined_at: int
    state: ParticipantState = ParticipantState.SUBSCRIBED
    left_at: int | None = None

    @property
    def subscribed(self) -> bool:
        return self.state is ParticipantState.SUBSCRIBED

    @property
    def present(self) -> bool:
        return self.subscribed and self.type is ParticipantType.AGENT and self.role in PRESENT_ROLES

    @property
    def wrapping_up(self) -> bool:
        return self.subscribed and self.role is Role.WRAP_UP


@dataclass(slots=True)
class _Trigger:
    """What one trigger accumulates before it is finished into effects."""

    now: int
    events: list[tuple[_Bucket, str, Emitter, str | None, Payload]] = field(default_factory=list)
    plan: dict[TimerKey, int | None] = field(default_factory=dict)  # duration, or None: stop
    effects: list[Effect] = field(default_factory=list)


class ConversationMachine:
    """One conversation's lifecycle. Create it with :meth:`open`; feed it with :meth:`handle`."""

    _HANDLERS: ClassVar[dict[type[Any], Callable[[ConversationMachine, Any, int], list[Effect]]]]

    def __init__(
        self,
        *,
        conversation_id: str,
        room_id: str,
        customer_id: str,
        policy: Policy,
        direction: Direction = Direction.INBOUND,
    ) -> None:
        self.id = conversation_id
        self.room_id = room_id
        self.customer_id = customer_id
        self.policy = policy
        self.direction = direction
        self.state: State | None = None
        self.created_at = 0
        self.ended_at: int | None = None
        self.seq = 0
        self.data: dict[str, str | int | float | bool | None] = {}
        self.queue: str = policy.default_queue
        self.pending_request: str | None = None
        self._sessions: dict[str, _Session] = {}
        self._participants: dict[str, _Participant] = {}
        self._timers: dict[TimerKey, RunningTimer] = {}
        self._next_token = 0
        self._requests = 0
        self._closing_events: list[Event] = []
        self._trigger: _Trigger | None = None

    # ------------------------------------------------------------------ construction

    @classmethod
    def check_first_session(cls, conversation_id: str, first: StartSession) -> None:
        """Raise the refusal ``open`` would raise for ``first``, creating nothing: whoever must
        store something before the conversation exists (the TopicMonitor: the customer's room)
        asks first, so that a refused session leaves nothing behind."""
        bare = cls(conversation_id=conversation_id, room_id="", customer_id="", policy=Policy())
        bare._check_new_session(first)

    @classmethod
    def open(
        cls,
        *,
        conversation_id: str,
        room_id: str,
        customer_id: str,
        first: StartSession,
        policy: Policy,
        now: int,
        direction: Direction = Direction.INBOUND,
    ) -> tuple[ConversationMachine, list[Effect]]:
        """Create the conversation from its first channel session (none -> CREATED)."""
        machine = cls(
            conversation_id=conversation_id,
            room_id=room_id,
            customer_id=customer_id,
            policy=policy,
            direction=direction,
        )
        machine._check_new_session(first)
        machine.created_at = now
        t = machine._begin(now)
        machine._add_session(first)
        machine._transition(Trigger.FIRST_SESSION, "CHANNEL_SESSION_STARTED")
        if policy.bot_enabled:
            machine._participants[BOT_ID] = _Participant(
                BOT_ID, ParticipantType.BOT, Role.PRIMARY, now
            )
            machine._emit(_Bucket.PARTICIPANT, "BOT_SUBSCRIBED", BOT, None, {"role": "PRIMARY"})
        if first.channel is not Channel.VOICE:
            t.plan[TimerKey(TimerKind.CUSTOMER_SLA, first.session_id)] = policy.inactivity_for(
                first.channel
            )
        return machine, machine._finish()

    # ------------------------------------------------------------------ queries

    @property
    def customer_present(self) -> bool:
        return any(s.live for s in self._sessions.values())

    @property
    def agents_present(self) -> bool:
        return any(p.present for p in self._participants.values())

    @property
    def agents_wrapping_up(self) -> bool:
        return any(p.wrapping_up for p in self._participants.values())

    @property
    def wrap_up_enabled(self) -> bool:
        return self.policy.wrap_up_enabled

    @property
    def voice_active(self) -> bool:
        return any(s.live and s.channel is Channel.VOICE for s in self._sessions.values())

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    def session_ids(self) -> list[str]:
        return list(self._sessions)

    def live_session_ids(self) -> list[str]:
        return [s.id for s in self._sessions.values() if s.live]

    def subscribed_agents(self) -> list[str]:
        return [
            p.id
            for p in self._participants.values()
            if p.subscribed and p.type is ParticipantType.AGENT
        ]

    def subscribed_supervisors(self) -> list[str]:
        return [
            p.id for p in self._participants.values() if p.subscribed and p.role in SUPERVISOR_ROLES
        ]

    def bot_role(self) -> Role | None:
        bot = self._participants.get(BOT_ID)
        return bot.role if bot is not None and bot.subscribed else None

    def participant_role(self, participant_id: str) -> Role | None:
        p = self._participants.get(participant_id)
        return p.role if p is not None and p.subscribed else None

    def running_timers(self) -> dict[TimerKey, RunningTimer]:
        return {k: replace(v) for k, v in self._timers.items()}

    def pending_alarms(self) -> list[ArmAlarm]:
        """The alarms of the running timers that have not fired yet: what a host arms for a
        conversation rebuilt from its journal (alarms already due fire at once, once)."""
        alarms: list[ArmAlarm] = []
        for key, timer in self._timers.items():
            duration = timer.deadline - timer.started_at
            for threshold in self._thresholds(key.kind):
                if threshold.percent not in timer.fired:
                    at = timer.started_at + duration * threshold.percent // 100
                    alarms.append(ArmAlarm(key, timer.token, at, threshold.percent))
            alarms.append(ArmAlarm(key, timer.token, timer.deadline, 100))
        return alarms

    def closing_effect(self) -> ArchiveConversation | None:
        """While CLOSING: the archive write still to be done (for a rebuilt conversation)."""
        if self.state is not State.CLOSING:
            return None
        return ArchiveConversation(self._closed_record(), tuple(self._closing_events))

    def record(self) -> ConversationRecord:
        assert self.state is not None
        return ConversationRecord(
            id=self.id,
            room_id=self.room_id,
            customer_id=self.customer_id,
            state=self.state,
            direction=self.direction,
            created_at=self.created_at,
            ended_at=self.ended_at,
            participants=tuple(
                ParticipantRecord(p.id, p.type, p.role, p.state, p.joined_at, p.left_at)
                for p in self._participants.values()
            ),
            channel_sessions=tuple(
                SessionRecord(
                    s.id,
                    self.id,
                    s.channel,
                    s.identifier,
                    s.state,
                    s.end_reason,
                    s.started_at,
                    s.ended_at,
                    s.data,
                )
                for s in self._sessions.values()
            ),
            data=dict(self.data),
            seq=self.seq - len(self._closing_events),
        )

    # ------------------------------------------------------------------ commands

    def handle(self, command: Command, now: int) -> list[Effect]:
        """Apply ``command`` at time ``now`` (ms) and return the effects; refuse by raising."""
        allowed = ACCEPTED_IN[type(command)]
        if self.state not in allowed and not self._supervisor_join(command):
            raise self._refuse(IllegalTransition, command, f"not allowed in state {self.state}")
        return self._HANDLERS[type(command)](self, command, now)

    def _supervisor_join(self, command: Command) -> bool:
        return (
            isinstance(command, SubscribeAgent)
            and command.role in SUPERVISOR_ROLES
            and self.state in SUPERVISOR_ACCEPTED_IN
        )

    def _on_start_session(self, cmd: StartSession, now: int) -> list[Effect]:
        self._check_new_session(cmd)
        t = self._begin(now)
        returning = not self.customer_present
        self._add_session(cmd)
        if returning:
            self._transition(Trigger.CUSTOMER_RETURNED, "CHANNEL_SESSION_STARTED")
        if cmd.channel is Channel.VOICE:
            self._stop_all(TimerKind.CUSTOMER_SLA)
        else:
            t.plan[TimerKey(TimerKind.CUSTOMER_SLA, cmd.session_id)] = self.policy.inactivity_for(
                cmd.channel
            )
        return self._finish()

    def _on_customer_message(self, cmd: CustomerMessage, now: int) -> list[Effect]:
        session = self._live_session(cmd, cmd.session_id)
        self._check_text(cmd, cmd.text)
        self._begin(now)
        self._emit(
            _Bucket.OWN,
            "CUSTOMER_MESSAGE",
            self._customer(),
            session.id,
            {"text": cmd.text, "message_id": cmd.message_id},
        )
        self._stop(TimerKey(TimerKind.CUSTOMER_SLA, session.id))
        for other in self._sessions.values():
            if other.id != session.id and other.live and other.channel is not Channel.VOICE:
                self._start_inactivity(other)
        if self.agents_present:
            self._start_agent_sla()
        return self._finish()

    def _on_end_session(self, cmd: EndSession, now: int) -> list[Effect]:
        session = self._live_session(cmd, cmd.session_id)
        self._check_enum(cmd, "reason", cmd.reason, SessionEndReason)
        self._begin(now)
        self._end_session(session, cmd.reason, _Bucket.OWN, self._session_ender(cmd.reason))
        return self._finish()

    def _on_request_agent(self, cmd: RequestAgent, now: int) -> list[Effect]:
        if self.pending_request is not None:
            raise self._refuse(IllegalTransition, cmd, "an agent request is already pending")
        self._check_name(cmd, "queue", cmd.queue)
        self._begin(now)
        self._request_agent(cmd.queue, cmd.by, _Bucket.OWN)
        return self._finish()

    def _on_subscribe_agent(self, cmd: SubscribeAgent, now: int) -> list[Effect]:
        existing = self._participants.get(cmd.agent_id)
        if existing is not None and existing.subscribed:
            raise self._refuse(
                IllegalTransition,
                cmd,
                f"agent {cmd.agent_id} is already subscribed as {existing.role}",
            )
        if existing is not None and existing.type is not ParticipantType.AGENT:
            raise self._refuse(InvalidArgument, cmd, f"{cmd.agent_id} is not an agent id")
        if cmd.role is not None and cmd.role not in PRESENT_ROLES | SUPERVISOR_ROLES:
            raise self._refuse(InvalidArgument, cmd, f"an agent cannot join with role {cmd.role}")
        supervisor = cmd.role in SUPERVISOR_ROLES
        primary = self._primary()
        if not supervisor:
            if cmd.request_id is not None and cmd.request_id != self.pending_request:
                raise self._refuse(
                    IllegalTransition, cmd, f"agent request {cmd.request_id} is no longer pending"
                )
            if cmd.role is Role.PRIMARY and primary is not None:
                raise self._refuse(IllegalTransition, cmd, f"agent {primary.id} is already PRIMARY")
        t = self._begin(now)
        if supervisor:
            assert cmd.role is not None
            role = cmd.role
        elif cmd.role is not None:
            role = cmd.role
        else:
            role = Role.PRIMARY if primary is None else Role.ASSISTANT
        arriving = not supervisor and not self.agents_present
        self._participants.pop(cmd.agent_id, None)  # a returning agent starts a new stint
        self._participants[cmd.agent_id] = _Participant(
            cmd.agent_id, ParticipantType.AGENT, role, now
        )
        self._emit(
            _Bucket.OWN,
            "AGENT_SUBSCRIBED",
            self._agent(cmd.agent_id),
            None,
            {"agent_id": cmd.agent_id, "role": role.value},
        )
        if supervisor:
            return self._finish()
        if self.pending_request is not None:
            if cmd.request_id is None:  # a direct join answers the need: withdraw the request
                t.effects.append(CancelRoute(self.pending_request))
            self.pending_request = None
        if arriving:
            self._transition(Trigger.AGENT_ARRIVED, "AGENT_SUBSCRIBED")
            self._set_bot_role(Role.ASSISTANT)
        self._start_agent_sla()
        self._stop_all(TimerKind.CUSTOMER_SLA)
        return self._finish()

    def _on_agent_message(self, cmd: AgentMessage, now: int) -> list[Effect]:
        agent = self._agent_participant(cmd, cmd.agent_id)
        if not (agent.present or agent.wrapping_up):
            raise self._refuse(
                IllegalTransition,
                cmd,
                f"agent {agent.id} in role {agent.role} cannot send messages",
            )
        self._check_text(cmd, cmd.text)
        effects: list[Effect] = []
        if self.state is State.ON_HOLD:
            effects += self._resume(ResumeReason.AGENT_MESSAGE, self._agent(agent.id), now)
        self._begin(now)
        self._emit(
            _Bucket.OWN,
            "AGENT_MESSAGE",
            self._agent(agent.id),
            None,
            {"text": cmd.text, "message_id": cmd.message_id},
        )
        if agent.role is Role.PRIMARY:
            self._stop(_AGENT_SLA)
        self._start_all_inactivity()
        return effects + self._finish()

    def _on_bot_message(self, cmd: BotMessage, now: int) -> list[Effect]:
        self._check_bot(cmd)
        self._check_text(cmd, cmd.text)
        self._begin(now)
        self._emit(
            _Bucket.OWN, "BOT_MESSAGE", BOT, None, {"text": cmd.text, "message_id": cmd.message_id}
        )
        self._start_all_inactivity()
        return self._finish()

    def _on_bot_notification(self, cmd: BotNotification, now: int) -> list[Effect]:
        self._check_bot(cmd)
        self._check_text(cmd, cmd.text)
        self._begin(now)
        self._emit(_Bucket.OWN, "BOT_NOTIFICATION", BOT, None, {"text": cmd.text})
        return self._finish()

    def _on_hold(self, cmd: Hold, now: int) -> list[Effect]:
        agent = self._agent_participant(cmd, cmd.agent_id)
        if not agent.present:
            raise self._refuse(
                IllegalTransition, cmd, f"agent {agent.id} in role {agent.role} cannot hold"
            )
        max_seconds = self.policy.hold_max_ms / 1000
        seconds_ok = isinstance(cmd.seconds, int | float) and not isinstance(cmd.seconds, bool)
        if not seconds_ok or not 0 < cmd.seconds <= max_seconds:
            raise self._refuse(
                InvalidArgument,
                cmd,
                f"hold seconds must be > 0 and <= {max_seconds:g}, got {cmd.seconds!r}",
            )
        t = self._begin(now)
        self._emit(
            _Bucket.OWN,
            "CONVERSATION_PAUSED",
            self._agent(agent.id),
            None,
            {"seconds": cmd.seconds},
        )
        self._transition(Trigger.HOLD, "CONVERSATION_PAUSED")
        t.plan[_HOLD] = round(cmd.seconds * 1000)
        return self._finish()

    def _on_resume(self, cmd: Resume, now: int) -> list[Effect]:
        agent = self._agent_participant(cmd, cmd.agent_id)
        if not agent.present:
            raise self._refuse(
                IllegalTransition, cmd, f"agent {agent.id} in role {agent.role} cannot resume"
            )
        return self._resume(ResumeReason.AGENT, self._agent(agent.id), now)

    def _on_agent_leave(self, cmd: AgentLeave, now: int) -> list[Effect]:
        agent = self._agent_participant(cmd, cmd.agent_id)
        self._check_enum(cmd, "reason", cmd.reason, UnsubscribeReason)
        voluntary = cmd.reason in VOLUNTARY_LEAVE_REASONS
        if voluntary and agent.wrapping_up:
            raise self._refuse(
                IllegalTransition, cmd, f"agent {agent.id} is in WRAP_UP: apply_wrap_up ends it"
            )
        self._begin(now)
        if voluntary and agent.present and self.policy.wrap_up_enabled:
            self._start_wrap_up(agent, _Bucket.OWN)
        else:
            self._unsubscribe(agent, cmd.reason, _Bucket.OWN)
        self._after_agents_changed(cmd.reason)
        return self._finish()

    def _on_apply_wrap_up(self, cmd: ApplyWrapUp, now: int) -> list[Effect]:
        agent = self._agent_participant(cmd, cmd.agent_id)
        if not agent.wrapping_up:
            raise self._refuse(IllegalTransition, cmd, f"agent {agent.id} is not in role WRAP_UP")
        if (
            not all(isinstance(c, str) and 0 < len(c) <= MAX_NAME for c in cmd.codes)
            or len(cmd.codes) > 32
        ):
            raise self._refuse(InvalidArgument, cmd, "codes must be at most 32 non-empty strings")
        self._check_text(cmd, cmd.note)
        self._begin(now)
        self._emit(
            _Bucket.OWN,
            "WRAPUP_APPLIED",
            self._agent(agent.id),
            None,
            {"agent_id": agent.id, "codes": list(cmd.codes), "note": cmd.note},
        )
        self._unsubscribe(agent, UnsubscribeReason.WRAP_UP_APPLIED, _Bucket.PARTICIPANT)
        self._after_agents_changed(UnsubscribeReason.WRAP_UP_APPLIED)
        return self._finish()

    def _on_set_data(self, cmd: SetData, now: int) -> list[Effect]:
        self._check_name(cmd, "key", cmd.key)
        if not isinstance(cmd.value, str | int | float | bool | None):
            raise self._refuse(
                InvalidArgument, cmd, "value must be a string, number, boolean or null"
            )
        if isinstance(cmd.value, str) and len(cmd.value) > MAX_TEXT:
            raise self._refuse(InvalidArgument, cmd, f"value longer than {MAX_TEXT} characters")
        if cmd.key not in self.data and len(self.data) >= self.policy.max_data_keys:
            raise self._refuse(
                InvalidArgument,
                cmd,
                f"conversation data holds at most {self.policy.max_data_keys} keys",
            )
        self._begin(now)
        self.data[cmd.key] = cmd.value
        self._emit(
            _Bucket.OWN,
            "CONVERSATION_DATA_CHANGED",
            SYSTEM,
            None,
            {"key": cmd.key, "value": cmd.value},
        )
        return self._finish()

    def _on_end_conversation(self, cmd: EndConversation, now: int) -> list[Effect]:
        self._check_enum(cmd, "by", cmd.by, EndedBy)
        self._begin(now)
        self._emit(_Bucket.OWN, "END_CONVERSATION", SYSTEM, None, {"by": cmd.by.value})
        self._transition(Trigger.END_CONVERSATION, "END_CONVERSATION")
        return self._finish()

    def _on_add_activity(self, cmd: AddActivity, now: int) -> list[Effect]:
        self._check_name(cmd, "name", cmd.name)
        if cmd.name in RESERVED_NAMES:
            raise self._refuse(InvalidArgument, cmd, f"{cmd.name} is an engine event name")
        if self.state is State.CLOSING:
            # The archive is being written: the activity joins the closing events and the
            # archive write is issued again (it is idempotent).
            self.seq += 1
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
        self._emit(_Bucket.OWN, cmd.name, cmd.emitter, None, cmd.data, EventType.ACTIVITY)
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
                _Bucket.OWN,
                f"{kind.value}_THRESHOLD",
                SYSTEM,
                session_id,
                {"percent": cmd.percent, "action": threshold.action.value if threshold else "NONE"},
            )
            return self._finish()
        del self._timers[cmd.key]  # expired: it is no longer running, and emits no _STOPPED
        if kind is TimerKind.HOLD:
            return self._resume(ResumeReason.HOLD_EXPIRED, SYSTEM, now)
        self._begin(now)
        if kind is TimerKind.AGENT_SLA:
            self._emit(_Bucket.OWN, "AGENT_SLA_EXPIRED", SYSTEM, None, {})
            removed = [p for p in self._participants.values() if p.present]
            for agent in removed:
                self._unsubscribe(
                    agent, UnsubscribeReason.SLA_EXPIRED, _Bucket.PARTICIPANT, promote=False
                )
            self._after_agents_changed(UnsubscribeReason.SLA_EXPIRED)
            if self.state is State.INACTIVE and self.pending_request is None:
                # not to the agents that just let it expire
                excluded = tuple(agent.id for agent in removed)
                self._request_agent(self.queue, SYSTEM, _Bucket.FOLLOW, excluded)
        elif kind is TimerKind.CUSTOMER_SLA:
            self._emit(_Bucket.OWN, "CUSTOMER_SLA_EXPIRED", SYSTEM, session_id, {})
            session = self._sessions[cmd.key.subject]
            self._end_session(session, SessionEndReason.INACTIVITY, _Bucket.PARTICIPANT, SYSTEM)
        else:  # WRAP_UP
            agent = self._participants[cmd.key.subject]
            self._unsubscribe(agent, UnsubscribeReason.WRAP_UP_EXPIRED, _Bucket.OWN)
            self._after_agents_changed(UnsubscribeReason.WRAP_UP_EXPIRED)
        return self._finish()

    def _on_routing_update(self, cmd: RoutingUpdate, now: int) -> list[Effect]:
        if cmd.request_id != self.pending_request or not self.is_open:
            return []  # about a request that was fulfilled or withdrawn meanwhile
        if cmd.name not in ("AGENT_OFFERED", "RONA", "NO_AGENT_AVAILABLE"):
            raise self._refuse(InvalidArgument, cmd, f"unknown routing report {cmd.name}")
        self._begin(now)
        data: dict[str, Any] = {"queue": cmd.queue}
        if cmd.agent_id is not None:
            data["agent_id"] = cmd.agent_id
        self._emit(_Bucket.OWN, cmd.name, SYSTEM, None, data)
        if cmd.name == "NO_AGENT_AVAILABLE":
            self.pending_request = None
            latest = self._latest_text_session()
            if latest is not None:
                self._start_inactivity(latest)
        return self._finish()

    def _on_archive_committed(self, cmd: ArchiveCommitted, now: int) -> list[Effect]:
        closing = self._closing_events
        self.state = State.CLOSED
        bot = self._participants.get(BOT_ID)
        if bot is not None and bot.subscribed:
            bot.state = ParticipantState.UNSUBSCRIBED
            bot.left_at = self.ended_at
        self._closing_events = []
        effects: list[Effect] = [Publish(e) for e in closing]
        late = tuple(e for e in closing if e.seq > cmd.through_seq)
        if late:
            effects.append(ArchiveLate(late))
        return effects

    # ------------------------------------------------------------------ building blocks

    def _begin(self, now: int) -> _Trigger:
        self._trigger = _Trigger(now)
        return self._trigger

    @property
    def _t(self) -> _Trigger:
        assert self._trigger is not None, "no trigger in progress"
        return self._trigger

    def _emit(
        self,
        bucket: _Bucket,
        name: str,
        emitter: Emitter,
        session_id: str | None,
        data: Payload,
        event_type: EventType | None = None,
    ) -> None:
        self._t.events.append((bucket, name, emitter, session_id, {**data, "_type": event_type}))

    def _transition(self, trigger: Trigger, cause: str) -> State | None:
        """Change state as the table says; return the new state, or None if unchanged."""
        target = target_of(self.state, trigger, self)
        if target is None:
            return None
        source = self.state
        self.state = target
        self._emit(
            _Bucket.STATE,
            "TOPIC_STATE_CHANGED",
            SYSTEM,
            None,
            {
                "from": str(source) if source else None,
                "to": str(target),
                "reason": str(trigger),
                "cause": cause,
            },
        )
        if target is State.CLOSING:
            self._enter_closing()
        elif target is State.INACTIVE:
            self._set_bot_role(Role.PRIMARY)
        elif target is State.WRAP_UP:
            for agent in [p for p in self._participants.values() if p.present]:
                self._start_wrap_up(agent, _Bucket.PARTICIPANT, promote=False)
        return target

    def _enter_closing(self) -> None:
        now = self._t.now
        self.ended_at = now
        for session in self._sessions.values():
            if session.live:
                self._end_session(
                    session, SessionEndReason.FORCE_CLOSED, _Bucket.PARTICIPANT, SYSTEM, quiet=True
                )
        reason = (
            UnsubscribeReason.FORCE_CLOSED
            if any(e[1] == "END_CONVERSATION" for e in self._t.events)
            else UnsubscribeReason.CONVERSATION_CLOSED
        )
        for agent in [
            p
            for p in self._participants.values()
            if p.subscribed and p.type is ParticipantType.AGENT
        ]:
            self._unsubscribe(agent, reason, _Bucket.PARTICIPANT, promote=False)
        self._cancel_request()

    def _finish(self) -> list[Effect]:
        t = self._t
        self._settle_timers(t)
        # sorted() is stable: events of one bucket keep the order they were emitted in
        ordered = sorted(t.events, key=_bucket_of)
        published: list[Effect] = []
        for _, name, emitter, session_id, payload in ordered:
            data = dict(payload)
            event_type = data.pop("_type") or EVENT_TYPES.get(name, EventType.NOTIFICATION)
            self.seq = next_seq(self.seq)
            event = Event(
                self.id, self.room_id, self.seq, name, event_type, t.now, emitter, session_id, data
            )
            published.append(Publish(event))
        if self.state is State.CLOSING and not self._closing_events:
            published.append(self._prepare_archive(t.now))
        self._trigger = None
        return published + t.effects

    def _prepare_archive(self, now: int) -> ArchiveConversation:
        names: list[tuple[str, Emitter, Payload]] = [
            (
                "TOPIC_STATE_CHANGED",
                SYSTEM,
                {
                    "from": "CLOSING",
                    "to": "CLOSED",
                    "reason": Trigger.ARCHIVED.value,
                    "cause": "ARCHIVED",
                },
            )
        ]
        bot_role = self.bot_role()
        if bot_role is not None:
            names.append(("BOT_UNSUBSCRIBED", BOT, {"role": bot_role.value}))
        for name, emitter, data in names:
            self.seq += 1
            self._closing_events.append(
                Event(
                    self.id,
                    self.room_id,
                    self.seq,
                    name,
                    EventType.NOTIFICATION,
                    now,
                    emitter,
                    None,
                    dict(data),
                )
            )
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

    # timers ---------------------------------------------------------------

    def _may_run(self, key: TimerKey) -> bool:
        kind = key.kind
        if kind is TimerKind.AGENT_SLA:
            return (
                self.state is State.ACTIVE
                and self.agents_present
                and self.customer_present
                and not self.voice_active
            )
        if kind is TimerKind.CUSTOMER_SLA:
            session = self._sessions.get(key.subject)
            return (
                self.state in _CUSTOMER_STATES
                and session is not None
                and session.live
                and session.channel is not Channel.VOICE
                and not self.voice_active
            )
        if kind is TimerKind.HOLD:
            return self.state is State.ON_HOLD
        agent = self._participants.get(key.subject)
        return self.is_open and agent is not None and agent.wrapping_up

    def _settle_timers(self, t: _Trigger) -> None:
        stops = [
            k
            for k, d in t.plan.items()
            if (d is None or not self._may_run(k)) and k in self._timers
        ]
        stops += [k for k in self._timers if k not in t.plan and not self._may_run(k)]
        starts = [(k, d) for k, d in t.plan.items() if d is not None and self._may_run(k)]
        for key in stops:
            del self._timers[key]
            t.effects.append(DisarmTimer(key))
            if key.kind in OBSERVABLE_KINDS:
                self._emit(
                    _Bucket.TIMER_STOPPED,
                    f"{key.kind}_STOPPED",
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
                    _Bucket.TIMER_STARTED,
                    f"{key.kind}_STARTED",
                    SYSTEM,
                    self._subject_session(key),
                    {"seconds": duration / 1000},
                )

    def _thresholds(self, kind: TimerKind) -> tuple[Threshold, ...]:
        if kind is TimerKind.AGENT_SLA:
            return self.policy.agent_sla_thresholds
        if kind is TimerKind.CUSTOMER_SLA:
            return self.policy.inactivity_thresholds
        return ()

    def _threshold(self, kind: TimerKind, percent: int) -> Threshold | None:
        return next((th for th in self._thresholds(kind) if th.percent == percent), None)

    @staticmethod
    def _subject_session(key: TimerKey) -> str | None:
        return key.subject if key.kind is TimerKind.CUSTOMER_SLA else None

    def _stop(self, key: TimerKey) -> None:
        self._t.plan.pop(key, None)
        self._t.plan[key] = None

    def _stop_all(self, kind: TimerKind) -> None:
        keys = {k for k in self._timers if k.kind is kind} | {
            k for k in self._t.plan if k.kind is kind
        }
        for key in sorted(keys):
            self._stop(key)

    def _start(self, key: TimerKey, duration: int) -> None:
        self._t.plan.pop(key, None)
        self._t.plan[key] = duration

    def _start_inactivity(self, session: _Session) -> None:
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
        self._start(_AGENT_SLA, self.policy.sla_ms(self.queue))

    # participants and sessions -------------------------------------------

    def _add_session(self, cmd: StartSession) -> None:
        now = self._t.now
        self._sessions[cmd.session_id] = _Session(
            cmd.session_id, cmd.channel, cmd.identifier, SessionState.STARTED, now, dict(cmd.data)
        )
        self._emit(
            _Bucket.OWN,
            "CHANNEL_SESSION_STARTED",
            self._customer(),
            cmd.session_id,
            {"channel": cmd.channel.value, "identifier": cmd.identifier},
        )

    def _end_session(
        self,
        session: _Session,
        reason: SessionEndReason,
        bucket: _Bucket,
        emitter: Emitter,
        *,
        quiet: bool = False,
    ) -> None:
        was_voice = session.channel is Channel.VOICE
        session.state = SessionState.ENDED
        session.end_reason = reason
        session.ended_at = self._t.now
        self._emit(
            bucket, "CHANNEL_SESSION_ENDED", emitter, session.id, {"end_reason": reason.value}
        )
        if quiet:
            return
        if not self.customer_present:
            self._cancel_request()
            self._transition(Trigger.LAST_CUSTOMER_LEFT, "CHANNEL_SESSION_ENDED")
        elif was_voice and not self.voice_active:
            self._start_all_inactivity()

    def _unsubscribe(
        self,
        agent: _Participant,
        reason: UnsubscribeReason,
        bucket: _Bucket,
        *,
        promote: bool = True,
    ) -> None:
        # ``promote=False`` when every agent goes at once: nobody is promoted in passing.
        was_primary = agent.role is Role.PRIMARY
        agent.state = ParticipantState.UNSUBSCRIBED
        agent.left_at = self._t.now
        self._emit(
            bucket,
            "AGENT_UNSUBSCRIBED",
            self._agent(agent.id),
            None,
            {"agent_id": agent.id, "reason": reason.value},
        )
        self._t.effects.append(ReleaseAgent(agent.id, reason))
        if was_primary and promote:
            self._promote_assistant()

    def _start_wrap_up(self, agent: _Participant, bucket: _Bucket, *, promote: bool = True) -> None:
        was_primary = agent.role is Role.PRIMARY
        self._set_role(agent, Role.WRAP_UP, bucket)
        self._start(TimerKey(TimerKind.WRAP_UP, agent.id), self.policy.wrap_up_ms)
        if was_primary and promote:
            self._promote_assistant()

    def _promote_assistant(self) -> None:
        if self._primary() is not None:
            return
        assistant = next(
            (p for p in self._participants.values() if p.present and p.role is Role.ASSISTANT), None
        )
        if assistant is not None:
            self._set_role(assistant, Role.PRIMARY, _Bucket.PARTICIPANT)

    def _after_agents_changed(self, reason: UnsubscribeReason) -> None:
        """Once agents have left: the last present one, or the last one wrapping up."""
        if not self.agents_present and self.state in (
            State.ACTIVE,
            State.ON_HOLD,
            State.CUSTOMER_LEFT,
        ):
            target = self._transition(Trigger.LAST_AGENT_LEFT, "AGENT_UNSUBSCRIBED")
            if target is State.INACTIVE and reason is not UnsubscribeReason.DIRECT_TRANSFER:
                self._start_all_inactivity()
        elif self.state is State.WRAP_UP and not self.agents_wrapping_up:
            self._transition(Trigger.WRAP_UP_DONE, "AGENT_UNSUBSCRIBED")

    def _set_role(self, participant: _Participant, role: Role, bucket: _Bucket) -> None:
        old = participant.role
        if old is role:
            return
        participant.role = role
        self._emit(
            bucket,
            "PARTICIPANT_ROLE_CHANGED",
            SYSTEM,
            None,
            {"participant_id": participant.id, "from": old.value, "to": role.value},
        )

    def _set_bot_role(self, role: Role) -> None:
        bot = self._participants.get(BOT_ID)
        if bot is not None and bot.subscribed:
            self._set_role(bot, role, _Bucket.PARTICIPANT)

    def _request_agent(
        self, queue: str, by: Emitter, bucket: _Bucket, excluded: tuple[str, ...] = ()
    ) -> None:
        self._requests += 1
        request_id = agent_request_id(self.id, self._requests)
        self.pending_request = request_id
        self.queue = queue
        self._emit(bucket, "AGENT_REQUESTED", by, None, {"queue": queue, "request_id": request_id})
        self._t.effects.append(RouteRequest(request_id, queue, excluded))
        self._stop_all(TimerKind.CUSTOMER_SLA)

    def _cancel_request(self) -> None:
        if self.pending_request is not None:
            self._t.effects.append(CancelRoute(self.pending_request))
            self.pending_request = None

    def _resume(self, reason: ResumeReason, emitter: Emitter, now: int) -> list[Effect]:
        self._begin(now)
        self._emit(_Bucket.OWN, "CONVERSATION_RESUMED", emitter, None, {"reason": reason.value})
        self._transition(Trigger.RESUME, "CONVERSATION_RESUMED")
        self._stop(_HOLD)
        self._start_all_inactivity()
        if self.agents_present:
            self._start_agent_sla()
        return self._finish()

    # lookups that refuse ---------------------------------------------------

    def _refuse(self, kind: type[Refused], cmd: object, problem: str) -> Refused:
        return kind(self.id, str(self.state), type(cmd).__name__, problem)

    def _check_new_session(self, cmd: StartSession) -> None:
        if cmd.session_id in self._sessions:
            raise self._refuse(
                IllegalTransition, cmd, f"channel session {cmd.session_id} already exists"
            )
        if not isinstance(cmd.channel, Channel):
            raise self._refuse(InvalidArgument, cmd, f"unknown channel {cmd.channel!r}")
        self._check_name(cmd, "identifier", cmd.identifier, limit=MAX_EXTERNAL_ID)

    def _live_session(self, cmd: object, session_id: str) -> _Session:
        session = self._sessions.get(session_id)
        if session is None:
            raise self._refuse(UnknownParticipant, cmd, f"no channel session {session_id}")
        if not session.live:
            raise self._refuse(IllegalTransition, cmd, f"channel session {session_id} has ENDED")
        return session

    def _agent_participant(self, cmd: object, agent_id: str) -> _Participant:
        agent = self._participants.get(agent_id)
        if agent is None or agent.type is not ParticipantType.AGENT or not agent.subscribed:
            raise self._refuse(UnknownParticipant, cmd, f"agent {agent_id} is not subscribed")
        return agent

    def _check_bot(self, cmd: object) -> None:
        if self.bot_role() is None:
            raise self._refuse(IllegalTransition, cmd, "the bot is not subscribed")

    def _check_enum(self, cmd: object, what: str, value: object, kind: type[Enum]) -> None:
        if not isinstance(value, kind):
            names = ", ".join(m.value for m in kind)
            raise self._refuse(
                InvalidArgument, cmd, f"{what} must be one of {names}, got {value!r:.40}"
            )

    def _check_text(self, cmd: object, text: str) -> None:
        if not isinstance(text, str) or len(text) > MAX_TEXT:
            raise self._refuse(
                InvalidArgument, cmd, f"text must be a string of at most {MAX_TEXT} characters"
            )

    def _check_name(self, cmd: object, what: str, value: object, limit: int = MAX_NAME) -> None:
        if not isinstance(value, str) or not 0 < len(value) <= limit:
            raise self._refuse(
                InvalidArgument,
                cmd,
                f"{what} must be a non-empty string of at most {limit} characters",
            )

    def _primary(self) -> _Participant | None:
        return next(
            (p for p in self._participants.values() if p.present and p.role is Role.PRIMARY), None
        )

    def _latest_text_session(self) -> _Session | None:
        live = [s for s in self._sessions.values() if s.live and s.channel is not Channel.VOICE]
        return live[-1] if live else None

    def _customer(self) -> Emitter:
        return Emitter(self.customer_id, ParticipantType.CUSTOMER)

    @staticmethod
    def _agent(agent_id: str) -> Emitter:
        return Emitter(agent_id, ParticipantType.AGENT)

    def _session_ender(self, reason: SessionEndReason) -> Emitter:
        return self._customer() if reason is SessionEndReason.CUSTOMER else SYSTEM


ConversationMachine._HANDLERS = {
    StartSession: ConversationMachine._on_start_session,
    CustomerMessage: ConversationMachine._on_customer_message,
    EndSession: ConversationMachine._on_end_session,
    RequestAgent: ConversationMachine._on_request_agent,
    SubscribeAgent: ConversationMachine._on_subscribe_agent,
    AgentMessage: ConversationMachine._on_agent_message,
    BotMessage: ConversationMachine._on_bot_message,
    BotNotification: ConversationMachine._on_bot_notification,
    Hold: ConversationMachine._on_hold,
    Resume: ConversationMachine._on_resume,
    AgentLeave: ConversationMachine._on_agent_leave,
    ApplyWrapUp: ConversationMachine._on_apply_wrap_up,
    SetData: ConversationMachine._on_set_data,
    EndConversation: ConversationMachine._on_end_conversation,
    AddActivity: ConversationMachine._on_add_activity,
    TimerFired: ConversationMachine._on_timer_fired,
    RoutingUpdate: ConversationMachine._on_routing_update,
    ArchiveCommitted: ConversationMachine._on_archive_committed,
}

#: Every command type the machine handles.
COMMAND_TYPES: tuple[type[Any], ...] = tuple(ConversationMachine._HANDLERS)
