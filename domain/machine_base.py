"""A conversation machine's state and what may be read of it, and the checks that refuse.

Nothing here changes the conversation: :mod:`domain.machine_steps` holds the building blocks
of a command, :mod:`domain.conversation` the commands.
"""

from __future__ import annotations

from dataclasses import replace
from enum import Enum
from typing import Self

from domain.commands import StartSession
from domain.effects import ArmAlarm
from domain.enums import (
    OPEN_STATES,
    SUPERVISOR_ROLES,
    Channel,
    Direction,
    EventType,
    ParticipantType,
    Role,
    SessionEndReason,
    State,
)
from domain.errors import IllegalTransition, InvalidArgument, Refused, UnknownParticipant
from domain.limits import MAX_EXTERNAL_ID, MAX_NAME, MAX_TEXT
from domain.machine_parts import Bucket, CommandPlan, Participant, Session
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
from domain.timers import RunningTimer, TimerKey, TimerKind

BOT_ID = "bot"
BOT = Emitter(BOT_ID, ParticipantType.BOT)


class MachineBase:
    """The state of one conversation and its queries."""

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
        self.offered_to: str | None = None  # the agent holding an offer of pending_request
        self.request_targets: tuple[str, ...] = ()  # pending_request goes to these only
        self.request_note = ""  # pending_request's note for whoever takes it
        self.request_queue: str = policy.default_queue  # pending_request's queue (its Router)
        self.request_consult = False  # pending_request asks for a consulted agent
        self.consulting: str | None = None  # the agent whose consult is pending or joined
        self.consulted: str | None = None  # the agent that joined that consult
        self._sessions: dict[str, Session] = {}
        self._participants: dict[str, Participant] = {}
        self._timers: dict[TimerKey, RunningTimer] = {}
        self._next_token = 0
        self._requests = 0
        self._closing_events: list[Event] = []
        self._plan: CommandPlan | None = None

    # ------------------------------------------------------------------ working copies

    def _working_copy(self) -> Self:
        """A copy a command may change freely: committed with :meth:`_commit`, or dropped
        (a refusal or a failure then leaves this machine exactly as it was). Its size is the
        conversation's current state, never its history."""
        work = object.__new__(type(self))
        work.__dict__.update(self.__dict__)
        work.data = dict(self.data)
        work._sessions = {k: v.copy() for k, v in self._sessions.items()}
        work._participants = {k: v.copy() for k, v in self._participants.items()}
        work._timers = {k: v.copy() for k, v in self._timers.items()}
        work._closing_events = list(self._closing_events)
        work._plan = None
        return work

    def _commit(self, work: Self) -> None:
        self.__dict__.update(work.__dict__)

    # ------------------------------------------------------------------ the plan

    def _begin(self, now: int) -> CommandPlan:
        self._plan = CommandPlan(now)
        return self._plan

    @property
    def _t(self) -> CommandPlan:
        assert self._plan is not None, "no command in progress"
        return self._plan

    def _emit(
        self,
        bucket: Bucket,
        name: str,
        emitter: Emitter,
        session_id: str | None,
        data: Payload,
        event_type: EventType | None = None,
    ) -> None:
        self._t.events.append((bucket, name, emitter, session_id, data, event_type))

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

    def text_session_live(self, session_id: str) -> bool:
        session = self._sessions.get(session_id)
        return session is not None and session.live and session.channel is not Channel.VOICE

    def agent_wrapping_up(self, agent_id: str) -> bool:
        agent = self._participants.get(agent_id)
        return agent is not None and agent.wrapping_up

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

    def _thresholds(self, kind: TimerKind) -> tuple[Threshold, ...]:
        if kind is TimerKind.AGENT_SLA:
            return self.policy.agent_sla_thresholds
        if kind is TimerKind.CUSTOMER_SLA:
            return self.policy.inactivity_thresholds
        return ()

    def _threshold(self, kind: TimerKind, percent: int) -> Threshold | None:
        return next((th for th in self._thresholds(kind) if th.percent == percent), None)

    def _primary(self) -> Participant | None:
        return next(
            (p for p in self._participants.values() if p.present and p.role is Role.PRIMARY), None
        )

    def _latest_text_session(self) -> Session | None:
        live = [s for s in self._sessions.values() if s.live and s.channel is not Channel.VOICE]
        return live[-1] if live else None

    def _customer(self) -> Emitter:
        return Emitter(self.customer_id, ParticipantType.CUSTOMER)

    @staticmethod
    def _agent(agent_id: str) -> Emitter:
        return Emitter(agent_id, ParticipantType.AGENT)

    def _session_ender(self, reason: SessionEndReason) -> Emitter:
        return self._customer() if reason is SessionEndReason.CUSTOMER else SYSTEM

    # ------------------------------------------------------------------ lookups that refuse

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

    def _live_session(self, cmd: object, session_id: str) -> Session:
        session = self._sessions.get(session_id)
        if session is None:
            raise self._refuse(UnknownParticipant, cmd, f"no channel session {session_id}")
        if not session.live:
            raise self._refuse(IllegalTransition, cmd, f"channel session {session_id} has ENDED")
        return session

    def _session_or_all(self, cmd: object, session_id: str | None) -> str | None:
        """The live channel session an answer goes out on (None: every session)."""
        return None if session_id is None else self._live_session(cmd, session_id).id

    def _agent_participant(self, cmd: object, agent_id: str) -> Participant:
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
