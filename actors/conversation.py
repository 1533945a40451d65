"""The Conversation entity: a thin shell that performs what the state machine decides.

It owns the machine, its recent events (:mod:`actors.event_window`) and the agents' addresses.
It performs the machine's effects in order and decides nothing itself: which sessions get a
command's events, what the bot is told and which state is reported to the TopicMonitor all come
as effects. Every published event joins the window before it is fanned out.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import structlog

from actors.base import failure_of
from actors.channel_session import ChannelSessionEntity
from actors.event_window import EventsUnavailable, EventWindow
from actors.messages import (
    AgentRef,
    AgentsLost,
    Alarm,
    Apply,
    ArchiveDone,
    ArchiveFailed,
    ArchiveLateRequest,
    ArchiveRequest,
    ArchivistsMoved,
    AttachSubscriber,
    Bounced,
    CancelRequest,
    Counted,
    EnqueueRequest,
    EventDelivery,
    EventsQuery,
    Failure,
    JoinSession,
    Reattach,
    Ref,
    Released,
    ReplyTo,
    Reroute,
    SignalDelivery,
    SnapshotQuery,
    StateReport,
    Subscribe,
    SubscribeOutcome,
    SubscribeRequest,
)
from actors.restore import published_events
from actors.snapshots import event_dict, record_dict, signal_dict
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
    CountAgent,
    DeliverEvents,
    DisarmTimer,
    Effect,
    Publish,
    ReleaseAgent,
    ReportState,
    RouteRequest,
    Signal,
    TellAgent,
    TellBot,
    journaled,
)
from domain.enums import SUPERVISOR_ROLES, State
from domain.errors import CxError, ErrorKind, Refused
from domain.ids import conversation_entity_id, parse_subscription, session_entity_id
from domain.records import Event
from infra.codec import CodecError
from infra.journal_records import closed_record

if TYPE_CHECKING:
    from actors.context import HostContext
ARCHIVE_RETRY = ("ARCHIVE_RETRY",)
ARCHIVE_BACKOFF_MS = (1_000, 2_000, 5_000, 10_000, 30_000, 60_000)


class _Poisoned(CxError):
    """A command failed inside the machine for a reason other than a refusal."""


class ConversationEntity:
    def __init__(
        self, machine: ConversationMachine, events: Iterable[Event] = (), *, bounded: bool = True
    ) -> None:
        """``events``: what the conversation published so far (a rebuilt one), of which the
        most recent are kept; all of them if not ``bounded`` (see :class:`EventWindow`)."""
        self.id = conversation_entity_id(machine.id)
        self.machine = machine
        self.events = EventWindow(events, bounded=bounded)
        self.agents: dict[str, Ref] = {}  # the subscribed agents
        # agents known but not subscribed: offered this conversation, or gone from it
        self.known: dict[str, Ref] = {}
        self._archive_failures = 0
        self._retry_token = 0
        self._closing: ArchiveConversation | None = None
        self._archivist: Any = None  # where the archive request went last
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
            events = self._events_after(payload.after_seq, reply_to, host)
            if events is not None:
                host.reply(reply_to, [event_dict(e) for e in events])
        elif isinstance(payload, Subscribe):
            self._subscribe_session(payload, reply_to, host)
        elif isinstance(payload, Reroute):  # the new Router must learn what the old one knew
            self._resend_request(host)
        elif isinstance(payload, AgentsLost):
            self._ask_for_agents(host, set(payload.agent_ids))
        elif isinstance(payload, AgentRef):
            if payload.agent_id in self.machine.subscribed_agents():
                self.agents[payload.agent_id] = payload.agent
            else:  # an agent the Router offers this conversation to
                self.known[payload.agent_id] = payload.agent
        elif isinstance(payload, ArchiveDone):
            self._archived(payload.through_seq, host)
        elif isinstance(payload, ArchiveFailed):
            self._archive_failed(payload.problem, host)
        elif isinstance(payload, ArchivistsMoved):  # asked a dead one: ask its successor
            gone = not any(self._archivist == a for a in payload.archivists)
            if self._archivist is not None and gone and self.machine.state is State.CLOSING:
                self._request_archive(host)
        else:
            host.refuse(
                reply_to, ErrorKind.BAD_ARGUMENT, f"conversation cannot handle {type(payload).__name__}"
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
        if journaled(effects):
            host.journal_command(self.machine.id, command, now, effects)
        self.perform(effects, host)
        host.reply(reply_to, result)
        return True

    def _run(self, command: Command, now: int) -> list[Effect]:
        """The machine's ``handle``: a command that fails with anything but a refusal (a
        defect, a payload that should never have got this far) is logged, answered with an
        internal error, and never retried; the machine is unchanged, as for a refusal."""
        try:
            return self.machine.handle(command, now)
        except Refused:
            raise
        except Exception as error:
            self._log.exception("command_failed", command=type(command).__name__)
            raise _Poisoned(
                f"{type(command).__name__} failed on conversation {self.machine.id} with an internal"
                f" error ({error!r}); it was not applied and the conversation is unchanged"
            ) from error

    def _events_after(
        self, after_seq: int, reply_to: ReplyTo | None, host: HostContext
    ) -> list[Event] | None:
        """The published events after ``after_seq`` (older ones from the journal), or None
        after answering ``reply_to`` with why they cannot be had."""
        try:
            return self.events.after(after_seq, lambda: self._journaled(host))
        except EventsUnavailable as error:
            self._log.error("events_unavailable", after_seq=after_seq, problem=str(error))
            host.refuse(reply_to, ErrorKind.INTERNAL, str(error))
            return None

    def _journaled(self, host: HostContext) -> list[Event]:
        try:
            return published_events(host.journal_records(self.machine.id))
        except (OSError, CodecError, KeyError, ValueError) as error:
            raise EventsUnavailable(f"the journal cannot be read: {error}") from error

    # ------------------------------------------------------------------ effects

    def perform(self, effects: list[Effect], host: HostContext) -> None:
        """Carry out the machine's effects, in order."""
        wiring = host.wired()
        me = host.ref(self.id)
        machine = self.machine
        published: list[Event] = []
        for effect in effects:
            if isinstance(effect, Publish):
                self.events.append(effect.event)
                published.append(effect.event)
            elif isinstance(effect, DeliverEvents):
                delivery = EventDelivery(tuple(published), me, effect.final)
                for session_id in effect.session_ids:
                    host.local(session_entity_id(session_id), delivery)
                for agent in self.agents.values():
                    host.post(agent, delivery)
                for agent_id in effect.agent_ids:
                    former = self.known.get(agent_id)
                    if former is not None and agent_id not in self.agents:
                        host.post(former, delivery)
            elif isinstance(effect, TellAgent):
                offered = self.known.get(effect.agent_id)
                if offered is not None:
                    delivery = EventDelivery(effect.events, me, offer_open=effect.offer_open)
                    host.post(offered, delivery)
            elif isinstance(effect, Signal):
                notice = SignalDelivery(machine.id, signal_dict(effect))
                for session_id in effect.session_ids:
                    host.local(session_entity_id(session_id), notice)
                for agent_id, agent in self.agents.items():
                    if agent_id != effect.emitter.id:
                        host.post(agent, notice)
            elif isinstance(effect, TellBot):
                host.tell_bot(self.id, effect)
            elif isinstance(effect, ReportState):
                host.post(
                    Ref(wiring.monitor, ""),
                    StateReport(machine.id, machine.room_id, effect.state.value),
                )
            elif isinstance(effect, ArmAlarm):
                host.arm(self.id, effect.key, effect.token, effect.at, effect.percent)
            elif isinstance(effect, DisarmTimer):
                host.disarm(self.id, effect.key)
            elif isinstance(effect, RouteRequest):
                host.post(
                    Ref(wiring.router_of(effect.queue), ""),
                    EnqueueRequest(
                        effect.request_id,
                        me,
                        effect.queue,
                        effect.excluded,
                        effect.agents,
                        self._room_of_request(effect.agents),
                    ),
                )
            elif isinstance(effect, CancelRoute):
                host.post(Ref(wiring.router_of(effect.queue), ""), CancelRequest(effect.request_id))
            elif isinstance(effect, ReleaseAgent):
                released = self.agents.pop(effect.agent_id, None)
                if released is not None:
                    self.known[effect.agent_id] = released
                    host.post(released, Released(machine.id, effect.reason))
            elif isinstance(effect, CountAgent) and effect.agent_id in self.agents:
                host.post(self.agents[effect.agent_id], Counted(machine.id))
            elif isinstance(effect, ArchiveConversation):
                self._closing = effect
                self._request_archive(host)
            elif isinstance(effect, ArchiveLate):
                host.post(Ref(wiring.monitor, ""), ArchiveLateRequest(machine.id, effect.events))
        if published:
            host.count_events(published)

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
                Ref(host.wired().router_of(self.machine.request_queue), ""),
                EnqueueRequest(
                    request,
                    host.ref(self.id),
                    self.machine.request_queue,
                    agents=self.machine.request_targets,
                    room_id=self._room_of_request(self.machine.request_targets),
                ),
            )

    def _room_of_request(self, targets: tuple[str, ...]) -> str:
        """The room a request names for its sticky agent: a customer's request for a queue
        (not a consult, nor for named agents) names the conversation's room."""
        if targets or self.machine.request_consult:
            return ""
        return self.machine.room_id

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
        events = self._events_after(request.after_seq, reply_to, host)
        if events is None:
            return
        replay = tuple(events)
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
            self._answer(request, host, None, role not in SUPERVISOR_ROLES)
            return
        command = SubscribeAgent(request.agent_id, request.role, request.request_id)
        now = host.now()
        try:
            effects = self._run(command, now)
        except (Refused, _Poisoned) as refusal:
            call_id = request.origin.call_id if request.origin else ""
            failure = failure_of(call_id, refusal)
            self._answer(request, host, request.request_id, False, failure)
            return
        host.journal_command(self.machine.id, command, now, effects)
        self.agents[request.agent_id] = request.agent
        self.known.pop(request.agent_id, None)
        self._answer(request, host, request.request_id, request.role not in SUPERVISOR_ROLES)
        self.perform(effects, host)

    def _answer(
        self,
        request: SubscribeRequest,
        host: HostContext,
        request_id: str | None,
        counted: bool,
        failure: Failure | None = None,
    ) -> None:
        outcome = SubscribeOutcome(
            self.machine.id, host.ref(self.id), request_id, counted, failure, request.origin
        )
        host.post(request.agent, outcome)

    # ------------------------------------------------------------------ closing

    def _request_archive(self, host: HostContext) -> None:
        closing = self._closing
        assert closing is not None, "archive requested before CLOSING"
        try:
            published = self.events.after(0, lambda: self._journaled(host))
        except EventsUnavailable as error:
            self._archive_failed(str(error), host)
            return
        events = tuple(published) + closing.closing_events
        self._archivist = host.wired().archivist_of(self.machine.id)
        request = ArchiveRequest(closing.record, events, host.ref(self.id))
        host.post(Ref(self._archivist, ""), request)

    def _archived(self, through_seq: int, host: HostContext) -> None:
        if self.machine.state is not State.CLOSING:
            return  # a second answer to a repeated request
        self.apply(ArchiveCommitted(through_seq), None, host)
        host.journal(self.machine.id, closed_record(self.machine.id))
        host.forget_journal(self.machine.id)
        # each channel session goes once it has pushed its final events (DeliverEvents.final)
        host.remove(self.id)
        self._log.debug("closed", events=self.machine.seq)

    def _archive_failed(self, problem: str, host: HostContext) -> None:
        delay = ARCHIVE_BACKOFF_MS[min(self._archive_failures, len(ARCHIVE_BACKOFF_MS) - 1)]
        self._archive_failures += 1
        self._retry_token += 1
        self._log.warning(
            "archive_failed", problem=problem, attempt=self._archive_failures, retry_in_ms=delay
        )
        host.arm(self.id, ARCHIVE_RETRY, self._retry_token, host.now() + delay, 100)
