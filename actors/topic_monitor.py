"""The TopicMonitor: supervises every conversation from creation to the archive.

It serialises get-or-create per room (so two first messages of one customer never open two
live conversations: :class:`~actors.room_desk.RoomDesk`), places conversations on hosts (its
children), follows their states and rebuilds those of a host that died. It only reads the
archive; every write goes to its child the :class:`~actors.archivist.Archivist`
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

from actors.bot import Bot
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
    ListTimerOwners,
    Locate,
    Location,
    NotApplied,
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
    StorageHealth,
    WatchHosts,
)
from actors.recovery import move_aside, plan_recovery
from actors.room_desk import HostInfo as _HostInfo
from actors.room_desk import Live as _Live
from actors.room_desk import RoomDesk
from actors.router import Router
from domain.enums import State
from domain.ids import conversation_entity_id
from infra.archive import Archive, StorageError
from infra.timefmt import wall_ms

log = structlog.get_logger("cx.monitor")
MAX_WATCHERS = 1000
#: The monitor only reads the archive (WAL: readers do not wait for a writer's lock).
READ_BUSY_TIMEOUT_MS = 50
_GONE = {State.CLOSING.value, State.CLOSED.value}


@dataclass(slots=True)
class _Boot:
    now: int = 0  # the latest journaled time: a virtual clock resumes there
    restored: int = 0
    damage: list[str] = field(default_factory=list)
    error: str | None = None
    refused: list[dict[str, Any]] = field(default_factory=list)  # mid-log damage (Damage)
    salvaged: list[dict[str, Any]] = field(default_factory=list)  # losses (actors.recovery.Loss)


@dataclass(slots=True)
class _Recovery:
    """Journal directories being replaced by restored copies; deleted once all are back."""

    directories: list[Path]
    awaiting: set[str]
    failed: bool = False
    damaged: list[Path] = field(default_factory=list)  # salvaged: moved aside, never deleted


class TopicMonitor(RoomDesk):
    def __init__(self) -> None:
        super().__init__()
        # By host id: an address's text can change once Thespian resolves it; compare with ==.
        self.hosts: dict[str, _HostInfo] = {}
        self._host_seq = 0
        self._recoveries: list[_Recovery] = []
        self.watchers: list[Any] = []  # gateways to tell when a host dies
        self.failing_journals: dict[str, str] = {}  # host id -> why its journal fails
        self.boot = _Boot()

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
        self.boot.restored = self._recover(previous, salvage=settings.storage.salvage_journal)

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
            restored = self._recover([directory], salvage=False)  # salvage is for a person
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
        elif isinstance(payload, NotApplied):
            self._not_applied(payload)
        elif isinstance(payload, StorageHealth):
            self._storage_health(payload)
        else:
            self.refuse(
                reply_to, "bad_argument", f"TopicMonitor cannot handle {type(payload).__name__}"
            )

    def _not_applied(self, notice: NotApplied) -> None:
        """A host could not journal a session it was sent: the session id is free again, and a
        conversation it was opening was never opened."""
        live = self.release_session(notice.conversation_id, notice.session_id)
        if live is not None and notice.opening:
            self._close_out(notice.conversation_id)

    def _storage_health(self, health: StorageHealth) -> None:
        if health.problem is None:
            self.failing_journals.pop(health.host_id, None)
            log.warning("journal_recovered", host=health.host_id)
        else:
            self.failing_journals[health.host_id] = health.problem
            log.error("journal_failing", host=health.host_id, problem=health.problem)

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

    def _recover(self, directories: list[Path], *, salvage: bool) -> int:
        """Restore every live conversation journaled in ``directories`` onto hosts; the
        directories are deleted (salvaged damaged ones moved aside) once every one of them is
        back (each host journals its restored conversations' whole history again)."""
        archive = self._archive_or_fail()
        plan = plan_recovery(directories, salvage=salvage, archived=archive.has_conversation)
        for error in plan.errors:
            log.error("journal_refused", error=error)
            self.boot.error = error
        self.boot.refused.extend(asdict(d) for d in plan.refused)
        for problem in plan.damage:
            log.warning("journal_damaged", problem=problem)
            self.boot.damage.append(problem)
        for loss in plan.losses:
            log.warning("journal_salvaged", **loss.as_dict())
            self.boot.salvaged.append(loss.as_dict())
        self.boot.now = max(self.boot.now, plan.now)
        found = {c: v for c, v in plan.found.items() if c not in self.live}
        recovery = _Recovery(plan.directories, set(), damaged=plan.damaged)
        for conversation_id, (opened, commands) in found.items():
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
            for directory in recovery.damaged:  # kept for a person to look at
                log.warning(
                    "journal_moved_aside", directory=str(directory), to=str(move_aside(directory))
                )

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
            self._close_out(report.conversation_id)

    def _close_out(self, conversation_id: str) -> None:
        """The conversation is no longer live (closed, or never opened): its host has room."""
        host = self.live[conversation_id].host
        self._forget(conversation_id)
        host.conversations -= 1
        self._retire_if_idle(host)

    def _forget(self, conversation_id: str) -> None:
        live = self.live.pop(conversation_id)
        for session_id in live.sessions:
            if self.session_conversation.get(session_id) == conversation_id:
                del self.session_conversation[session_id]
        if self.room_live.get(live.room_id) == conversation_id:
            del self.room_live[live.room_id]

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
        failing = sum(1 for h in self.failing_journals if h in self.hosts)
        self.reply(reply_to, Status(conversations=counts, storage={"failing_journals": failing}))


def _session_ids(opened: dict[str, Any], commands: list[dict[str, Any]]) -> list[str]:
    ids = []
    for command in [opened["first"], *(r["cmd"] for r in commands)]:
        if isinstance(command, list) and command and command[0] == "StartSession":
            ids.append(str(command[1].get("session_id")))
    return ids
