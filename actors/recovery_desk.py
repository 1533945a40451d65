"""The TopicMonitor's part that restores conversations from journals, and what it found.

At start-up (journals left by the previous run) and when a conversation host dies (its
journal), :func:`actors.recovery.plan_recovery` says which conversations to rebuild; each is
registered as live (state ``RESTORING``), placed on a host and sent its records
(``RestoreConversation``). The journals are deleted once every conversation read from them
is back (each host journals its restored conversations' whole history again); a journal
salvaged from damage is moved aside instead, and one holding a conversation that could not be
restored is kept, for a person to look at. What the start-up found is kept in :class:`Boot`
(``BootStatus``, ``Gateway.boot``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import structlog

from actors.messages import Deliver, RestoreConversation, Restored
from actors.placement import HostInfo
from actors.recovery import plan_recovery
from actors.room_desk import Live, RoomDesk
from domain.ids import conversation_entity_id
from infra.archive_errors import StorageError
from infra.archive_store import ArchiveStore
from infra.heap import collector_paused
from infra.journal_records import customer_of, room_of, started_sessions
from infra.journal_store import JournalStore, open_store

log = structlog.get_logger("cx.monitor")

#: The registry's state of a conversation sent to a host to be rebuilt, until it reports.
RESTORING = "RESTORING"
#: A rebuild goes to one more host (up to ``placement.restore_hosts``) for every this many
#: conversations: replaying them takes a host about 0.4 s, more than starting one.
RESTORE_SHARE = 1000
#: Conversations sent to a host in one message: the host journals each such share with one
#: write and answers for it before the next, instead of going quiet for the whole rebuild.
RESTORE_BATCH = 250


@dataclass(slots=True)
class Boot:
    now: int = 0  # the latest journaled time: a virtual clock resumes there
    restored: int = 0
    damage: list[str] = field(default_factory=list)
    error: str | None = None
    refused: list[dict[str, Any]] = field(default_factory=list)  # mid-log damage (Damage)
    salvaged: list[dict[str, Any]] = field(default_factory=list)  # losses (actors.recovery.Loss)


@dataclass(slots=True)
class _Recovery:
    """Writers' journals being replaced by restored copies; deleted once all are back."""

    writers: list[str]
    awaiting: set[str]
    failed: bool = False
    damaged: list[str] = field(default_factory=list)  # salvaged: moved aside, never deleted


class RecoveryDesk(RoomDesk):
    def __init__(self) -> None:
        super().__init__()
        self._recoveries: list[_Recovery] = []
        self._deferred: list[tuple[list[str], bool]] = []  # until the archive is open
        self.boot = Boot()

    def journal_store(self) -> JournalStore:
        return open_store(self.wired().settings.storage)

    def previous_journals(self) -> list[str]:
        """The writers whose journals a previous run left (an unreadable store stops the
        start-up, as a journal of another version does)."""
        try:
            return self.journal_store().writers()
        except StorageError as error:
            log.error("journal_refused", error=str(error))
            self.boot.error = str(error)
            return []

    def recover(self, writers: list[str], *, salvage: bool) -> int:
        """Restore every live conversation journaled by ``writers`` onto hosts; their journals
        are deleted (salvaged damaged ones moved aside) once every one of them is back. The
        number of conversations sent to be restored (0 while the archive is not open yet:
        they are restored by :meth:`recover_deferred` once it is)."""
        if self.archive is None:
            self._deferred.append((writers, salvage))
            return 0
        with collector_paused():  # a burst of records and messages, and no garbage cycles
            return self._rebuild(self.archive, writers, salvage=salvage)

    def _rebuild(self, archive: ArchiveStore, writers: list[str], *, salvage: bool) -> int:
        store = self.journal_store()
        plan = plan_recovery(store, writers, salvage=salvage, archived=archive.has_conversation)
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
        recovery = _Recovery(plan.writers, set(), damaged=plan.damaged)
        placement = self.wired().settings.placement
        width = min(placement.restore_hosts, -(-len(found) // RESTORE_SHARE))
        hosts = self.placement.place_many(len(found), placement.per_host, width)
        deals: dict[str, tuple[HostInfo, list[Deliver]]] = {}
        for (conversation_id, (opened, commands)), host in zip(found.items(), hosts, strict=True):
            sessions = started_sessions(opened, commands)
            live = Live(host, room_of(opened), RESTORING, sessions, customer_id=customer_of(opened))
            self.register(live, conversation_id)
            self.restoring(conversation_id, live)
            recovery.awaiting.add(conversation_id)
            restore = RestoreConversation(opened, tuple(commands))
            deal = deals.setdefault(host.host_id, (host, []))
            deal[1].append(Deliver(conversation_entity_id(conversation_id), restore, None))
        for host, items in deals.values():
            self.post_in_batches(host.address, items, RESTORE_BATCH)
        if deals:
            log.info(
                "restore_dealt",
                conversations=len(hosts),
                hosts={host_id: len(items) for host_id, (_, items) in deals.items()},
                nodes=sorted({host.node or "" for host, _ in deals.values()}),
            )
        self._recoveries.append(recovery)
        self._settle_recoveries()
        return len(recovery.awaiting)

    def restoring(self, conversation_id: str, live: Live) -> None:
        """A conversation registered to be rebuilt on ``live.host`` (the monitor tells its desk)."""

    def sources_of(self, conversation_ids: list[str]) -> list[str]:
        """The writers whose journals those of ``conversation_ids`` still being rebuilt were
        read from: a host that dies before it journaled them again holds nothing of them, so
        they are read again from there (kept until every conversation of theirs is back)."""
        wanted = set(conversation_ids)
        writers: dict[str, None] = {}
        for recovery in self._recoveries:
            if recovery.awaiting & wanted:
                writers.update(dict.fromkeys(recovery.writers))
        return list(writers)

    def recover_deferred(self) -> int:
        """Restore what waited for the archive to open; the number of conversations."""
        deferred, self._deferred = self._deferred, []
        return sum(self.recover(d, salvage=salvage) for d, salvage in deferred)

    def restored(self, restored: Restored) -> None:
        """A host reports a conversation rebuilt (or not)."""
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
            store = self.journal_store()
            still_read = {w for r in self._recoveries for w in r.writers}  # by a rebuild under way
            try:
                for writer in recovery.writers:
                    if writer not in still_read:  # else that rebuild deletes it when it is done
                        store.discard(writer)
                for writer in recovery.damaged:  # kept for a person to look at
                    log.warning("journal_moved_aside", writer=writer, to=store.move_aside(writer))
            except (StorageError, OSError) as error:  # kept: read again by the next start-up
                log.error("journal_not_deleted", error=str(error))
