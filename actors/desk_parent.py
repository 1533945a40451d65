"""The TopicMonitor's side of its room desks (``placement.room_desks`` > 1).

With one desk (the default) the monitor decides get-or-create itself
(:class:`~actors.room_desk.RoomDesk`) and nothing here is used. With N > 1 it starts N
:class:`~actors.room_desk_actor.RoomDeskActor` children, and gateways send each customer's
``OpenSession`` and ``ForgetCustomer`` straight to the customer's desk (``Wiring.desk_of``);
one that reaches the monitor anyway is passed on to that desk, never decided here.

The monitor keeps the registry of live conversations that inventory, recovery, the drain and
a host's death need: a desk reports each conversation it opens (``PlaceConversation``: the
monitor places it on a host, registers it and opens it there) and each session it sends to a
live one (``SessionJoined``). In return the monitor tells the customer's desk where a
conversation is (``DeskEntry``: placed, restored after a start or a host's death) and passes on
what ends one (its CLOSING and CLOSED ``StateReport``, ``NotApplied``, ``Bounced``). It checks
each ``PlaceConversation`` against its registry: a room with a live conversation already (a
desk replaced while its request was in flight) is refused ``unavailable`` and the desk told to
drop it, so that two live conversations for one room never exist.

A desk that exits is replaced at its partition: the new one is sent the live conversations of
its customers before anything else, and the drain if the engine drains; gateways watching
hosts are told the desks' new addresses (``DesksMoved``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import structlog

from actors.archivist_parent import _CallerJob
from actors.messages import (
    DeskArchive,
    DeskEntry,
    DesksMoved,
    DrainEngine,
    PlaceConversation,
    Ref,
    ReplyTo,
    SessionJoined,
    StateReport,
)
from actors.operations_desk import OperationsDesk
from actors.room_desk import Live
from actors.room_desk_actor import RoomDeskActor
from domain.enums import State
from domain.errors import ErrorKind
from domain.ids import conversation_entity_id
from domain.routing import partition_of

log = structlog.get_logger("cx.monitor")


class DeskParent(OperationsDesk):
    def __init__(self) -> None:
        super().__init__()
        self.watchers: list[Any] = []  # gateways to tell when a host dies or a desk moves
        self.desks_restarted = 0

    def start_desks(self) -> None:
        """Start ``placement.room_desks`` desks when there is more than one."""
        count = self.wired().settings.placement.room_desks
        if count < 2:
            return
        desks = tuple(self.createActor(RoomDeskActor) for _ in range(count))
        self.wiring = replace(self.wired(), desks=desks)
        for desk in desks:
            self.send(desk, self.wired())

    def is_desk(self, address: Any) -> bool:
        return any(address == d for d in self.wired().desks)

    def desk_exited(self, address: Any) -> None:
        """A new desk takes the dead one's partition, with its customers' live conversations."""
        wiring = self.wired()
        index = next(i for i, d in enumerate(wiring.desks) if d == address)
        started = self.createActor(RoomDeskActor)
        desks = tuple(started if i == index else d for i, d in enumerate(wiring.desks))
        self.wiring = replace(wiring, desks=desks)
        self.desks_restarted += 1
        log.error("actor_restarted", actor="RoomDesk", partition=index)
        self.send(started, self.wired())
        for conversation_id, live in self.live.items():
            if partition_of(live.customer_id, len(desks)) == index:
                self.post(Ref(started, ""), self._entry(conversation_id, live))
        if self.draining:
            self.post(Ref(started, ""), DrainEngine(start=True))
        for watcher in self.watchers:
            self.send(watcher, DesksMoved(desks))

    def to_desk(self, live: Live, payload: Any, reply_to: ReplyTo | None = None) -> None:
        """Pass ``payload`` on to the desk of the conversation's customer (if there are desks)."""
        if self.wired().desks:
            self.post(Ref(self.wired().desk_of(live.customer_id), ""), payload, reply_to)

    def restoring(self, conversation_id: str, live: Live) -> None:
        self.to_desk(live, self._entry(conversation_id, live))

    def lost_unrestored(self, orphans: list[tuple[str, Live]]) -> None:
        """A dead host's conversations that were not rebuilt: their desks drop them."""
        for conversation_id, live in orphans:
            if conversation_id not in self.live:
                self.to_desk(live, StateReport(conversation_id, live.room_id, State.CLOSED.value))

    @staticmethod
    def _entry(conversation_id: str, live: Live) -> DeskEntry:
        host = live.host
        return DeskEntry(conversation_id, live.room_id, live.customer_id, live.state,
                         tuple(live.sessions), host.address, host.host_id)  # fmt: skip

    def operation(self, payload: Any, reply_to: ReplyTo | None) -> bool:
        if isinstance(payload, DrainEngine) and payload.start:  # every desk refuses new ones
            for desk in self.wired().desks:
                self.post(Ref(desk, ""), payload)
        return super().operation(payload, reply_to)

    # ------------------------------------------------------------------ desks' requests

    def desk_work(self, payload: Any, reply_to: ReplyTo | None) -> bool:
        """Carry out a desk's request; False if ``payload`` is none."""
        if isinstance(payload, PlaceConversation):
            self._place(payload, reply_to)
        elif isinstance(payload, SessionJoined):
            live = self.live.get(payload.conversation_id)
            if live is not None and payload.session_id not in live.sessions:
                live.sessions.append(payload.session_id)
                self.session_conversation[payload.session_id] = payload.conversation_id
        elif isinstance(payload, DeskArchive):
            key = payload.customer_id  # in order with the customer's first contact
            self._to_archivist(payload.write, _CallerJob(reply_to), key)
        else:
            return False
        return True

    def _place(self, request: PlaceConversation, reply_to: ReplyTo | None) -> None:
        opening = request.opening
        conversation_id, room_id = opening.conversation_id, opening.room_id
        taken = self.room_live.get(room_id)
        if conversation_id in self.live or taken is not None:
            log.warning("placement_refused", conversation_id=conversation_id, live=taken)
            self.refuse(
                reply_to,
                ErrorKind.UNAVAILABLE,
                f"start_session in room {room_id}: the room's desk was replaced while it opened"
                f" conversation {conversation_id}; nothing was opened: retry start_session",
            )
            dropped = StateReport(conversation_id, room_id, State.CLOSED.value)
            self.post(Ref(self.wired().desk_of(request.customer_id), ""), dropped)
            return
        host = self.placement.place(self.wired().settings.placement.per_host)
        live = Live(host, room_id, State.CREATED.value, [request.session_id], reply_to,
                    request.customer_id)  # fmt: skip
        self.register(live, conversation_id)
        self.post(Ref(host.address, conversation_entity_id(conversation_id)), opening, reply_to)
        self.to_desk(live, self._entry(conversation_id, live))
