"""The conversation state machine: pure, deterministic, no IO, clock, randomness or Thespian.

``ConversationMachine.handle(command, now)`` is atomic. It validates the command against the
current state (:data:`~domain.transitions.LIFECYCLE`) and the command's own checks, raising a
:class:`~domain.errors.Refused` before anything changes; it then plans the command's whole
effect on a working copy of the conversation and commits the copy only when the plan is
complete. A command that fails half-way for any reason (a refusal, a missing table row, a
defect) leaves the machine exactly as it was, with no replay of history.

It returns the effects for its actor shell to carry out: events to publish (with their
sequence numbers) and where they go, alarms to arm, routing requests, agents to release, the
archive write (see :mod:`domain.effects`).

One command is one *trigger*. The events of a command come out in a fixed order: its own
event, then TOPIC_STATE_CHANGED, then participant events, then follow-on events (routing),
then timer ``_STOPPED``, then timer ``_STARTED``. State changes, entry and exit actions and
the rules of the timers are looked up in :mod:`domain.transitions`; at the end of every
command, timers whose rule fails are stopped and starts whose rule fails are dropped, which
makes "no timer event in a state that stopped it" hold by construction.

The machine is built in layers: :mod:`domain.machine_parts` (its parts),
:mod:`domain.machine_base` (state, queries, refusals), :mod:`domain.machine_steps` (the
building blocks of a command), the commands of one concern each (``machine_transfer``,
``machine_consult``, ``machine_whisper``, ``machine_presence``, ``machine_agent``) and this
module (the rest of the commands, and the table of handlers).
"""

from __future__ import annotations

from collections.abc import Callable
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
    ConcludeConsult,
    Consult,
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
    Transfer,
)
from domain.effects import CancelRoute, Effect
from domain.enums import (
    PRESENT_ROLES,
    SUPERVISOR_ROLES,
    Channel,
    Direction,
    EndedBy,
    ParticipantType,
    ResumeReason,
    Role,
    SessionEndReason,
    State,
)
from domain.errors import IllegalTransition, InvalidArgument
from domain.events import EventName
from domain.limits import MAX_NAME, MAX_TEXT
from domain.machine_agent import MachineAgent
from domain.machine_base import BOT, BOT_ID
from domain.machine_parts import Bucket, Participant
from domain.machine_presence import PRESENCE_HANDLERS
from domain.machine_timers import AGENT_SLA_KEY
from domain.policy import Policy
from domain.records import SYSTEM
from domain.timers import TimerKey, TimerKind
from domain.transitions import LIFECYCLE, SUPERVISOR_ACCEPTED_IN, Trigger

__all__ = ["BOT", "BOT_ID", "COMMAND_TYPES", "MAX_NAME", "MAX_TEXT", "ConversationMachine"]


