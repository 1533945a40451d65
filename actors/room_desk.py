"""Get-or-create of a room's live conversation: the TopicMonitor's part that opens sessions.

One actor takes every ``OpenSession`` of a customer (the TopicMonitor, or with
``placement.room_desks`` above 1 the customer's :class:`~actors.room_desk_actor.RoomDeskActor`),
so two first messages of one customer never open two live conversations: a session joins its room's live conversation,
or a new conversation is placed on a host. Everything is looked up before anything changes
(what the conversation would refuse stores nothing). A customer's first contact needs a
write (the new room with the identity, one transaction): it goes to the Archivist, and the
customer's sessions wait (``first_contacts``) until it answers; a returning customer (room
and identity stored) needs no write, so a locked archive does not hold it up. What the
archive refuses, reads included, is answered ``unavailable`` and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import structlog

from actors.archivist_parent import ArchivistParent
from actors.base import failure_of
from actors.messages import (
    Bounced,
    Failure,
    ForgetCustomer,
    JoinSession,
    OpenConversation,
    OpenSession,
    Ref,
    Reply,
    ReplyTo,
    StateReport,
    StoreIdentity,
)
from actors.placement import HostInfo, Placement
from domain.commands import StartSession
from domain.conversation import ConversationMachine
from domain.enums import RoomMode, RoomType, State
from domain.errors import ErrorKind, Refused
from domain.ids import conversation_entity_id
from infra.archive_errors import StorageError
from infra.archive_rows import RoomRecord
from infra.archive_store import ArchiveStore

log = structlog.get_logger("cx.monitor")
#: A desk only reads the archive (WAL: readers do not wait for a writer's lock).
READ_BUSY_TIMEOUT_MS = 50
#: The states in which a conversation no longer takes new sessions.
GONE = frozenset({State.CLOSING.value, State.CLOSED.value})


@dataclass(slots=True)
class Live:
    host: HostInfo
    room_id: str
    state: str
    sessions: list[str] = field(default_factory=list)
    # The caller of the OpenConversation sent to ``host``, until the conversation's first state
    # report says it is open: answered here if the host dies first (F7 in docs/RELIABILITY.md).
    opening: ReplyTo | None = None
    customer_id: str = ""


class RoomDesk(ArchivistParent):
    def __init__(self) -> None:
        super().__init__()
        self.archive: ArchiveStore | None = None  # read only: writes are the Archivist's
        self.draining = False  # cx drain: no new conversation is opened (actors.operations_desk)
        self.live: dict[str, Live] = {}
        self.room_live: dict[str, str] = {}
        self.session_conversation: dict[str, str] = {}
        # Customers whose first contact is being stored: their sessions, opened once it is.
        self.first_contacts: dict[str, list[tuple[OpenSession, ReplyTo | None]]] = {}
        self.placement = Placement(self.start_host, self.stop_host)

    def start_host(self, host_id: str, node: str | None = None) -> Any:
        """Start a conversation host (on the named node; None: this one); its address."""
        raise NotImplementedError

    def stop_host(self, address: Any) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ get-or-create

    def _open_session(
        self, request: OpenSession, reply_to: ReplyTo | None, *, stored: bool = False
    ) -> None:
        """``stored``: the customer's first contact has just been stored for this request."""
        archive = self._archive_or_fail()
        start = StartSession(request.session_id, request.channel, request.identifier, request.data)
        try:  # look up, then mutate: what the conversation would refuse stores nothing here
            ConversationMachine.check_first_session(request.new_conversation_id, start)
        except Refused as refusal:
            if reply_to is not None:
                self.fail(reply_to, failure_of(reply_to.call_id, refusal))
            return
        waiting = self.first_contacts.get(request.customer_id)
        if waiting is not None:  # the customer's first contact is being stored: after it
            waiting.append((request, reply_to))
            return
        resolved = self._resolve_room(request, reply_to)
        if resolved is None:
            return
        room, room_is_new = resolved
        if request.session_id in self.session_conversation or archive.ids_taken(
            session_id=request.session_id
        ):
            self.refuse(
                reply_to, ErrorKind.ID_TAKEN, f"channel session id {request.session_id} is taken"
            )
            return
        live_id = self.room_live.get(room.id)
        if live_id is not None:
            live = self.live[live_id]
            live.sessions.append(request.session_id)
            self.session_conversation[request.session_id] = live_id
            self.join_live(live_id, live, JoinSession(start, request), reply_to)
            return
        if self.draining:
            self.refuse(
                reply_to,
                ErrorKind.UNAVAILABLE,
                f"start_session of customer {request.customer_id} refused: the engine is"
                " draining (cx drain) and opens no new conversation; open it on another engine",
            )
            return
        conversation_id = request.new_conversation_id
        if conversation_id in self.live or archive.ids_taken(conversation_id=conversation_id):
            self.refuse(reply_to, ErrorKind.ID_TAKEN, f"conversation id {conversation_id} is taken")
            return
        if room_is_new or not archive.has_identity(
            request.customer_id, request.channel.value, request.identifier
        ):
            if stored:  # committed, yet not found: refuse rather than write again and again
                self.refuse(
                    reply_to,
                    ErrorKind.UNAVAILABLE,
                    f"start_session of customer {request.customer_id}: the archive does not"
                    " show the identity just stored; retry",
                )
                return
            # A new room is stored with the identity, once nothing can refuse the session any
            # more, by the Archivist; the customer's sessions wait for it (first_contact_stored).
            self.first_contacts[request.customer_id] = [(request, reply_to)]
            self.store_first_contact(
                StoreIdentity(
                    request.customer_id,
                    request.channel.value,
                    request.identifier,
                    room.id if room_is_new else None,
                    room.created_at,
                )
            )
            return
        advisors = self._advisors_of(room)  # read before anything changes
        opening = OpenConversation(
            conversation_id, room.id, request.customer_id, start, request.direction, advisors
        )
        self.open_conversation(opening, request.session_id, reply_to)

    def join_live(
        self, conversation_id: str, live: Live, join: JoinSession, reply_to: ReplyTo | None
    ) -> None:
        """Send a session (registered already) to its room's live conversation."""
        self.post(Ref(live.host.address, conversation_entity_id(conversation_id)), join, reply_to)

    def open_conversation(
        self, opening: OpenConversation, session_id: str, reply_to: ReplyTo | None
    ) -> None:
        """Register the room's new live conversation, place it on a host and open it there."""
        conversation_id = opening.conversation_id
        host = self.placement.place(self.wired().settings.placement.per_host)
        self.register(Live(host, opening.room_id, State.CREATED.value, [session_id], reply_to,
                           opening.customer_id), conversation_id)  # fmt: skip
        log.debug(
            "conversation_opened",
            conversation_id=conversation_id,
            room_id=opening.room_id,
            host=host.host_id,
        )
        self.post(Ref(host.address, conversation_entity_id(conversation_id)), opening, reply_to)

    def register(self, live: Live, conversation_id: str) -> None:
        """A live conversation, with its room and sessions, in the registry."""
        self.live[conversation_id] = live
        self.room_live[live.room_id] = conversation_id
        for session_id in live.sessions:
            self.session_conversation[session_id] = conversation_id

    def _resolve_room(
        self, request: OpenSession, reply_to: ReplyTo | None
    ) -> tuple[RoomRecord, bool] | None:
        """The session's room, and whether it is new (not stored yet); None if refused."""
        archive = self._archive_or_fail()
        if request.room_id is not None:
            room = archive.room(request.room_id)
            if room is None:
                self.refuse(
                    reply_to, ErrorKind.UNKNOWN_ID, f"room {request.room_id} does not exist"
                )
                return None
            if room.type is RoomType.TEAM:
                self.refuse(
                    reply_to,
                    ErrorKind.BAD_ARGUMENT,
                    f"room {request.room_id} is a TEAM room: it has no customer conversations",
                )
                return None
            if room.customer_id != request.customer_id:
                self.refuse(
                    reply_to,
                    ErrorKind.BAD_ARGUMENT,
                    f"room {request.room_id} belongs to another customer than {request.customer_id}",
                )
                return None
            return room, False
        room = archive.contact_center_room_of(request.customer_id)
        if room is not None:
            return room, False
        if archive.ids_taken(room_id=request.new_room_id):
            self.refuse(reply_to, ErrorKind.ID_TAKEN, f"room id {request.new_room_id} is taken")
            return None
        new_room = RoomRecord(
            request.new_room_id,
            RoomType.CUSTOMER,
            RoomMode.CONTACT_CENTER,
            request.customer_id,
            self.now(),
        )
        return new_room, True

    def _advisors_of(self, room: RoomRecord) -> tuple[str, ...]:
        """A private room's advisors, to whom its agent requests go (none: the queue)."""
        if room.mode is not RoomMode.PRIVATE:
            return ()
        return tuple(self._archive_or_fail().room_members(room.id))

    def _bounced(self, bounced: Bounced, reply_to: ReplyTo | None) -> None:
        self.release_bounced(bounced)
        self._open_session(bounced.origin, reply_to)

    def release_bounced(self, bounced: Bounced) -> None:
        """The conversation refused the session (it is closing): the session is free, and the
        room opens a new conversation."""
        live = self.release_session(bounced.conversation_id, bounced.origin.session_id)
        if live is not None and self.room_live.get(live.room_id) == bounced.conversation_id:
            del self.room_live[live.room_id]

    def state_changed(self, report: StateReport) -> Live | None:
        """A conversation's new state; once it is CLOSING a new inbound session of its room
        opens a new conversation. Its entry (None if it is not live here)."""
        live = self.live.get(report.conversation_id)
        if live is None:
            return None
        live.state = report.state
        live.opening = None  # it is open: its host has answered the caller
        if report.state in GONE and self.room_live.get(live.room_id) == report.conversation_id:
            del self.room_live[live.room_id]
        return live

    def release_session(self, conversation_id: str, session_id: str) -> Live | None:
        """The session is not (or no longer) in the conversation: its id is free again. The
        conversation's entry, if it is live."""
        if self.session_conversation.get(session_id) == conversation_id:
            del self.session_conversation[session_id]
        live = self.live.get(conversation_id)
        if live is not None and session_id in live.sessions:
            live.sessions.remove(session_id)
        return live

    def first_contact_stored(self, customer_id: str, answer: Reply | Failure) -> None:
        """Open the sessions that waited for the customer's first contact to be stored, or
        refuse them as the archive refused it: nothing was registered for them meanwhile."""
        for index, (request, reply_to) in enumerate(self.first_contacts.pop(customer_id, [])):
            if isinstance(answer, Failure):
                self.refuse(reply_to, answer.kind, answer.message)
                continue
            try:
                self._open_session(request, reply_to, stored=index == 0)
            except StorageError as error:
                self._unreadable(request, reply_to, error)

    def forget_customer(self, request: ForgetCustomer, reply_to: ReplyTo | None) -> None:
        """Delete the customer's data unless one of their conversations is live (refused
        ``illegal_transition``, naming it); their new sessions wait until it is done."""
        customer = request.customer_id
        rooms = {room.id for room in self._archive_or_fail().rooms_of_customer(customer)}
        busy = sorted(
            f"{conversation_id} ({live.state})"
            for conversation_id, live in self.live.items()
            if live.room_id in rooms
        )
        if busy or customer in self.first_contacts:
            what = ", ".join(busy) or "a first contact being stored"
            self.refuse(
                reply_to,
                ErrorKind.ILLEGAL_TRANSITION,
                f"forget_customer refused for customer {customer}: live conversation {what};"
                " nothing was deleted: retry once it is closed",
            )
            return
        self.first_contacts[customer] = []  # their sessions wait for the deletion
        self.forget_in_archive(request, reply_to)

    def customer_forgotten(self, customer_id: str) -> None:
        """Open the sessions that waited for the deletion, as first contacts again."""
        for request, reply_to in self.first_contacts.pop(customer_id, []):
            try:
                self._open_session(request, reply_to)
            except StorageError as error:
                self._unreadable(request, reply_to, error)

    def close_out(self, conversation_id: str) -> None:
        """The conversation is no longer live (closed, or never opened): its host has room."""
        host = self.live[conversation_id].host
        self.forget(conversation_id)
        self.placement.release(host, keep=self.wired().settings.placement.hosts)

    def forget(self, conversation_id: str) -> None:
        """Take a conversation out of the registry: its room and sessions are free again."""
        live = self.live.pop(conversation_id)
        for session_id in live.sessions:
            if self.session_conversation.get(session_id) == conversation_id:
                del self.session_conversation[session_id]
        if self.room_live.get(live.room_id) == conversation_id:
            del self.room_live[live.room_id]

    def _unreadable(self, payload: Any, reply_to: ReplyTo | None, error: StorageError) -> None:
        log.warning("archive_read_refused", request=type(payload).__name__, error=str(error))
        self.refuse(
            reply_to,
            ErrorKind.UNAVAILABLE,
            f"{type(payload).__name__} not done: the archive is unavailable ({error});"
            " nothing changed: retry",
        )

    def _archive_or_fail(self) -> ArchiveStore:
        assert self.archive is not None, "TopicMonitor used before it was wired"
        return self.archive
