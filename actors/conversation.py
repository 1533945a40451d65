"""The Conversation entity: a thin shell that performs what the state machine decides.

It owns the machine, the published event log and the subscriber list (channel sessions on the
same host, agents, the bot). Every published event is appended to the log before it is fanned
out, and every state change is reported to the TopicMonitor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog

from actors.base import failure_of
from actors.channel_session import ChannelSessionEntity
from actors.messages import (
    AgentRef,
    AgentsLost,
    Alarm,
    Apply,
    ArchiveDone,
    ArchiveFailed,
    ArchiveLateRequest,
    ArchiveRequest,
    AttachSubscriber,
    BotDelivery,
    Bounced,
    CancelRequest,
    EnqueueRequest,
    EventDelivery,
    EventsQuery,
    JoinSession,
    Reattach,
    Ref,
    Released,
    ReplyTo,
    Reroute,
    SnapshotQuery,
    StateReport,
    Subscribe,
    SubscribeOutcome,
    SubscribeRequest,
)
from actors.snapshots import event_dicts, record_dict
from domain.commands import (
    ArchiveCommitted,
    Command,
    StartSession,
    SubscribeAgent,
    TimerFired,
)
from domain.conversation import ConversationMachine
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
from domain.enums import SUPERVISOR_ROLES, State
from domain.errors import CxError, ErrorKind, Refused
from domain.ids import conversation_entity_id, parse_subscription, session_entity_id
from domain.records import Event
from domain.sequence import events_after
from infra.journal_records import closed_record, command_record

#: What the bot reacts to; everything else would only cost it messages.
BOT_INTERESTS = frozenset(
    {
        "BOT_SUBSCRIBED",
        "CUSTOMER_MESSAGE",
        "CONVERSATION_PAUSED",
        "CONVERSATION_RESUMED",
        "NO_AGENT_AVAILABLE",
    }
)

if TYPE_CHECKING:
    from actors.context import HostContext
ARCHIVE_RETRY = ("ARCHIVE_RETRY",)
ARCHIVE_BACKOFF_MS = (1_000, 2_000, 5_000, 10_000, 30_000, 60_000)


class _Poisoned(CxError):
    """A command failed inside the machine for a reason other than a refusal."""




class ConversationEntity:
    def __init__(self, machine: ConversationMachine, first: StartSession, opened_at: int) -> None:
        self.id = conversation_entity_id(machine.id)
        self.machine = machine
        # What rebuilds the machine if a command fails half-way (a bug): the first session and
        # every command applied since, with its time. The machine is deterministic.
        self._first = first
        self._opened_at = opened_at
        self.applied: list[tuple[Command, int]] = []
        self.log: list[Event] = []
        self.agents: dict[str, Ref] = {}
        self._archive_failures = 0
        self._retry_token = 0
        self._closing: ArchiveConversation | None = None
        self._log = structlog.get_logger("cx.conversation").bind(conversation_id=machine.id)

    # ------------------------------------------------------------------ entry

    def receive(self, payload: Any, reply_to: ReplyTo | None, host: HostContext) -> None:
        if isinstance(payload, Apply):
            self.apply(payload.command, reply_to, host)
        elif isinstance(payload, Alarm):
            if payload.key == ARCHIVE_RETRY:
                if payload.token == self._retry_token and self.machine.state is State.CLOSING:
                    self._request_archive(host)
            else:
                self.apply(TimerFired(payload.key, payload.token, payload.percent), None, host)  # type: ignore[arg-type]
        elif isinstance(payload, JoinSession):
            self._join_session(payload, reply_to, host)
        elif isinstance(payload, SubscribeRequest):
            self._subscribe(payload, host)
        elif isinstance(payload, SnapshotQuery):
            host.reply(reply_to, record_dict(self.machine.record()))
        elif isinstance(payload, EventsQuery):
            host.reply(reply_to, event_dicts(self.log, payload.after_seq))
        elif isinstance(payload, Subscribe):
            self._subscribe_session(payload, reply_to, host)
        elif isinstance(payload, Reroute):  # the new Router must learn what the old one knew
            self._resend_request(host)
        elif isinstance(payload, AgentsLost):
            self._ask_for_agents(host, set(payload.agent_ids))
        elif isinstance(payload, AgentRef):
            if payload.agent_id in self.machine.subscribed_agents():
                self.agents[payload.agent_id] = payload.agent
        elif isinstance(payload, ArchiveDone):
            self._archived(payload.through_seq, host)
        elif isinstance(payload, ArchiveFailed):
            self._archive_failed(payload.problem, host)
        else:
            host.refuse(
                reply_to,
                ErrorKind.BAD_ARGUMENT,
                f"conversation cannot handle {type(payload).__name__}",
            )

    def apply(
        self, command: Command, reply_to: ReplyTo | None, host: HostContext, result: Any = None
    ) -> bool:
        now = host.now()
        try:
            effects = self._run(command, now)
        except Refused as refusal:
            self._log.debug("refused", command=type(command).__name__, problem=refusal.problem)
            if reply_to is not None:
                host.fail(reply_to, failure_of(reply_to.call_id, refusal))
            return False
        except _Poisoned as poisoned:
            if reply_to is not None:
                host.fail(reply_to, failure_of(reply_to.call_id, poisoned))
            return False
        if effects:
            host.journal(self.machine.id, command_record(self.machine.id, command, now, effects))
        self.perform(effects, host)
        host.reply(reply_to, result)
        return True

    def _run(self, command: Command, now: int) -> list[Effect]:
        """The machine's ``handle``, with a guarantee: a command that fails with anything but
        a refusal (a bug, a payload that should never have got this far) leaves the
        conversation exactly as it was. It is logged, answered with an internal error, and
        never retried."""
        try:
            effects = self.machine.handle(command, now)
        except Refused:
            raise
        except Exception as error:
            self._log.exception("command_failed", command=type(command).__name__)
            self.machine = self._replayed()
            raise _Poisoned(
                f"{type(command).__name__} failed on conversation {self.machine.id} with an internal"
                f" error ({error!r}); it was not applied and the conversation is unchanged"
            ) from error
        self.applied.append((command, now))
        return effects

    def _replayed(self) -> ConversationMachine:
        old = self.machine
        machine, _ = ConversationMachine.open(
            conversation_id=old.id,
            room_id=old.room_id,
            customer_id=old.customer_id,
            first=self._first,
            policy=old.policy,
            now=self._opened_at,
            direction=old.direction,
        )
        for command, at in self.applied:
            machine.handle(command, at)
        return machine

    # ------------------------------------------------------------------ effects

    def perform(self, effects: list[Effect], host: HostContext) -> None:
        wiring = host.wired()
        me = host.ref(self.id)
        machine = self.machine
        published = [e.event for e in effects if isinstance(e, Publish)]
        if published:
            # A session gets every event of the trigger that ended it (the machine has already
            # applied the whole trigger when its effects are performed).
            sessions = [session_entity_id(s) for s in machine.live_session_ids()] + [
                session_entity_id(e.channel_session_id)
                for e in published
                if e.name == "CHANNEL_SESSION_ENDED" and e.channel_session_id is not None
            ]
            self._publish(published, host, me, sessions)
        for effect in effects:
            if isinstance(effect, Publish):
                continue
            if isinstance(effect, ArmAlarm):
                host.arm(self.id, effect.key, effect.token, effect.at, effect.percent)
            elif isinstance(effect, DisarmTimer):
                host.disarm(self.id, effect.key)
            elif isinstance(effect, RouteRequest):
                host.post(
                    Ref(wiring.router, ""),
                    EnqueueRequest(effect.request_id, me, effect.queue, effect.excluded),
                )
            elif isinstance(effect, CancelRoute):
                host.post(Ref(wiring.router, ""), CancelRequest(effect.request_id))
            elif isinstance(effect, ReleaseAgent):
                agent = self.agents.pop(effect.agent_id, None)
                if agent is not None:
                    host.post(agent, Released(self.machine.id, effect.reason))
            elif isinstance(effect, ArchiveConversation):
                self._closing = effect
                self._request_archive(host)
            elif isinstance(effect, ArchiveLate):
                host.post(
                    Ref(wiring.monitor, ""), ArchiveLateRequest(self.machine.id, effect.events)
                )

    def _publish(
        self, events: list[Event], host: HostContext, me: Ref, sessions: list[str]
    ) -> None:
        """Log the trigger's events, then fan them out: every session and agent gets each one,
        the bot what it reacts to, the TopicMonitor every state change."""
        machine = self.machine
        self.log.extend(events)
        delivery = EventDelivery(tuple(events), me)
        for session in sessions:
            host.local(session, delivery)
        for agent in self.agents.values():
            host.post(agent, delivery)
        wiring = host.wired()
        bot_role = machine.bot_role()
        if bot_role is not None:
            interesting = tuple(e for e in events if e.name in BOT_INTERESTS)
            if interesting:
                pending = machine.pending_request is not None
                host.post(Ref(wiring.bot, ""), BotDelivery(interesting, me, bot_role, pending))
        for event in events:
            if event.name == "TOPIC_STATE_CHANGED":
                host.post(
                    Ref(wiring.monitor, ""),
                    StateReport(machine.id, machine.room_id, str(event.data["to"])),
                )

    def resume(self, host: HostContext) -> None:
        """After a rebuild from the journal: re-arm the timers with the time they had left
        (an alarm already due fires at once, once), report the state, finish an interrupted
        archive, and find the agents again."""
        for alarm in self.machine.pending_alarms():
            host.arm(self.id, alarm.key, alarm.token, alarm.at, alarm.percent)
        wiring = host.wired()
        state = self.machine.state
        assert state is not None
        host.post(
            Ref(wiring.monitor, ""),
            StateReport(self.machine.id, self.machine.room_id, state.value),
        )
        closing = self.machine.closing_effect()
        if closing is not None:
            self._closing = closing
            self._request_archive(host)
        self._resend_request(host)  # the Router knew this conversation at its old address
        self._ask_for_agents(host, None)

    def _resend_request(self, host: HostContext) -> None:
        """Tell the Router of the pending agent request, with this conversation's address (a
        request it already has only gets the address updated)."""
        request = self.machine.pending_request
        if request is not None:
            host.post(
                Ref(host.wired().router, ""),
                EnqueueRequest(request, host.ref(self.id), self.machine.queue),
            )

    def _ask_for_agents(self, host: HostContext, only: set[str] | None) -> None:
        """Ask the AgentSupervisor for our agents (all, or ``only`` those) at their new place."""
        supervisors = set(self.machine.subscribed_supervisors())
        wanted = [a for a in self.machine.subscribed_agents() if only is None or a in only]
        monitors = tuple(a for a in wanted if a in supervisors)
        counted = tuple(a for a in wanted if a not in supervisors)
        if counted or monitors:
            host.post(Ref(host.wired().agents, ""), Reattach(host.ref(self.id), counted, monitors))

    # ------------------------------------------------------------------ subscriptions

    def _subscribe_session(
        self, request: Subscribe, reply_to: ReplyTo | None, host: HostContext
    ) -> None:
        _, session_id = parse_subscription(request.subscription)
        if session_id not in self.machine.session_ids():
            host.refuse(
                reply_to,
                ErrorKind.UNKNOWN_ID,
                f"no channel session {session_id} in conversation {self.machine.id}",
            )
            return
        # Every event up to now is already in the session's mailbox ahead of this message, and
        # every later one will come after it: replay + live has no gap and no repeat.
        replay = tuple(events_after(self.log, request.after_seq))
        host.local(
            session_entity_id(session_id),
            AttachSubscriber(request.subscription, request.subscriber, replay),
        )
        host.reply(reply_to, self.machine.seq)

    # ------------------------------------------------------------------ joins

    def _join_session(self, join: JoinSession, reply_to: ReplyTo | None, host: HostContext) -> None:
        if not self.machine.is_open:
            host.post(
                Ref(host.wired().monitor, ""), Bounced(join.origin, self.machine.id), reply_to
            )
            return
        if self.apply(join.start, reply_to, host, result=self.session_ref(join.start)):
            host.spawn(ChannelSessionEntity(join.start.session_id, self.machine.id))

    def session_ref(self, start: StartSession) -> dict[str, str]:
        return {
            "conversation_id": self.machine.id,
            "channel_session_id": start.session_id,
            "room_id": self.machine.room_id,
        }

    def _subscribe(self, request: SubscribeRequest, host: HostContext) -> None:
        role = self.machine.participant_role(request.agent_id)
        if role is not None and request.request_id is None:
            # Already subscribed (a join repeated after a host failure): nothing to change.
            self.agents[request.agent_id] = request.agent
            host.post(
                request.agent,
                SubscribeOutcome(
                    self.machine.id,
                    host.ref(self.id),
                    None,
                    role not in SUPERVISOR_ROLES,
                    None,
                    request.origin,
                ),
            )
            return
        command = SubscribeAgent(request.agent_id, request.role, request.request_id)
        now = host.now()
        try:
            effects = self._run(command, now)
        except (Refused, _Poisoned) as refusal:
            call_id = request.origin.call_id if request.origin else ""
            failure = failure_of(call_id, refusal)
            host.post(
                request.agent,
                SubscribeOutcome(
                    self.machine.id,
                    host.ref(self.id),
                    request.request_id,
                    False,
                    failure,
                    request.origin,
                ),
            )
            return
        host.journal(self.machine.id, command_record(self.machine.id, command, now, effects))
        self.agents[request.agent_id] = request.agent
        counted = request.role not in SUPERVISOR_ROLES
        host.post(
            request.agent,
            SubscribeOutcome(
                self.machine.id,
                host.ref(self.id),
                request.request_id,
                counted,
                None,
                request.origin,
            ),
        )
        self.perform(effects, host)

    # ------------------------------------------------------------------ closing

    def _request_archive(self, host: HostContext) -> None:
        closing = self._closing
        assert closing is not None, "archive requested before CLOSING"
        events = tuple(self.log) + tuple(closing.closing_events)
        host.post(
            Ref(host.wired().monitor, ""), ArchiveRequest(closing.record, events, host.ref(self.id))
        )

    def _archived(self, through_seq: int, host: HostContext) -> None:
        if self.machine.state is not State.CLOSING:
            return  # a second answer to a repeated request
        self.apply(ArchiveCommitted(through_seq), None, host)
        host.journal(self.machine.id, closed_record(self.machine.id))
        host.forget_journal(self.machine.id)
        for session_id in self.machine.session_ids():
            host.remove(session_entity_id(session_id))
        host.remove(self.id)
        self._log.debug("closed", events=len(self.log))

    def _archive_failed(self, problem: str, host: HostContext) -> None:
        delay = ARCHIVE_BACKOFF_MS[min(self._archive_failures, len(ARCHIVE_BACKOFF_MS) - 1)]
        self._archive_failures += 1
        self._retry_token += 1
        self._log.warning(
            "archive_failed", problem=problem, attempt=self._archive_failures, retry_in_ms=delay
        )
        host.arm(self.id, ARCHIVE_RETRY, self._retry_token, host.now() + delay, 100)
