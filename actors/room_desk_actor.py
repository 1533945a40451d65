"""A room desk of its own: get-or-create for the customers whose id hashes to it.

With ``placement.room_desks`` N > 1 the TopicMonitor starts N :class:`RoomDeskActor` children;
desk ``partition_of(customer_id, N)`` alone decides for every room of that customer, so one
live conversation per room holds by construction (one actor decides for a room). Gateways
send ``OpenSession`` and ``ForgetCustomer`` straight to it (``Wiring.desk_of``). It runs the
same :class:`~actors.room_desk.RoomDesk` code as the monitor does with one desk, on a read
connection of its own, with these differences:

- a new conversation is registered here, then sent to the monitor (``PlaceConversation``),
  which places it on a host, registers it and opens it there; the monitor answers with a
  ``DeskEntry`` naming the host. Sessions of that room that come meanwhile join it as soon as
  the entry says where it is. A session sent to a live conversation is reported
  (``SessionJoined``) so that the monitor locates it.
- the monitor passes on what ends or moves a conversation: its ``StateReport`` once it is
  CLOSING or CLOSED, ``NotApplied`` and ``Bounced`` from hosts, a ``DeskEntry`` for a
  conversation restored (after a start or a host's death), and the drain (``DrainEngine``).
- a first contact or a customer's deletion goes to the Archivists through the monitor
  (``DeskArchive``): the monitor answers the desk once the Archivist did, or ``unavailable``
  if the Archivist died.

A desk that dies is replaced by the monitor, which sends the new one every live conversation
of its customers from its registry before anything else; whatever the old desk had in flight
is checked by the monitor (a second live conversation for a room is refused there).
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

import structlog

from actors.messages import (
    Bounced,
    DeskArchive,
    DeskEntry,
    DrainEngine,
    Failure,
    ForgetCustomer,
    JoinSession,
    NotApplied,
    OpenConversation,
    OpenSession,
    PlaceConversation,
    Ref,
    Reply,
    ReplyTo,
    SessionJoined,
    StateReport,
    StoreIdentity,
    Wiring,
)
from actors.placement import HostInfo
from actors.room_desk import READ_BUSY_TIMEOUT_MS, Live, RoomDesk
from domain.enums import State
from domain.errors import ErrorKind
from infra.archive_errors import StorageError
from infra.archive_store import ArchiveStore, open_archive

log = structlog.get_logger("cx.desk")


class RoomDeskActor(RoomDesk):
    def __init__(self) -> None:
        super().__init__()
        self.kind = ""  # "desk-<index>": in its process title
        # sent to the monitor for an Archivist, by call id: (what, customer id, caller)
        self.desk_jobs: dict[str, tuple[str, str, ReplyTo | None]] = {}
        self._desk_job_ids = itertools.count(1)
        # Sessions of a conversation the monitor has not placed yet, by conversation id.
        self.unplaced: dict[str, list[tuple[JoinSession, ReplyTo | None]]] = {}

    def wire(self, wiring: Wiring) -> None:
        index = next((i for i, a in enumerate(wiring.desks) if a == self.myAddress), 0)
        self.kind = f"desk-{index}"
        super().wire(wiring)

    def on_exit(self) -> None:
        if self.archive is not None:
            self.archive.close()
            self.archive = None

    # ------------------------------------------------------------------ requests

    def on_deliver(self, item: Any, sender: Any) -> None:
        payload, reply_to = item.payload, item.reply_to
        try:
            self._handle(payload, reply_to)
        except StorageError as error:  # a read refused: looked up before anything changed
            self._unreadable(payload, reply_to, error)

    def _handle(self, payload: Any, reply_to: ReplyTo | None) -> None:
        if isinstance(payload, OpenSession):
            self._open_session(payload, reply_to)
        elif isinstance(payload, ForgetCustomer):
            self.forget_customer(payload, reply_to)
        elif isinstance(payload, Bounced):
            self._bounced(payload, reply_to)
        elif isinstance(payload, DeskEntry):
            self._entry(payload)
        elif isinstance(payload, StateReport):
            self._ended(payload)
        elif isinstance(payload, NotApplied):
            live = self.release_session(payload.conversation_id, payload.session_id)
            if live is not None and payload.opening:
                self._drop(payload.conversation_id)
        elif isinstance(payload, DrainEngine):
            self.draining = self.draining or payload.start
        else:
            self.refuse(
                reply_to, ErrorKind.BAD_ARGUMENT, f"RoomDesk cannot handle {type(payload).__name__}"
            )

    def _archive_or_fail(self) -> ArchiveStore:
        """The read connection, opened on first use (the archive exists once sessions come)."""
        if self.archive is None:
            storage = self.wired().settings.storage
            self.archive = open_archive(storage, create=False, busy_timeout_ms=READ_BUSY_TIMEOUT_MS)
        return self.archive

    # ------------------------------------------------------------------ RoomDesk's hooks

    def join_live(
        self, conversation_id: str, live: Live, join: JoinSession, reply_to: ReplyTo | None
    ) -> None:
        monitor = Ref(self.wired().monitor, "")
        self.post(monitor, SessionJoined(conversation_id, join.origin.session_id))
        if live.host.address is None:  # not placed yet: sent once the monitor says where
            self.unplaced.setdefault(conversation_id, []).append((join, reply_to))
            return
        super().join_live(conversation_id, live, join, reply_to)

    def open_conversation(
        self, opening: OpenConversation, session_id: str, reply_to: ReplyTo | None
    ) -> None:
        unplaced = HostInfo(None, "")
        live = Live(unplaced, opening.room_id, State.CREATED.value, [session_id],
                    customer_id=opening.customer_id)  # fmt: skip
        self.register(live, opening.conversation_id)
        place = PlaceConversation(opening.customer_id, session_id, opening)
        self.post(Ref(self.wired().monitor, ""), place, reply_to)

    def store_first_contact(self, request: StoreIdentity) -> None:
        self._to_monitor("first", request.customer_id, request, None)

    def forget_in_archive(self, request: ForgetCustomer, reply_to: ReplyTo | None) -> None:
        self._to_monitor("forget", request.customer_id, request, reply_to)

    # ------------------------------------------------------------------ the monitor's notices

    def _entry(self, entry: DeskEntry) -> None:
        """A live conversation of this desk's customers and its host: registered (the room's
        live conversation from now on), or moved; sessions that waited for it are sent."""
        host = HostInfo(entry.host, entry.host_id)
        live = self.live.get(entry.conversation_id)
        if live is None:
            live = Live(host, entry.room_id, entry.state, list(entry.sessions),
                        customer_id=entry.customer_id)  # fmt: skip
        else:
            live.host = host
            live.sessions.extend(s for s in entry.sessions if s not in live.sessions)
        self.register(live, entry.conversation_id)
        for join, reply_to in self.unplaced.pop(entry.conversation_id, []):
            super().join_live(entry.conversation_id, live, join, reply_to)

    def _ended(self, report: StateReport) -> None:
        live = self.state_changed(report)
        if live is not None and report.state == State.CLOSED.value:
            self._drop(report.conversation_id)

    def _drop(self, conversation_id: str) -> None:
        """The conversation is not live (closed, never opened, refused by the monitor)."""
        self.forget(conversation_id)
        for _, reply_to in self.unplaced.pop(conversation_id, []):
            self.refuse(
                reply_to,
                ErrorKind.UNAVAILABLE,
                f"start_session: conversation {conversation_id} was not opened; retry",
            )

    # ------------------------------------------------------------------ archive writes

    def _to_monitor(
        self, what: str, customer_id: str, write: StoreIdentity | ForgetCustomer,
        caller: ReplyTo | None,
    ) -> None:  # fmt: skip
        call_id = f"desk-{next(self._desk_job_ids)}"
        self.desk_jobs[call_id] = (what, customer_id, caller)
        self.post(
            Ref(self.wired().monitor, ""),
            DeskArchive(customer_id, write),
            ReplyTo(self.myAddress, call_id),
        )

    def on_message(self, message: Any, sender: Any) -> None:
        if not isinstance(message, Reply | Failure):
            super().on_message(message, sender)
            return
        job = self.desk_jobs.pop(message.call_id, None)
        if job is None:
            return
        what, customer_id, caller = job
        if what == "first":
            self.first_contact_stored(customer_id, message)
            return
        self.customer_forgotten(customer_id)
        if isinstance(message, Reply):
            self.reply(caller, message.value)
        elif caller is not None:
            self.fail(caller, replace(message, call_id=caller.call_id))
