"""The TopicMonitor's side of its Archivists: work sent, answers passed on, a new one if one dies.

:class:`ArchivistParent` is the part of the TopicMonitor that talks to its children, the
pool of ``placement.archivists`` :class:`~actors.archivist.Archivist` actors. Work is
partitioned by a stable hash (``domain.routing.partition_of``, CRC-32, the same in every
process and run, over the pool as it is: only archivist 0 while the pool starts):
everything about one conversation (its closing, its late events, its archived activities and
reads) goes to the archivist its id hashes to, so that one conversation's writes stay in
order; a customer's first contact (identity and new room) to the one its customer id hashes
to. Room get-or-create is decided by the monitor alone (``RoomDesk``), which is what keeps one
live conversation per room; the archivists only store what it decided. Archivist 0 opens (on
new storage: creates) the archive; the others start once it has, so that no two create it.

A closing conversation's archive transaction does not pass through here: the conversation sends
its ``ArchiveRequest`` straight to its Archivist (``Wiring.archivist_of``, the same hash over
the addresses this part keeps in the wiring), which answers it ``ArchiveDone`` or
``ArchiveFailed`` and tells the monitor only the outcome (``ArchiveOutcome``). Whenever the
pool changes (it starts, an Archivist is replaced) every conversation host is told the new
addresses (``ArchivistsMoved``), and a conversation still CLOSING whose request went to an
address no longer in the pool asks the new Archivist: a request lost with a dead Archivist is
asked again, and a conversation stays CLOSING until its archive has confirmed.

Every other request goes with a job id (the call id of a ``ReplyTo`` of the monitor) and a
record of what to do with the answer:

- a customer's first contact: :meth:`ArchivistParent.first_contact_stored`, implemented by
  the monitor (the sessions waiting for it are opened, or refused as the archive refused it);
- a caller's read or archived activity: the answer goes to the caller as it is;
- late events: nothing to answer; sent again to a new Archivist if the old one died.

When an Archivist dies, a new one takes its place (the same partition) and every job still
open with it is answered ``unavailable`` (late events: sent again), so that nothing waits for
an answer that will not come.

With ``storage.postgres`` an Archivist is started on the live node offering archivists that
has the fewest of them per unit of weight (before any node reported: here). When a node is
declared dead its Archivists are replaced as if they had exited: a closing conversation whose
archive transaction was in flight asks the new one, which stores nothing twice (the archive's
writes are keyed by conversation and event sequence: ``infra.archive_pg``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Any

import structlog

from actors.archivist import Archivist
from actors.base import EngineActor
from actors.messages import (
    AlarmAt,
    ArchivedActivity,
    ArchivedQuery,
    ArchiveLateRequest,
    ArchiveOutcome,
    ArchivistsMoved,
    CreateRoom,
    Failure,
    ForgetCustomer,
    PostToRoom,
    Ref,
    Reply,
    ReplyTo,
    RoomQuery,
    StoreIdentity,
)
from actors.nodes import create_on_node
from actors.placement import Nodes
from domain.errors import ErrorKind
from domain.membership import Capacity, Work
from domain.routing import partition_of

log = structlog.get_logger("cx.monitor")


@dataclass(frozen=True, slots=True)
class _CallerJob:
    """A caller's read or archived activity: the answer is passed on to it."""

    caller: ReplyTo | None


@dataclass(frozen=True, slots=True)
class _FirstContact:
    customer_id: str


@dataclass(frozen=True, slots=True)
class _Late:
    request: ArchiveLateRequest


@dataclass(frozen=True, slots=True)
class _Forget:
    """A customer's data being deleted: the caller gets the answer, and the customer's
    sessions held meanwhile are opened."""

    customer_id: str
    caller: ReplyTo | None


_Job = _CallerJob | _FirstContact | _Late | _Forget

STOPPED = "the archive's writer stopped while doing this; it may or may not be stored: retry"


