"""The TopicMonitor: supervises every conversation from creation to the archive.

It serialises get-or-create per room (so two first messages of one customer never open two
live conversations), places conversations on hosts (its children) and follows their states.
It only reads the archive; every write goes to its child the :class:`~actors.archivist.Archivist`
(a new one if it dies), and the answer comes back asynchronously: a closing conversation is
told ``ArchiveDone`` (it becomes CLOSED) once its archive transaction has committed, a
customer's first contact is opened once its identity and room are stored (refused
``unavailable`` if the archive refuses them). Reads of what is archived (snapshots, events,
room history) and late activities go to the Archivist too, so that a locked archive delays
only what must wait for it.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import structlog
from thespian.actors import ActorExitRequest

from actors.archivist_parent import ArchivistParent
from actors.base import failure_of
from actors.bot import Bot
from actors.conversation import conversation_entity_id
from actors.host import Host
from actors.messages import (
    AgentsLost,
    AlarmAt,
    BootStatus,
    Bounced,
    ClockDriver,
    Deliver,
    Directory,
    Failure,
    HostInit,
    HostLost,
    JoinSession,
    ListTimerOwners,
    Locate,
    Location,
    OpenConversation,
    OpenSession,
    Ref,
    Reply,
    ReplyTo,
    RestoreConversation,
    Restored,
    Rewired,
    StateReport,
    Status,
    StatusQuery,
    StoreIdentity,
    WatchHosts,
)
from actors.model.commands import StartSession
from actors.model.conversation import ConversationMachine
from actors.model.enums import RoomMode, RoomType, State
from actors.model.errors import Refused
from actors.router import Router
from runtime.archive import Archive, RoomRecord, StorageError
from runtime.journal import JournalError, read_directory
from runtime.timefmt import wall_ms

log = structlog.get_logger("cx.monitor")
MAX_WATCHERS = 1000
#: The monitor only reads the archive (WAL: readers do not wait for a writer's lock).
READ_BUSY_TIMEOUT_MS = 50
_GONE = {State.CLOSING.value, State.CLOSED.value}


@dataclass(slots=True)
class _HostInfo:
    address: Any
    host_id: str
    conversations: int = 0


@dataclass(slots=True)
class _Boot:
    now: int = 0  # the latest journaled time: a virtual clock resumes there
    restored: int = 0
    damage: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass(slots=True)
class _Recovery:
    """Journal directories being replaced by restored copies; deleted once all are back."""

    directories: list[Path]
    awaiting: set[str]
    failed: bool = False


@dataclass(slots=True)
class _Live:
    host: _HostInfo
    room_id: str
    state: str
    sessions: list[str] = field(default_factory=list)
    # The caller of the OpenConversation sent to ``host``, until the conversation's first state
    # report says it is open: answered here if the host dies first (F7 in docs/RELIABILITY.md).
    opening: ReplyTo | None = None


class TopicMonitor(ArchivistParent):
    def __init__(self) -> None:
        super().__init__()
        self.archive: Archive | None = None
        # By host id: an address's text can change once Thespian resolves it; compare with ==.
        self.hosts: dict[str, _HostInfo] = {}
        self.live: dict[str, _Live] = {}
        self.room_live: dict[str, str] = {}
        self.session_conversation: dict[str, str] = {}
        self._host_seq = 0
        self._recoveries: list[_Recovery] = []
        self.watchers: list[Any] = []  # gateways to tell when a host dies
        self.boot = _Boot()
        # Customers whose first contact is being stored: their sessions, opened once it is.
        self.first_contacts: dict[str, list[tuple[OpenSession, ReplyTo | None]]] = {}

    # ------------------------------------------------------------------ lifecycle

    def on_wired(self, sender: Any) -> None:
        # The Router and the Bot are this actor's children, so that it restarts them if they
        # die; everyone else learns their addresses from the wiring completed here.
        self.wiring = replace(
            self.wired(), router=self.createActor(Router), bot=self.createActor(Bot)
        )
        for address in (self.wired().router, self.wired().bot, self.wired().agents):
            self.send(address, self.wired())
        settings = self.wired().settings
        self.archive = Archive(
            settings.storage.archive,
            fsync=settings.storage.fsync,
            busy_timeout_ms=READ_BUSY_TIMEOUT_MS,
        )
        self.new_archivist()
        root = Path(settings.storage.journal)
        previous = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        for _ in range(settings.placement.hosts):
            self._new_host()
        # A system started on storage that holds journals restores those conversations first.
        self.boot.restored = self._recover(previous)

    def on_exit(self) -> None:
        if self.archive is not None:
            self.archive.close()
            self.archive = None

    def on_child_exited(self, address: Any) -> None:
        if self.archive is None:  # shutting down
            return
        wiring = self.wired()
        if address in (wiring.router, wiring.bot):
            self._restart(router=address == wiring.router)
            return
        if address == self.archivist:
            self.archivist_exited(address)
            return
        lost = next((h for h in self.hosts.values() if h.address == address), None)
        if lost is None or self.archive is None:  # not a host, or the system is shutting down
            return
        del self.hosts[lost.host_id]
        for watcher in self.watchers:  # gateways drop their cached address of it
            self.send(watcher, HostLost(address))
        clock = self.wired().clock
        if clock is not None:  # virtual clock: its alarms died with it (rebuilt conversations
            # re-arm theirs on their new host); the clock must not wait on a dead address
            self.send(clock, AlarmAt(address, None))
        orphans = [cid for cid, info in self.live.items() if info.host is lost]
        log.error("host_exited", host=lost.host_id, conversations=len(orphans))
        opening = [(cid, self.live[cid]) for cid in orphans if self.live[cid].opening is not None]
        for conversation_id in orphans:
            self._forget(conversation_id)
        if self.wiring is not None:
            # Rebuild its conversations from its journal on another host.
            directory = Path(self.wired().settings.storage.journal) / lost.host_id
            restored = self._recover([directory])
            log.info("host_recovered", host=lost.host_id, conversations=restored)
        for conversation_id, live in opening:
            self._answer_opening(conversation_id, live)

    def _answer_opening(self, conversation_id: str, live: _Live) -> None:
        """A new conversation's host died before the conversation reported that it opened: its
        caller would wait for an answer that will never come. A conversation opens and is
        journaled before it answers, so: rebuilt from the journal, it is open (the answer may
        have been lost with the host); not in the journal, nothing was opened."""
        if conversation_id in self.live:
            self.reply(
                live.opening,
                {
                    "conversation_id": conversation_id,
                    "channel_session_id": live.sessions[0],
                    "room_id": live.room_id,
                },
            )
            return
        self.refuse(
            live.opening,
            "unavailable",
            f"start_session in room {live.room_id}: the host given its new conversation"
            f" {conversation_id} failed before opening it; nothing was opened: retry start_session",
        )

    def on_message(self, message: Any, sender: Any) -> None:
        if isinstance(message, WatchHosts):
            if not any(w == message.address for w in self.watchers):
                self.watchers = [*self.watchers[-(MAX_WATCHERS - 1) :], message.address]
        elif isinstance(message, ClockDriver):
            self.wiring = replace(self.wired(), clock=message.address)
            wiring = self.wired()  # the agent supervisor passes it on to the agent hosts
            others = (h.address for h in self.hosts.values())
            for target in (wiring.router, wiring.agents, self.archivist, *others):
                self.send(target, Rewired(self.wired()))
        elif isinstance(message, Reply | Failure):
            self.archivist_answered(message)
        elif isinstance(message, AgentsLost):
            for host in self.hosts.values():
                self.send(host.address, message)
        elif isinstance(message, Directory):
            self.send(
                sender,
                Reply(message.call_id, {"router": self.wired().router, "bot": self.wired().bot}),
            )
        elif isinstance(message, BootStatus):
            self.send(sender, Reply(message.call_id, asdict(self.boot)))
        elif isinstance(message, ListTimerOwners):
            owners = [
                self.wired().router,
                self.archivist,
                *(h.address for h in self.hosts.values()),
            ]
            self.send(sender, Reply(message.call_id, owners))
        else:
            super().on_message(message, sender)

    def on_deliver(self, item: Deliver, sender: Any) -> None:
        payload, reply_to = item.payload, item.reply_to
        try:
            self._handle(payload, reply_to)
        except StorageError as error:  # a read refused: looked up before anything changed
            self._unreadable(payload, reply_to, error)

    def _unreadable(self, payload: Any, reply_to: ReplyTo | None, error: StorageError) -> None:
        log.warning("archive_read_refused", request=type(payload).__name__, error=str(error))
        self.refuse(
            reply_to,
            "unavailable",
            f"{type(payload).__name__} not done: the archive is unavailable ({error});"
            " nothing changed: retry",
        )

    def _handle(self, payload: Any, reply_to: ReplyTo | None) -> None:
        if isinstance(payload, OpenSession):
            self._open_session(payload, reply_to)
        elif isinstance(payload, Bounced):
            self._bounced(payload, reply_to)
        elif isinstance(payload, StateReport):
            self._state_report(payload)
        elif self.archive_work(payload, reply_to):
            pass
        elif isinstance(payload, Locate):
            self._locate(payload, reply_to)
        elif isinstance(payload, StatusQuery):
            self._status(reply_to)
        elif isinstance(payload, Restored):
            self._restored(payload)
        else:
            self.refuse(
                reply_to, "bad_argument", f"TopicMonitor cannot handle {type(payload).__name__}"
            )

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
            self.refuse(reply_to, "id_taken", f"channel session id {request.session_id} is taken")
            return
        live_id = self.room_live.get(room.id)
        if live_id is not None:
            live = self.live[live_id]
            live.sessions.append(request.session_id)
            self.session_conversation[request.session_id] = live_id
            self.post(
                Ref(live.host.address, conversation_entity_id(live_id)),
                JoinSession(start, request),
                reply_to,
            )
            return
        conversation_id = request.new_conversation_id
        if conversation_id in self.live or archive.ids_taken(conversation_id=conversation_id):
            self.refuse(reply_to, "id_taken", f"conversation id {conversation_id} is taken")
            return
        if room_is_new or not archive.has_identity(
            request.customer_id, request.channel.value, request.identifier
        ):
            if stored:  # committed, yet not found: refuse rather than write again and again
                self.refuse(
                    reply_to,
                    "unavailable",
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
        host = self._place()
        host.conversations += 1
        self.live[conversation_id] = _Live(
            host, room.id, State.CREATED.value, [request.session_id], reply_to
        )
        self.room_live[room.id] = conversation_id
        self.session_conversation[request.session_id] = conversation_id
        log.debug(
            "conversation_opened",
            conversation_id=conversation_id,
            room_id=room.id,
            host=host.host_id,
        )
        self.post(
            Ref(host.address, conversation_entity_id(conversation_id)),
            OpenConversation(conversation_id, room.id, request.customer_id, start),
            reply_to,
        )

    def _resolve_room(
        self, request: OpenSession, reply_to: ReplyTo | None
    ) -> tuple[RoomRecord, bool] | None:
        """The session's room, and whether it is new (not stored yet); None if refused."""
        archive = self._archive_or_fail()
        if request.room_id is not None:
            room = archive.room(request.room_id)
            if room is None:
                self.refuse(reply_to, "unknown_id", f"room {request.room_id} does not exist")
                return None
            if room.customer_id != request.customer_id:
                self.refuse(
                    reply_to,
                    "bad_argument",
                    f"room {request.room_id} belongs to another customer than {request.customer_id}",
                )
                return None
            return room, False
        room = archive.contact_center_room_of(request.customer_id)
        if room is not None:
            return room, False
        if archive.ids_taken(room_id=request.new_room_id):
            self.refuse(reply_to, "id_taken", f"room id {request.new_room_id} is taken")
            return None
        new_room = RoomRecord(
            request.new_room_id,
            RoomType.CUSTOMER,
            RoomMode.CONTACT_CENTER,
            request.customer_id,
            self.now(),
        )
        return new_room, True

    def _bounced(self, bounced: Bounced, reply_to: ReplyTo | None) -> None:
        origin = bounced.origin
        if self.session_conversation.get(origin.session_id) == bounced.conversation_id:
            del self.session_conversation[origin.session_id]
        live = self.live.get(bounced.conversation_id)
        if live is not None:
            if origin.session_id in live.sessions:
                live.sessions.remove(origin.session_id)
            if self.room_live.get(live.room_id) == bounced.conversation_id:
                del self.room_live[live.room_id]
        self._open_session(origin, reply_to)

    def _restart(self, *, router: bool) -> None:
        """A new Router (or Bot) takes over; every host and the AgentSupervisor learn its
        address. A new Router learns the pending requests from their conversations and the
        agents' availability from the agents (Reroute); the Bot keeps no state to lose."""
        wiring = self.wired()
        if router:
            self.wiring = replace(wiring, router=self.createActor(Router))
        else:
            self.wiring = replace(wiring, bot=self.createActor(Bot))
        new = self.wired()
        log.error("actor_restarted", actor="Router" if router else "Bot")
        self.send(new.router if router else new.bot, new)
        for target in (*(h.address for h in self.hosts.values()), new.agents):
            self.send(target, Rewired(new, reroute=router))

    # ------------------------------------------------------------------ recovery

    def _recover(self, directories: list[Path]) -> int:
        """Restore every live conversation journaled in ``directories`` onto hosts; the
        directories are deleted once every one of them is back (each host journals its
        restored conversations' whole history again)."""
        archive = self._archive_or_fail()
        found: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
        closed: set[str] = set()
        readable: list[Path] = []
        for directory in directories:
            try:
                read = read_directory(directory)
            except JournalError as error:
                log.error("journal_refused", error=str(error))
                self.boot.error = str(error)
                continue
            readable.append(directory)
            for problem in read.damage:
                log.warning("journal_damaged", problem=problem)
                self.boot.damage.append(problem)
            for conversation_id, opened, commands, is_closed in _by_conversation(read.records):
                self.boot.now = max(self.boot.now, *(r["t"] for r in [opened, *commands]))
                if is_closed:
                    closed.add(conversation_id)
                # A conversation moved between hosts is in both journals: the longer wins.
                if conversation_id not in found or len(commands) > len(found[conversation_id][1]):
                    found[conversation_id] = (opened, commands)
        recovery = _Recovery(readable, set())
        for conversation_id, (opened, commands) in found.items():
            if (
                conversation_id in closed
                or conversation_id in self.live
                or archive.has_conversation(conversation_id)
            ):
                continue
            host = self._place()
            host.conversations += 1
            sessions = _session_ids(opened, commands)
            self.live[conversation_id] = _Live(host, opened["room"], "RESTORING", sessions)
            self.room_live[opened["room"]] = conversation_id
            for session_id in sessions:
                self.session_conversation[session_id] = conversation_id
            recovery.awaiting.add(conversation_id)
            self.post(
                Ref(host.address, conversation_entity_id(conversation_id)),
                RestoreConversation(opened, tuple(commands)),
            )
        self._recoveries.append(recovery)
        self._settle_recoveries()
        return len(recovery.awaiting)

    def _restored(self, restored: Restored) -> None:
        for recovery in self._recoveries:
            if restored.conversation_id in recovery.awaiting:
                recovery.awaiting.discard(restored.conversation_id)
                recovery.failed = recovery.failed or not restored.ok
        if not restored.ok:
            log.error(
                "restore_failed",
                conversation_id=restored.conversation_id,
                problems=restored.problems,
            )
        self._settle_recoveries()

    def _settle_recoveries(self) -> None:
        for recovery in [r for r in self._recoveries if not r.awaiting]:
            self._recoveries.remove(recovery)
            if recovery.failed:
                continue  # keep the journals of what could not be restored, for a person to look at
            for directory in recovery.directories:
                shutil.rmtree(directory, ignore_errors=True)

    # ------------------------------------------------------------------ placement

    def _place(self) -> _HostInfo:
        per_host = self.wired().settings.placement.per_host
        for host in self.hosts.values():
            if host.conversations < per_host:
                return host
        return self._new_host()

    def _new_host(self) -> _HostInfo:
        self._host_seq += 1
        address = self.createActor(Host)
        # Unique across restarts: the name is also the host's journal directory.
        host = _HostInfo(address, f"host-{wall_ms():x}-{self._host_seq}")
        self.hosts[host.host_id] = host
        self.send(address, HostInit(host.host_id, "conversations", self.wired(), self.now()))
        return host

    def _retire_if_idle(self, host: _HostInfo) -> None:
        keep = self.wired().settings.placement.hosts
        if host.conversations == 0 and len(self.hosts) > keep:
            del self.hosts[host.host_id]
            self.send(host.address, ActorExitRequest())

    # ------------------------------------------------------------------ states and archive

    def _state_report(self, report: StateReport) -> None:
        live = self.live.get(report.conversation_id)
        if live is None:
            return
        live.state = report.state
        live.opening = None  # it is open: its host has answered the caller
        if report.state in _GONE and self.room_live.get(live.room_id) == report.conversation_id:
            del self.room_live[live.room_id]  # a new inbound session now opens a new conversation
        if report.state == State.CLOSED.value:
            host = live.host
            self._forget(report.conversation_id)
            host.conversations -= 1
            self._retire_if_idle(host)

    def _forget(self, conversation_id: str) -> None:
        live = self.live.pop(conversation_id)
        for session_id in live.sessions:
            if self.session_conversation.get(session_id) == conversation_id:
                del self.session_conversation[session_id]
        if self.room_live.get(live.room_id) == conversation_id:
            del self.room_live[live.room_id]

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

    # ------------------------------------------------------------------ queries

    def _locate(self, request: Locate, reply_to: ReplyTo | None) -> None:
        archive = self._archive_or_fail()
        conversation_id = request.conversation_id
        if conversation_id is None and request.session_id is not None:
            conversation_id = self.session_conversation.get(request.session_id)
            if conversation_id is None:
                conversation_id = archive.conversation_of_session(request.session_id)
            if conversation_id is None:
                self.refuse(reply_to, "unknown_id", f"no channel session {request.session_id}")
                return
        if conversation_id is None:
            self.refuse(reply_to, "bad_argument", "Locate needs a conversation or session id")
            return
        live = self.live.get(conversation_id)
        if live is not None:
            self.reply(reply_to, Location(conversation_id, live.host.address, live.state))
        elif archive.has_conversation(conversation_id):
            self.reply(reply_to, Location(conversation_id, None, State.CLOSED.value))
        else:
            self.refuse(reply_to, "unknown_id", f"no conversation {conversation_id}")

    def _status(self, reply_to: ReplyTo | None) -> None:
        counts: dict[str, int] = {}
        for live in self.live.values():
            counts[live.state] = counts.get(live.state, 0) + 1
        self.reply(reply_to, Status(conversations=counts))

    def _archive_or_fail(self) -> Archive:
        assert self.archive is not None, "TopicMonitor used before it was wired"
        return self.archive


def _by_conversation(
    records: list[dict[str, Any]],
) -> list[tuple[str, dict[str, Any], list[dict[str, Any]], bool]]:
    """Group journal records per conversation: (id, open record, commands, closed)."""
    opened: dict[str, dict[str, Any]] = {}
    commands: dict[str, list[dict[str, Any]]] = {}
    closed: set[str] = set()
    for record in records:
        conversation_id, kind = record.get("c"), record.get("k")
        if not isinstance(conversation_id, str):
            continue
        if kind == "open":
            opened[conversation_id] = record
            commands[conversation_id] = []
        elif kind == "cmd" and conversation_id in commands:
            commands[conversation_id].append(record)
        elif kind == "closed":
            closed.add(conversation_id)
    return [(cid, opened[cid], commands[cid], cid in closed) for cid in opened]


def _session_ids(opened: dict[str, Any], commands: list[dict[str, Any]]) -> list[str]:
    ids = []
    for command in [opened["first"], *(r["cmd"] for r in commands)]:
        if isinstance(command, list) and command and command[0] == "StartSession":
            ids.append(str(command[1].get("session_id")))
    return ids
