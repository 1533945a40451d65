"""The TopicMonitor: supervises every conversation from creation to the archive.

It is one actor made of parts of one purpose each: the room registry and get-or-create per
room (:class:`~actors.room_desk.RoomDesk`: two first messages of one customer never open two
live conversations; with ``placement.room_desks`` above 1 get-or-create runs in room desks,
:class:`~actors.desk_parent.DeskParent`), placement on conversation hosts (:class:`~actors.placement.Placement`),
restoring conversations from journals (:class:`~actors.recovery_desk.RecoveryDesk`), an
operator's drain and reload (:class:`~actors.operations_desk.OperationsDesk`), and its side of
the Archivist (:class:`~actors.archivist_parent.ArchivistParent`). This module keeps
what is the supervisor's own: its children (hosts, Router, Archivist; a new one if one
dies, a dead host's conversations rebuilt elsewhere), start-up, and the conversations'
lifecycle at its level (state reports, close-out, locate, status).

It only reads the archive, through a connection opened once the Archivist has opened (and on
new storage created) it; every write goes to an Archivist, and the answer comes back
asynchronously: a closing conversation asks its Archivist itself and is told ``ArchiveDone``
(it becomes CLOSED) by it once its archive transaction has committed (the monitor hears only
the outcome), a customer's first contact is opened once its identity and
room are stored (refused ``unavailable`` if the archive refuses them). Reads of what is
archived (snapshots, events, room history) and late activities go to the Archivist too, so
that a locked archive delays only what must wait for it.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

import structlog
from thespian.actors import ActorExitRequest

from actors.desk_parent import DeskParent
from actors.host import Host
from actors.messages import (
    AgentsLost,
    AlarmAt,
    ArchiveOpened,
    BootStatus,
    Bounced,
    ClockDriver,
    Deliver,
    Directory,
    Failure,
    ForgetCustomer,
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
    Restored,
    Rewired,
    StateReport,
    Status,
    StatusQuery,
    StorageHealth,
    WatchHosts,
)
from actors.messages.nodes import NodeDown, NodeUp
from actors.messages.survey import Roster
from actors.nodes import node_requirements
from actors.room_desk import GONE, READ_BUSY_TIMEOUT_MS, Live
from actors.router import Router
from domain.enums import State
from domain.errors import ErrorKind
from infra.archive_errors import StorageError
from infra.archive_store import open_archive

log = structlog.get_logger("cx.monitor")
MAX_WATCHERS = 1000


class TopicMonitor(DeskParent):
    def __init__(self) -> None:
        super().__init__()
        self.failing_journals: dict[str, str] = {}  # host id -> why its journal fails
        # Until the archive is open for reading (ArchiveOpened): requests and boot queries wait.
        self.opened = False
        self.held: list[tuple[Deliver, Any]] = []
        self.boot_queries: list[tuple[Any, str]] = []
        self.stopping = False
        self.restarts = {"host": 0, "router": 0}  # children lost and replaced, by kind

    # ------------------------------------------------------------------ lifecycle

    def on_wired(self, sender: Any) -> None:
        # The Routers are this actor's children, so that it restarts them if they die; everyone
        # else learns their addresses from the wiring completed here. The bot runs inside each
        # conversation host (actors.bot): it has no actor of its own.
        settings = self.wired().settings
        self.start_desks()
        routers = tuple(self.createActor(Router) for _ in range(settings.placement.routers))
        self.wiring = replace(self.wired(), router=routers[0], routers=routers)
        for address in (*routers, self.wired().agents):
            self.send(address, self.wired())
        # Archivist 0 creates the archive on new storage and says when it is open: this
        # actor writes nothing to it, not even its schema (see _archive_opened).
        self.first_archivist()
        previous = self.previous_journals()
        for _ in range(settings.placement.hosts):
            self.placement.new_host()
        # A system started on storage that holds journals restores those conversations first,
        # once the archive is open (it says which of them are archived already).
        self.recover(previous, salvage=settings.storage.salvage_journal)

    def _archive_opened(self, opened: ArchiveOpened) -> None:
        """The Archivist has opened the archive: open the reading connection, restore what
        the journals hold, then answer what waited. A new Archivist's notice changes nothing."""
        if self.opened:
            return
        self.opened = True
        self.more_archivists()
        storage = self.wired().settings.storage
        try:
            self.archive = open_archive(
                storage, create=False, busy_timeout_ms=READ_BUSY_TIMEOUT_MS
            )
        except StorageError as error:
            problem = opened.problem or str(error)
            log.error("archive_unavailable", error=problem)
            self.boot.error = f"the archive cannot be opened: {problem}"
        else:
            self.boot.restored = self.recover_deferred()
            if self.boot.restored:
                log.info("restoring_after_restart", conversations=self.boot.restored)
        for sender, call_id in self.boot_queries:
            self.send(sender, Reply(call_id, asdict(self.boot)))
        held, self.held, self.boot_queries = self.held, [], []
        for item, sender in held:
            self.on_deliver(item, sender)

    def on_exit(self) -> None:
        self.stopping = True
        if self.archive is not None:
            self.archive.close()
            self.archive = None

    def on_child_exited(self, address: Any) -> None:
        if self.stopping:
            return
        wiring = self.wired()
        if address in wiring.every_router():
            self._restart_router(address)
            return
        if self.is_archivist(address):
            self.archivist_exited(address)
            return
        if self.is_desk(address):
            self.desk_exited(address)
            return
        self._host_lost(address)

    def _host_lost(self, address: Any) -> None:
        """A conversation host exited, or its node was declared dead: its conversations are
        rebuilt from its journal (fenced first) on another host."""
        lost = self.placement.lost(address)
        if lost is None:  # not a host
            return
        for watcher in self.watchers:  # gateways drop their cached address of it
            self.send(watcher, HostLost(address))
        clock = self.wired().clock
        if clock is not None:  # virtual clock: its alarms died with it (rebuilt conversations
            # re-arm theirs on their new host); the clock must not wait on a dead address
            self.send(clock, AlarmAt(address, None))
        orphans = [cid for cid, info in self.live.items() if info.host is lost]
        self.restarts["host"] += 1
        log.error("host_exited", host=lost.host_id, conversations=len(orphans))
        lives = [(cid, self.live[cid]) for cid in orphans]
        opening = [(cid, live) for cid, live in lives if live.opening is not None]
        for conversation_id in orphans:
            self.forget(conversation_id)
        if self.wiring is not None:
            # Rebuild its conversations from its journal (fenced first) on another host, and
            # those it was still rebuilding from the journals they were read from.
            writers = [lost.host_id, *self.sources_of(orphans)]
            restored = self.recover(writers, salvage=False)  # salvage is for a person
            log.info("host_recovered", host=lost.host_id, conversations=restored)
        self.lost_unrestored(lives)
        for conversation_id, live in opening:
            self._answer_opening(conversation_id, live)

    def _answer_opening(self, conversation_id: str, live: Live) -> None:
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
            ErrorKind.UNAVAILABLE,
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
            for target in (
                *wiring.every_router(),
                wiring.agents,
                *self.archivists,
                *self.placement.addresses(),
            ):
                self.send(target, Rewired(self.wired()))
        elif isinstance(message, Reply | Failure):
            self.archivist_answered(message)
        elif isinstance(message, AgentsLost):
            for address in self.placement.addresses():
                self.send(address, message)
        elif isinstance(message, Directory):
            self.send(
                sender,
                Reply(
                    message.call_id,
                    {
                        "router": self.wired().router,
                        "routers": self.wired().every_router(),
                        "desks": self.wired().desks,
                    },
                ),
            )
        elif isinstance(message, Roster):
            actors = {"routers": self.wired().every_router(), "archivists": list(self.archivists)}
            self.send(
                sender, Reply(message.call_id, {**actors, "hosts": self.placement.addresses()})
            )
        elif isinstance(message, ArchiveOpened):
            self._archive_opened(message)
        elif isinstance(message, NodeUp | NodeDown):
            self._node_changed(message)
        elif isinstance(message, BootStatus):
            if self.opened:
                self.send(sender, Reply(message.call_id, asdict(self.boot)))
            else:
                self.boot_queries.append((sender, message.call_id))
        elif isinstance(message, ListTimerOwners):
            owners = [
                *self.wired().every_router(),
                *self.archivists,
                *self.placement.addresses(),
            ]
            self.send(sender, Reply(message.call_id, owners))
        else:
            super().on_message(message, sender)

    def on_deliver(self, item: Deliver, sender: Any) -> None:
        if not self.opened:
            self.held.append((item, sender))
            return
        payload, reply_to = item.payload, item.reply_to
        if self.archive is None:
            self._unreadable(payload, reply_to, StorageError(str(self.boot.error)))
            return
        try:
            self._handle(payload, reply_to)
        except StorageError as error:  # a read refused: looked up before anything changed
            self._unreadable(payload, reply_to, error)

    def _handle(self, payload: Any, reply_to: ReplyTo | None) -> None:
        if isinstance(payload, OpenSession | ForgetCustomer) and self.wired().desks:
            # decided by the customer's desk alone (a gateway that does not know the desks yet)
            self.post(Ref(self.wired().desk_of(payload.customer_id), ""), payload, reply_to)
        elif isinstance(payload, OpenSession):
            self._open_session(payload, reply_to)
        elif isinstance(payload, Bounced) and self.wired().desks:
            self.release_bounced(payload)  # the desk opens the session anew
            self.post(Ref(self.wired().desk_of(payload.origin.customer_id), ""), payload, reply_to)
        elif isinstance(payload, Bounced):
            self._bounced(payload, reply_to)
        elif isinstance(payload, StateReport):
            self._state_report(payload)
        elif (
            self.archive_work(payload, reply_to)
            or self.operation(payload, reply_to)
            or self.desk_work(payload, reply_to)
        ):
            pass
        elif isinstance(payload, Locate):
            self._locate(payload, reply_to)
        elif isinstance(payload, StatusQuery):
            self._status(reply_to)
        elif isinstance(payload, ForgetCustomer):
            self.forget_customer(payload, reply_to)
        elif isinstance(payload, Restored):
            self.restored(payload)
        elif isinstance(payload, NotApplied):
            self._not_applied(payload)
        elif isinstance(payload, StorageHealth):
            self._storage_health(payload)
        else:
            self.refuse(
                reply_to,
                ErrorKind.BAD_ARGUMENT,
                f"TopicMonitor cannot handle {type(payload).__name__}",
            )

    def _not_applied(self, notice: NotApplied) -> None:
        """A host could not journal a session it was sent: the session id is free again, and a
        conversation it was opening was never opened."""
        live = self.release_session(notice.conversation_id, notice.session_id)
        if live is not None:
            self.to_desk(live, notice)
        if live is not None and notice.opening:
            self.close_out(notice.conversation_id)

    def _storage_health(self, health: StorageHealth) -> None:
        if health.problem is None:
            self.failing_journals.pop(health.host_id, None)
            log.warning("journal_recovered", host=health.host_id)
        else:
            self.failing_journals[health.host_id] = health.problem
            log.error("journal_failing", host=health.host_id, problem=health.problem)

    def _restart_router(self, old: Any) -> None:
        """A new Router takes over from the one at ``old``; every host, every other Router and
        the AgentSupervisor learn its address. It learns the pending requests from their
        conversations and the agents' availability from the agents (Reroute: every Router hears
        them again; a request or report it knows changes nothing)."""
        wiring = self.wired()
        started = self.createActor(Router)
        routers = tuple(started if r == old else r for r in wiring.every_router())
        self.wiring = replace(wiring, router=routers[0], routers=routers)
        new = self.wired()
        log.error("actor_restarted", actor="Router")
        self.restarts["router"] += 1
        self.send(started, new)
        for target in (*self.placement.addresses(), new.agents):
            self.send(target, Rewired(new, reroute=True))
        for target in new.every_router():
            if target != started:
                self.send(target, Rewired(new))

    # ------------------------------------------------------------------ hosts

    def _node_changed(self, change: NodeUp | NodeDown) -> None:
        """Hosts go to the live nodes only where every node reads one journal and one archive
        (``storage.postgres``): a dead node's conversations are rebuilt from what it wrote.
        With files, every host stays on this node."""
        shared = self.wired().settings.storage.postgres is not None
        if isinstance(change, NodeUp):
            log.info("node_up", node=change.node, takes_hosts=shared and change.capacity.hosts)
            if shared:
                self.placement.node_up(change.node, change.capacity)
            self.archivists_node_up(change.node, change.capacity)
            return
        lost = self.placement.node_down(change.node)
        archivists = self.archivists_node_down(change.node)
        log.warning("node_down", node=change.node, hosts=len(lost), archivists=archivists)
        for host in lost:
            self._host_lost(host.address)

    def start_host(self, host_id: str, node: str | None = None) -> Any:
        address = None
        if node is not None:
            try:
                address = self.createActor(Host, targetActorRequirements=node_requirements(node))
            except Exception as error:  # no such node any more: this one takes the host
                log.warning("host_not_placed", node=node, host=host_id, error=str(error))
        if address is None:
            address = self.createActor(Host)
        self.send(address, HostInit(host_id, "conversations", self.wired(), self.now()))
        return address

    def conversation_hosts(self) -> list[Any]:
        return self.placement.addresses()

    def stop_host(self, address: Any) -> None:
        self.send(address, ActorExitRequest())

    # ------------------------------------------------------------------ states

    def _state_report(self, report: StateReport) -> None:
        live = self.state_changed(report)
        if live is None:
            return
        if report.state in GONE:
            self.to_desk(live, report)  # its room takes a new conversation from now on
        if report.state == State.CLOSED.value:
            self.close_out(report.conversation_id)

    # ------------------------------------------------------------------ queries

    def _locate(self, request: Locate, reply_to: ReplyTo | None) -> None:
        archive = self._archive_or_fail()
        conversation_id = request.conversation_id
        if conversation_id is None and request.session_id is not None:
            conversation_id = self.session_conversation.get(request.session_id)
            if conversation_id is None:
                conversation_id = archive.conversation_of_session(request.session_id)
            if conversation_id is None:
                self.refuse(
                    reply_to, ErrorKind.UNKNOWN_ID, f"no channel session {request.session_id}"
                )
                return
        if conversation_id is None:
            self.refuse(
                reply_to, ErrorKind.BAD_ARGUMENT, "Locate needs a conversation or session id"
            )
            return
        live = self.live.get(conversation_id)
        if live is not None:
            self.reply(reply_to, Location(conversation_id, live.host.address, live.state))
        elif archive.has_conversation(conversation_id):
            self.reply(reply_to, Location(conversation_id, None, State.CLOSED.value))
        else:
            self.refuse(reply_to, ErrorKind.UNKNOWN_ID, f"no conversation {conversation_id}")

    def figures(self) -> dict[str, Any]:
        """Conversation hosts now, the children replaced since this monitor started, and
        whether the engine drains."""
        restarts = {"archivist": self.archivists_restarted, **self.restarts}
        if self.wired().desks:
            restarts["room_desk"] = self.desks_restarted
        return {"hosts": len(self.placement.hosts), "restarts": restarts, "draining": self.draining}

    def _status(self, reply_to: ReplyTo | None) -> None:
        counts: dict[str, int] = {}
        for live in self.live.values():
            counts[live.state] = counts.get(live.state, 0) + 1
        failing = sum(1 for h in self.failing_journals if h in self.placement.hosts)
        self.reply(reply_to, Status(conversations=counts, storage={"failing_journals": failing}))