class ArchivistParent(EngineActor):
    def __init__(self) -> None:
        super().__init__()
        self.archivists: list[Any] = []  # by partition; only archivist 0 until the archive opens
        self.archivist_nodes: list[str | None] = []  # by partition: the node it runs on
        self.archivist_places = Nodes(Work.ARCHIVISTS)  # live nodes offering archivists
        # sent to an Archivist, by job id, not answered yet: the job and its archivist's index
        self.jobs: dict[str, tuple[_Job, int]] = {}
        self._job_ids = itertools.count(1)
        self.archivists_restarted = 0  # Archivists that exited and were replaced
        self.closings_archived = 0  # ArchiveOutcome: closings committed, and refused for good
        self.closings_refused = 0

    def first_contact_stored(self, customer_id: str, answer: Reply | Failure) -> None:
        """The Archivist stored the customer's first contact (``Reply``) or refused it."""
        raise NotImplementedError

    def customer_forgotten(self, customer_id: str) -> None:
        """The Archivist answered a ``ForgetCustomer`` (done or refused)."""
        raise NotImplementedError

    def conversation_hosts(self) -> list[Any]:
        """The addresses of the conversation hosts, which must know where the Archivists are."""
        raise NotImplementedError

    def first_archivist(self) -> None:
        """Start archivist 0, which opens (on new storage: creates) the archive."""
        self.archivists, self.archivist_nodes = [], []
        self._add_archivist()
        self._archivists_moved()

    def more_archivists(self) -> None:
        """The archive is open: start the rest of the pool (``placement.archivists``)."""
        wanted = self.wired().settings.placement.archivists
        while len(self.archivists) < wanted:
            self._add_archivist()
        self._archivists_moved()

    def _archivists_moved(self) -> None:
        """The wiring names the pool as it is now; every conversation host learns it."""
        self.wiring = replace(self.wired(), archivists=tuple(self.archivists))
        moved = ArchivistsMoved(self.wiring.archivists)
        for address in self.conversation_hosts():
            self.send(address, moved)

    def archivists_node_up(self, node: str, capacity: Capacity) -> None:
        self.archivist_places.up(node, capacity)

    def archivists_node_down(self, node: str) -> int:
        """``node`` takes no new Archivist; each one it held is replaced. How many were."""
        self.archivist_places.down(node)
        lost = [a for a, on in zip(self.archivists, self.archivist_nodes, strict=True) if on == node]
        for address in lost:
            self.archivist_exited(address)
        return len(lost)

    def _add_archivist(self) -> None:
        address, node = self._new_archivist()
        self.archivists.append(address)
        self.archivist_nodes.append(node)

    def is_archivist(self, address: Any) -> bool:
        return any(address == a for a in self.archivists)

    def _new_archivist(self) -> tuple[Any, str | None]:
        node = None
        if self.wired().settings.storage.postgres is not None:
            node = self.archivist_places.choose(self.archivist_nodes)
        address, node = create_on_node(self, Archivist, node, "archivist")
        self.send(address, self.wired())
        if node is not None:
            log.info("archivist_placed", node=node)
        return address, node

    def archive_work(self, payload: Any, reply_to: ReplyTo | None) -> bool:
        """Send ``payload`` to its Archivist if it is archive work; False if it is not."""
        if isinstance(payload, ArchiveOutcome):
            self._closing_outcome(payload)
        elif isinstance(payload, ArchiveLateRequest):
            self._to_archivist(payload, _Late(payload), payload.conversation_id)
        elif isinstance(payload, ArchivedActivity):
            self._to_archivist(payload, _CallerJob(reply_to), payload.conversation_id)
        elif isinstance(payload, ArchivedQuery):
            self._to_archivist(payload, _CallerJob(reply_to), payload.id)
        elif isinstance(payload, CreateRoom | PostToRoom | RoomQuery):
            self._to_archivist(payload, _CallerJob(reply_to), payload.key)
        else:
            return False
        return True

    def _closing_outcome(self, outcome: ArchiveOutcome) -> None:
        """An Archivist answered a closing conversation itself; the monitor counts it."""
        if outcome.archived:
            self.closings_archived += 1
            return
        self.closings_refused += 1
        log.error("archive_failed", conversation_id=outcome.conversation_id, error=outcome.problem)

    def forget_in_archive(self, request: ForgetCustomer, reply_to: ReplyTo | None) -> None:
        """To the archivist of the customer, as their first contact: in order with it."""
        job = _Forget(request.customer_id, reply_to)
        self._to_archivist(request, job, request.customer_id)

    def store_first_contact(self, request: StoreIdentity) -> None:
        self._to_archivist(request, _FirstContact(request.customer_id), request.customer_id)

    def archivist_answered(self, answer: Reply | Failure) -> None:
        sent = self.jobs.pop(answer.call_id, None)
        if sent is not None:  # else: answered already, when its Archivist was replaced
            self._settle(sent[0], answer)

    def archivist_exited(self, address: Any) -> None:
        """A new Archivist takes the dead one's partition and the hosts learn its address (a
        closing conversation that asked the dead one asks it); every job of the dead one is
        answered refused (a caller retries) and late events are sent again. The other
        archivists' jobs go on."""
        index = next(i for i, a in enumerate(self.archivists) if a == address)
        lost = {call_id: job for call_id, (job, at) in self.jobs.items() if at == index}
        log.error("actor_restarted", actor="Archivist", partition=index, jobs=len(lost))
        self.archivists_restarted += 1
        clock = self.wired().clock
        if clock is not None:  # virtual clock: its retry alarm died with it
            self.send(clock, AlarmAt(address, None))
        for call_id in lost:
            del self.jobs[call_id]
        self.archivist_nodes[index] = None  # not counted where it was when choosing
        self.archivists[index], self.archivist_nodes[index] = self._new_archivist()
        self._archivists_moved()
        for job in lost.values():
            if isinstance(job, _Late):
                self._to_archivist(job.request, job, job.request.conversation_id)
            else:
                self._settle(job, Failure("", ErrorKind.UNAVAILABLE, STOPPED))

    def _to_archivist(self, payload: Any, job: _Job, key: str) -> None:
        """Send to the archivist ``key`` hashes to (archivist 0 while the pool is starting)."""
        index = partition_of(key, len(self.archivists))
        call_id = f"archive-{next(self._job_ids)}"
        self.jobs[call_id] = (job, index)
        self.post(Ref(self.archivists[index], ""), payload, ReplyTo(self.myAddress, call_id))

    def _settle(self, job: _Job, answer: Reply | Failure) -> None:
        if isinstance(job, _Forget):
            self.customer_forgotten(job.customer_id)
            job = _CallerJob(job.caller)
        if isinstance(job, _CallerJob):
            if isinstance(answer, Reply):
                self.reply(job.caller, answer.value)
            elif job.caller is not None:
                self.fail(job.caller, replace(answer, call_id=job.caller.call_id))
        elif isinstance(job, _FirstContact):
            self.first_contact_stored(job.customer_id, answer)
        elif isinstance(answer, Failure):
            log.error(
                "late_archive_failed",
                conversation_id=job.request.conversation_id,
                error=answer.message,
            )