class ConversationMachine(MachineAgent):
    """One conversation's lifecycle. Create it with :meth:`open`; feed it with :meth:`handle`."""

    HANDLERS: ClassVar[dict[type[Any], Callable[[ConversationMachine, Any, int], list[Effect]]]]

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
        machine._begin(now)
        machine._add_session(first)
        machine._transition(Trigger.FIRST_SESSION, EventName.CHANNEL_SESSION_STARTED)
        if policy.bot_enabled and direction is Direction.INBOUND:  # outbound: no bot
            machine._participants[BOT_ID] = Participant(
                BOT_ID, ParticipantType.BOT, Role.PRIMARY, now
            )
            machine._emit(
                Bucket.PARTICIPANT,
                EventName.BOT_SUBSCRIBED,
                BOT,
                None,
                {"role": Role.PRIMARY.value},
            )
        if first.channel is not Channel.VOICE:
            machine._start(
                TimerKey(TimerKind.CUSTOMER_SLA, first.session_id),
                policy.inactivity_for(first.channel),
            )
        return machine, machine._finish()

    # ------------------------------------------------------------------ commands

    def handle(self, command: Command, now: int) -> list[Effect]:
        """Apply ``command`` at time ``now`` (ms) and return the effects; refuse by raising.

        The command is planned on a working copy, which replaces this machine's state only
        once the whole plan is made: whatever it raises, the machine is unchanged."""
        rules = LIFECYCLE.get(self.state) if self.state is not None else None
        accepted = rules is not None and type(command) in rules.accepts
        if not accepted and not self._supervisor_join(command):
            raise self._refuse(IllegalTransition, command, f"not allowed in state {self.state}")
        work = self._working_copy()
        effects = self.HANDLERS[type(command)](work, command, now)
        self._commit(work)
        return effects

    def _supervisor_join(self, command: Command) -> bool:
        return (
            isinstance(command, SubscribeAgent)
            and command.role in SUPERVISOR_ROLES
            and self.state in SUPERVISOR_ACCEPTED_IN
        )

    def _on_start_session(self, cmd: StartSession, now: int) -> list[Effect]:
        self._check_new_session(cmd)
        self._begin(now)
        returning = not self.customer_present
        self._add_session(cmd)
        if returning:
            self._transition(Trigger.CUSTOMER_RETURNED, EventName.CHANNEL_SESSION_STARTED)
        if cmd.channel is Channel.VOICE:
            self._stop_all(TimerKind.CUSTOMER_SLA)
        else:
            self._start(
                TimerKey(TimerKind.CUSTOMER_SLA, cmd.session_id),
                self.policy.inactivity_for(cmd.channel),
            )
        return self._finish()

    def _on_customer_message(self, cmd: CustomerMessage, now: int) -> list[Effect]:
        session = self._live_session(cmd, cmd.session_id)
        self._check_text(cmd, cmd.text)
        self._begin(now)
        self._emit(
            Bucket.OWN,
            EventName.CUSTOMER_MESSAGE,
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
        self._end_session(session, cmd.reason, Bucket.OWN, self._session_ender(cmd.reason))
        return self._finish()

    def _on_request_agent(self, cmd: RequestAgent, now: int) -> list[Effect]:
        if self.pending_request is not None:
            raise self._refuse(IllegalTransition, cmd, "an agent request is already pending")
        self._check_name(cmd, "queue", cmd.queue)
        self._begin(now)
        self._request_agent(cmd.queue, cmd.by, Bucket.OWN, targets=self.policy.advisors)
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
        default = Role.PRIMARY if primary is None else Role.ASSISTANT
        role = cmd.role if cmd.role is not None else default
        arriving = not supervisor and not self.agents_present
        self._participants.pop(cmd.agent_id, None)  # a returning agent starts a new stint
        self._participants[cmd.agent_id] = Participant(
            cmd.agent_id, ParticipantType.AGENT, role, now
        )
        joined: dict[str, str] = {"agent_id": cmd.agent_id, "role": role.value}
        if cmd.request_id is not None and self.request_note:
            joined["note"] = self.request_note  # the note of the request it answers
        self._emit(Bucket.OWN, EventName.AGENT_SUBSCRIBED, self._agent(cmd.agent_id), None, joined)
        if supervisor:
            return self._finish()
        if self.pending_request is not None:
            self._withdraw_offer(taken_by=cmd.agent_id)
            if cmd.request_id is None:  # a direct join answers the need: withdraw the request
                t.effects.append(CancelRoute(self.pending_request, self.request_queue))
                self._request_over()
            else:
                if self.request_consult:
                    self.consulted = cmd.agent_id
                self.pending_request = None
        if arriving:
            self._transition(Trigger.AGENT_ARRIVED, EventName.AGENT_SUBSCRIBED)
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
        answer_on = self._session_or_all(cmd, cmd.channel_session_id)
        self._begin(now)
        bucket = Bucket.OWN
        if self.state is State.ON_HOLD:
            # One trigger: the message resumes the conversation and follows the state change.
            self._resume(ResumeReason.AGENT_MESSAGE, self._agent(agent.id))
            bucket = Bucket.STATE
        self._emit(
            bucket,
            EventName.AGENT_MESSAGE,
            self._agent(agent.id),
            answer_on,
            {"text": cmd.text, "message_id": cmd.message_id},
        )
        if agent.role is Role.PRIMARY:
            self._stop(AGENT_SLA_KEY)
        self._start_all_inactivity()
        return self._finish()

    def _on_bot_message(self, cmd: BotMessage, now: int) -> list[Effect]:
        self._check_bot(cmd)
        self._check_text(cmd, cmd.text)
        self._begin(now)
        self._emit(
            Bucket.OWN,
            EventName.BOT_MESSAGE,
            BOT,
            None,
            {"text": cmd.text, "message_id": cmd.message_id},
        )
        self._start_all_inactivity()
        return self._finish()

    def _on_bot_notification(self, cmd: BotNotification, now: int) -> list[Effect]:
        self._check_bot(cmd)
        self._check_text(cmd, cmd.text)
        self._begin(now)
        self._emit(Bucket.OWN, EventName.BOT_NOTIFICATION, BOT, None, {"text": cmd.text})
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
            Bucket.OWN,
            EventName.CONVERSATION_DATA_CHANGED,
            SYSTEM,
            None,
            {"key": cmd.key, "value": cmd.value},
        )
        return self._finish()

    def _on_end_conversation(self, cmd: EndConversation, now: int) -> list[Effect]:
        self._check_enum(cmd, "by", cmd.by, EndedBy)
        self._begin(now)
        self._emit(Bucket.OWN, EventName.END_CONVERSATION, SYSTEM, None, {"by": cmd.by.value})
        self._transition(Trigger.END_CONVERSATION, EventName.END_CONVERSATION)
        return self._finish()


ConversationMachine.HANDLERS = {
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
    Transfer: ConversationMachine._on_transfer,
    Consult: ConversationMachine._on_consult,
    ConcludeConsult: ConversationMachine._on_conclude_consult,
    ApplyWrapUp: ConversationMachine._on_apply_wrap_up,
    SetData: ConversationMachine._on_set_data,
    EndConversation: ConversationMachine._on_end_conversation,
    AddActivity: ConversationMachine._on_add_activity,
    TimerFired: ConversationMachine._on_timer_fired,
    RoutingUpdate: ConversationMachine._on_routing_update,
    ArchiveCommitted: ConversationMachine._on_archive_committed,
    **PRESENCE_HANDLERS,
}

#: Every command type the machine handles.
COMMAND_TYPES: tuple[type[Any], ...] = tuple(ConversationMachine.HANDLERS)
