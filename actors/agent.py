"""The Agent entity: one logged-in agent's presence, capacity and conversations.

It is the authority on the agent's limit: every subscription (routed or a direct join) reserves
a slot here first and is confirmed or released by the conversation's answer, so an agent is
never subscribed to more conversations than ``max_conversations``. Supervisor roles
(SILENT_MONITOR, WHISPER) do not count against the limit. Every change of presence or free
capacity is reported to the Routers of its queues (``Wiring.router_of``), each of which may
offer it requests: two Routers may both count on the same free slot, and the second assignment
is refused here (the Router then tries the next agent), so an agent is never over-assigned.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog

from actors.messages import (
    AgentAvailable,
    AgentGone,
    AgentJoin,
    AgentPresence,
    AgentQuery,
    AgentRef,
    Alarm,
    Apply,
    Assignment,
    Counted,
    EventDelivery,
    Pushed,
    Reattach,
    Ref,
    Released,
    ReplyTo,
    Reroute,
    RoomDelivery,
    RoutingOutcome,
    SignalDelivery,
    Subscribe,
    SubscribeOutcome,
    SubscribeRequest,
    Unsubscribe,
)
from actors.snapshots import event_dict
from domain.commands import AgentLeave
from domain.enums import SUPERVISOR_ROLES, Presence, Role, UnsubscribeReason
from domain.errors import ErrorKind
from domain.ids import agent_entity_id, conversation_id_of
from domain.routing import SetNotReady
from domain.sequence import BEFORE_FIRST

if TYPE_CHECKING:
    from actors.context import HostContext


#: How long a slot stays reserved for a subscription the conversation has not answered. It is
#: answered in milliseconds unless the conversation's host died with the request: then nobody
#: ever will, and without this the slot would be held until the agent logs out.
RESERVATION_MS = 30_000
_RESERVATION = "RESERVATION"


class AgentEntity:
    def __init__(self, agent_id: str, queues: tuple[str, ...], max_conversations: int) -> None:
        self.id = agent_entity_id(agent_id)
        self.agent_id = agent_id
        self.queues = queues
        self.max_conversations = max_conversations
        self.presence = Presence.NOT_READY
        self.conversations: dict[str, Ref] = {}  # counted against the limit
        self.monitoring: dict[str, Ref] = {}  # supervisor roles: not counted
        self.offers: dict[str, tuple[str, Ref]] = {}  # conversation id -> (request id, ref)
        # a slot held for each subscription in flight: conversation id -> (the join's caller,
        # the routed request id, the token of its expiry alarm)
        self.pending: dict[str, tuple[ReplyTo | None, str | None, int]] = {}
        self._tokens = 0
        self.delivered = 0
        self.subscriber: Ref | None = None  # the agent's desk gateway, while one is subscribed
        self.subscription = ""
        # the seq last pushed to the desk per conversation: each push names its previous one
        self.pushed_seq: dict[str, int] = {}
        self._log = structlog.get_logger("cx.agent").bind(agent_id=agent_id)

    @property
    def free(self) -> int:
        return self.max_conversations - len(self.conversations) - len(self.pending)

    def receive(self, payload: Any, reply_to: ReplyTo | None, host: HostContext) -> None:
        if isinstance(payload, EventDelivery):
            self._deliver(payload, host)
        elif isinstance(payload, SignalDelivery):  # transient (typing): pushed as it comes
            if self.subscriber is not None:
                host.post(
                    self.subscriber,
                    Pushed(self.subscription, payload.conversation_id, payload.event),
                )
        elif isinstance(payload, RoomDelivery):  # a TEAM room's message: not a conversation's
            if self.subscriber is not None:
                host.post(self.subscriber, Pushed(self.subscription, "", payload.event))
        elif isinstance(payload, Alarm):
            self._reservation_expired(payload, host)
        elif isinstance(payload, Subscribe):
            self.subscriber = Ref(payload.subscriber, "")
            self.subscription = payload.subscription
            self.pushed_seq.clear()
            host.reply(reply_to, None)
        elif isinstance(payload, Unsubscribe):
            self.subscriber = None
            self.pushed_seq.clear()
            host.reply(reply_to, None)
        elif isinstance(payload, AgentPresence):
            self._presence(payload.action, reply_to, host)
        elif isinstance(payload, AgentQuery):
            host.reply(
                reply_to,
                {
                    "conversations": sorted(self.conversations),
                    "monitoring": sorted(self.monitoring),
                    "offers": {cid: offer[0] for cid, offer in sorted(self.offers.items())},
                    "free": self.free,
                },
            )
        elif isinstance(payload, AgentJoin):
            self._join(payload, reply_to, host)
        elif isinstance(payload, Assignment):
            self._assigned(payload, host)
        elif isinstance(payload, SubscribeOutcome):
            self._outcome(payload, host)
        elif isinstance(payload, Released):
            self.pushed_seq.pop(payload.conversation_id, None)
            self.conversations.pop(payload.conversation_id, None)
            self.monitoring.pop(payload.conversation_id, None)
            if payload.reason is UnsubscribeReason.SLA_EXPIRED:
                # It did not answer in time: like a RONA, stop routing to it until it is ready.
                self.presence = Presence.NOT_READY
            self._report(host)
        elif isinstance(payload, Counted):  # a supervisor no more: it barged in
            conversation = self.monitoring.pop(payload.conversation_id, None)
            if conversation is not None:
                self.conversations[payload.conversation_id] = conversation
                self._report(host)
        elif isinstance(payload, Reattach):
            conversation_id = conversation_id_of(payload.conversation.entity)
            joined = self.conversations if self.agent_id in payload.counted else self.monitoring
            joined[conversation_id] = payload.conversation
            host.post(payload.conversation, AgentRef(self.agent_id, host.ref(self.id)))
            self._report(host)
        elif isinstance(payload, Reroute):  # a new Router: tell it where this agent stands
            self._report(host)
        elif isinstance(payload, SetNotReady):
            self.presence = Presence.NOT_READY
            self._report(host)
        else:
            host.refuse(
                reply_to, ErrorKind.BAD_ARGUMENT, f"agent cannot handle {type(payload).__name__}"
            )

    def _deliver(self, delivery: EventDelivery, host: HostContext) -> None:
        """Push a conversation's events to the desk; its final ones end its stream there."""
        self.delivered += len(delivery.events)
        if self.subscriber is not None:
            for event in delivery.events:
                previous = self.pushed_seq.get(event.conversation_id, BEFORE_FIRST)
                self.pushed_seq[event.conversation_id] = event.seq
                final = delivery.final and event is delivery.events[-1]
                host.post(
                    self.subscriber,
                    Pushed(
                        self.subscription,
                        event.conversation_id,
                        event_dict(event),
                        previous,
                        final,
                    ),
                )
        if delivery.events and (delivery.final or delivery.offer_open is False):
            conversation_id = delivery.events[0].conversation_id
            if delivery.final:
                self.pushed_seq.pop(conversation_id, None)
            else:  # its offer was taken back (RONA, withdrawn)
                self.offers.pop(conversation_id, None)

    def _presence(self, action: str, reply_to: ReplyTo | None, host: HostContext) -> None:
        if action == "LOGOUT":
            for conversation_id, ref in [*self.conversations.items(), *self.monitoring.items()]:
                host.post(ref, Apply(AgentLeave(self.agent_id, UnsubscribeReason.AGENT_LOGOUT)))
                self._log.info("logout_leaves", conversation_id=conversation_id)
            self._tell_routers(AgentGone(self.agent_id), host)
            host.remove(self.id)
            self._log.info("agent_logged_out")
            host.reply(reply_to, None)
            return
        self.presence = Presence.READY if action == "READY" else Presence.NOT_READY
        self._report(host)
        host.reply(reply_to, None)

    def _join(self, join: AgentJoin, reply_to: ReplyTo | None, host: HostContext) -> None:
        conversation_id = conversation_id_of(join.conversation.entity)
        counted = join.role not in SUPERVISOR_ROLES
        if conversation_id in self.pending:
            # A join still unanswered (its conversation's host may have died and the
            # conversation been rebuilt elsewhere): ask again where it is now. The slot stays
            # reserved; a conversation that already has this agent answers with success.
            earlier = self.pending.get(conversation_id)
            self._reserve(conversation_id, reply_to, earlier[1] if earlier else None, host)
            host.post(
                join.conversation,
                SubscribeRequest(self.agent_id, join.role, None, host.ref(self.id), reply_to),
            )
            return
        if conversation_id in self.conversations:
            host.refuse(
                reply_to,
                ErrorKind.ILLEGAL_TRANSITION,
                f"agent {self.agent_id} is already in conversation {conversation_id}",
            )
            return
        if counted and self.free <= 0:
            host.refuse(
                reply_to,
                ErrorKind.ILLEGAL_TRANSITION,
                f"agent {self.agent_id} is at its limit of {self.max_conversations} conversations",
            )
            return
        offer = self.offers.pop(conversation_id, None)
        request_id = offer[0] if offer is not None and counted else None
        if counted:
            self._reserve(conversation_id, reply_to, request_id, host)
        role = join.role if join.role is not Role.PRIMARY or request_id is None else None
        host.post(
            join.conversation,
            SubscribeRequest(self.agent_id, role, request_id, host.ref(self.id), reply_to),
        )

    def _assigned(self, assignment: Assignment, host: HostContext) -> None:
        conversation_id = conversation_id_of(assignment.conversation.entity)
        if assignment.offer:
            self.offers[conversation_id] = (assignment.request_id, assignment.conversation)
            return
        already_in = conversation_id in self.conversations or conversation_id in self.pending
        if already_in or self.free <= 0:
            outcome = RoutingOutcome(
                assignment.request_id, self.agent_id, accepted=False, refused=already_in
            )
            self._tell_routers(outcome, host)
            self._report(host)
            return
        self._reserve(conversation_id, None, assignment.request_id, host)
        host.post(
            assignment.conversation,
            SubscribeRequest(self.agent_id, None, assignment.request_id, host.ref(self.id), None),
        )

    def _reserve(
        self,
        conversation_id: str,
        origin: ReplyTo | None,
        request_id: str | None,
        host: HostContext,
    ) -> None:
        """Hold a slot for a subscription in flight, until its outcome or RESERVATION_MS."""
        self._tokens += 1
        self.pending[conversation_id] = (origin, request_id, self._tokens)
        key = (_RESERVATION, conversation_id)
        host.arm(self.id, key, self._tokens, host.now() + RESERVATION_MS, 100)

    def _reservation_expired(self, alarm: Alarm, host: HostContext) -> None:
        key = alarm.key
        if not (isinstance(key, tuple) and len(key) == 2 and key[0] == _RESERVATION):
            return
        conversation_id = key[1]
        pending = self.pending.get(conversation_id)
        if pending is None or pending[2] != alarm.token:
            return  # answered meanwhile, or reserved again since: a stale alarm
        origin, request_id, _ = self.pending.pop(conversation_id)
        self._log.warning("reservation_expired", conversation_id=conversation_id)
        host.refuse(
            origin,
            ErrorKind.UNAVAILABLE,
            f"agent_join for agent {self.agent_id}: conversation {conversation_id} did not answer"
            f" within {RESERVATION_MS // 1000} s (its host may have failed); the agent's slot is"
            " free again. It may or may not have been applied: check, or retry",
        )
        if request_id is not None:  # the Router gives the request to someone (or here) again
            self._tell_routers(
                RoutingOutcome(request_id, self.agent_id, accepted=False, refused=False), host
            )
        self._report(host)

    def _outcome(self, outcome: SubscribeOutcome, host: HostContext) -> None:
        if self.pending.pop(outcome.conversation_id, None) is not None:
            host.disarm(self.id, (_RESERVATION, outcome.conversation_id))
        if outcome.failure is None:
            joined = self.conversations if outcome.counted else self.monitoring
            joined[outcome.conversation_id] = outcome.conversation
            host.reply(outcome.origin, None)
        elif outcome.origin is not None:
            host.fail(outcome.origin, outcome.failure)
        if outcome.request_id is not None:
            self._tell_routers(
                RoutingOutcome(
                    outcome.request_id,
                    self.agent_id,
                    accepted=outcome.failure is None,
                    refused=outcome.failure is not None,
                ),
                host,
            )
        self._report(host)

    def _report(self, host: HostContext) -> None:
        self._tell_routers(
            AgentAvailable(
                self.agent_id,
                self.presence is Presence.READY,
                max(self.free, 0),
                self.queues,
                host.ref(self.id),
            ),
            host,
        )

    def _routers(self, host: HostContext) -> list[Ref]:
        """The Routers of this agent's queues, each once (one, unless its queues are owned by
        several). A Router told of a request it does not hold ignores it."""
        wiring, routers = host.wired(), []
        for queue in self.queues:
            router = wiring.router_of(queue)
            if router not in routers:  # addresses compare with ==, not always by hash
                routers.append(router)
        return [Ref(router, "") for router in routers]

    def _tell_routers(self, message: Any, host: HostContext) -> None:
        for router in self._routers(host):
            host.post(router, message)
