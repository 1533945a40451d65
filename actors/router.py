"""The Router actor: a thin shell around the pure routing book (:mod:`domain.routing`).

One of ``placement.routers``: it sees only the requests of the queues it owns
(``Wiring.router_of``) and the agents serving any of them.

It keeps where each conversation and agent lives, turns the book's effects into messages
(assignments to Agent entities, AGENT_OFFERED / RONA / NO_AGENT_AVAILABLE reports to
conversations) and drives the book's accept-timeout and request-TTL alarms.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import structlog

from actors.messages import (
    AgentAvailable,
    AgentGone,
    AgentRef,
    Apply,
    Assignment,
    CancelRequest,
    Deliver,
    EnqueueRequest,
    Ref,
    Reload,
    RoutingOutcome,
    Status,
    StatusQuery,
)
from actors.messages.survey import ListAgents
from actors.timed import TimedActor
from domain.commands import RoutingUpdate
from domain.errors import ErrorKind
from domain.events import EventName
from domain.ids import conversation_id_of
from domain.routing import (
    ArmRoutingAlarm,
    Assign,
    QueuePosition,
    Report,
    RoutingBook,
    RoutingEffect,
    SetNotReady,
)
from infra.policies import routing_settings

log = structlog.get_logger("cx.router")


class Router(TimedActor):
    def __init__(self) -> None:
        super().__init__()
        self.book: RoutingBook | None = None
        self.conversations: dict[str, Ref] = {}
        self.agents: dict[str, Ref] = {}

    def on_wired(self, sender: Any) -> None:
        self.book = RoutingBook(routing_settings(self.wired().settings))

    def on_reload(self, message: Reload) -> None:
        # Queues, priorities and routing times apply from the next decision on; what is
        # waiting and the timers already armed stay as they are.
        self._book().reconfigure(routing_settings(self.wired().settings))

    def _book(self) -> RoutingBook:
        assert self.book is not None, "Router used before it was wired"
        return self.book

    def on_deliver(self, item: Deliver, sender: Any) -> None:
        payload, book, now = item.payload, self._book(), self.now()
        if isinstance(payload, EnqueueRequest):
            conversation_id = conversation_id_of(payload.conversation.entity)
            self.conversations[conversation_id] = payload.conversation
            self._perform(
                book.enqueue(
                    payload.request_id,
                    conversation_id,
                    payload.queue,
                    now,
                    excluded=payload.excluded,
                    targets=payload.agents,
                    room=payload.room_id,
                )
            )
        elif isinstance(payload, CancelRequest):
            self._perform(book.cancel(payload.request_id))
        elif isinstance(payload, AgentAvailable):
            self.agents[payload.agent_id] = payload.agent
            self._perform(
                book.agent_available(
                    payload.agent_id,
                    ready=payload.ready,
                    free=payload.free,
                    queues=payload.queues,
                    now=now,
                )
            )
        elif isinstance(payload, AgentGone):
            self._perform(book.agent_gone(payload.agent_id))
            self.agents.pop(payload.agent_id, None)
        elif isinstance(payload, RoutingOutcome):
            if payload.accepted:
                self._perform(book.accepted(payload.request_id, payload.agent_id, now))
            else:
                self._perform(
                    book.declined(
                        payload.request_id, payload.agent_id, now, refused=payload.refused
                    )
                )
        elif isinstance(payload, StatusQuery):
            self.reply(item.reply_to, Status(agents=self._agents(), queues=book.waiting()))
        elif isinstance(payload, ListAgents):
            self.reply(item.reply_to, book.agent_list())
        else:
            self.refuse(
                item.reply_to,
                ErrorKind.BAD_ARGUMENT,
                f"Router cannot handle {type(payload).__name__}",
            )

    def figures(self) -> dict[str, Any]:
        """Per queue this Router owns: its routing outcomes, service level counts, waiting
        requests and how long the oldest has waited."""
        return {"queues": self._book().queue_figures(self.now())}

    def _agents(self) -> dict[str, int]:
        """Agents READY (with free capacity), BUSY and NOT_READY. An agent whose queues
        several Routers own reports to each: only the Router of its first queue counts it, so
        that the Routers' counts add up."""
        routers = self.wired().every_router()
        if len(routers) == 1:
            return self._book().availability()
        mine = self.myAddress
        return self._book().availability(lambda queues: self.wired().router_of(queues[0]) == mine)

    def on_alarm(self, key: Hashable, payload: Any) -> None:
        self._perform(self._book().alarm(payload[0], payload[1], self.now()))

    def _perform(self, effects: list[RoutingEffect]) -> None:
        for effect in effects:
            if isinstance(effect, ArmRoutingAlarm):
                self.alarms.arm(effect.key, effect.token, effect.at, (effect.key, effect.token))
            elif isinstance(effect, Assign):
                agent = self.agents.get(effect.agent_id)
                conversation = self.conversations.get(effect.conversation_id)
                if agent is None or conversation is None:
                    log.warning(
                        "assignment_lost", request_id=effect.request_id, agent_id=effect.agent_id
                    )
                    continue
                self.post(
                    agent, Assignment(effect.request_id, conversation, effect.queue, effect.offer)
                )
            elif isinstance(effect, Report):
                conversation = self.conversations.get(effect.conversation_id)
                if conversation is not None:
                    offered = self.agents.get(effect.agent_id or "")
                    if effect.agent_id is not None and offered is not None:
                        # where the conversation tells the agent of its offer (or RONA)
                        self.post(conversation, AgentRef(effect.agent_id, offered))
                    update = RoutingUpdate(
                        effect.name.value, effect.request_id, effect.queue, effect.agent_id
                    )
                    self.post(conversation, Apply(update))
            elif isinstance(effect, QueuePosition):
                conversation = self.conversations.get(effect.conversation_id)
                if conversation is not None:
                    told = RoutingUpdate(
                        EventName.QUEUE_POSITION.value,
                        effect.request_id,
                        effect.queue,
                        position=effect.position,
                        estimated_wait_seconds=effect.estimated_wait_seconds,
                    )
                    self.post(conversation, Apply(told))
            elif isinstance(effect, SetNotReady):
                agent = self.agents.get(effect.agent_id)
                if agent is not None:
                    self.post(agent, effect)
