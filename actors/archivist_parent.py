"""The TopicMonitor's side of its Archivist: work sent, answers passed on, a new one if it dies.

:class:`ArchivistParent` is the part of the TopicMonitor that talks to its child the
:class:`~actors.archivist.Archivist`. Each request goes with a job id (the call id of a
``ReplyTo`` of the monitor) and a record of what to do with the answer:

- a closing conversation's archive transaction: ``ArchiveDone`` to the conversation once the
  Archivist has committed it (it becomes CLOSED), ``ArchiveFailed`` if it was refused for
  good or the Archivist died (it stays CLOSING and asks again after its own backoff);
- a customer's first contact: :meth:`ArchivistParent.first_contact_stored`, implemented by
  the monitor (the sessions waiting for it are opened, or refused as the archive refused it);
- a caller's read or archived activity: the answer goes to the caller as it is;
- late events: nothing to answer; sent again to a new Archivist if the old one died.

When the Archivist dies, a new one is started and every job still open is answered
``unavailable`` (late events: sent again), so that nothing waits for an answer that will not
come.
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
    ArchiveDone,
    ArchivedQuery,
    ArchiveFailed,
    ArchiveLateRequest,
    ArchiveRequest,
    Failure,
    Ref,
    Reply,
    ReplyTo,
    StoreIdentity,
)
from domain.errors import ErrorKind

log = structlog.get_logger("cx.monitor")


@dataclass(frozen=True, slots=True)
class _CallerJob:
    """A caller's read or archived activity: the answer is passed on to it."""

    caller: ReplyTo | None


@dataclass(frozen=True, slots=True)
class _ClosingJob:
    conversation: Ref
    conversation_id: str


@dataclass(frozen=True, slots=True)
class _FirstContact:
    customer_id: str


@dataclass(frozen=True, slots=True)
class _Late:
    request: ArchiveLateRequest


_Job = _CallerJob | _ClosingJob | _FirstContact | _Late
STOPPED = "the archive's writer stopped while doing this; it may or may not be stored: retry"


class ArchivistParent(EngineActor):
    def __init__(self) -> None:
        super().__init__()
        self.archivist: Any = None
        self.jobs: dict[str, _Job] = {}  # sent to the Archivist, by job id, not answered yet
        self._job_ids = itertools.count(1)

    def first_contact_stored(self, customer_id: str, answer: Reply | Failure) -> None:
        """The Archivist stored the customer's first contact (``Reply``) or refused it."""
        raise NotImplementedError

    def new_archivist(self) -> None:
        self.archivist = self.createActor(Archivist)
        self.send(self.archivist, self.wired())

    def archive_work(self, payload: Any, reply_to: ReplyTo | None) -> bool:
        """Send ``payload`` to the Archivist if it is archive work; False if it is not."""
        if isinstance(payload, ArchiveRequest):
            self._to_archivist(payload, _ClosingJob(payload.conversation, payload.record.id))
        elif isinstance(payload, ArchiveLateRequest):
            self._to_archivist(payload, _Late(payload))
        elif isinstance(payload, ArchivedQuery | ArchivedActivity):
            self._to_archivist(payload, _CallerJob(reply_to))
        else:
            return False
        return True

    def store_first_contact(self, request: StoreIdentity) -> None:
        self._to_archivist(request, _FirstContact(request.customer_id))

    def archivist_answered(self, answer: Reply | Failure) -> None:
        job = self.jobs.pop(answer.call_id, None)
        if job is not None:  # else: answered already, when its Archivist was replaced
            self._settle(job, answer)

    def archivist_exited(self, address: Any) -> None:
        """A new Archivist takes over; every job of the old one is answered refused (a closing
        conversation asks again, a caller retries) and late events are sent again."""
        log.error("actor_restarted", actor="Archivist", jobs=len(self.jobs))
        clock = self.wired().clock
        if clock is not None:  # virtual clock: its retry alarm died with it
            self.send(clock, AlarmAt(address, None))
        jobs, self.jobs = self.jobs, {}
        self.new_archivist()
        for job in jobs.values():
            if isinstance(job, _Late):
                self._to_archivist(job.request, job)
            else:
                self._settle(job, Failure("", ErrorKind.UNAVAILABLE, STOPPED))

    def _to_archivist(self, payload: Any, job: _Job) -> None:
        call_id = f"archive-{next(self._job_ids)}"
        self.jobs[call_id] = job
        self.post(Ref(self.archivist, ""), payload, ReplyTo(self.myAddress, call_id))

    def _settle(self, job: _Job, answer: Reply | Failure) -> None:
        if isinstance(job, _CallerJob):
            if isinstance(answer, Reply):
                self.reply(job.caller, answer.value)
            elif job.caller is not None:
                self.fail(job.caller, replace(answer, call_id=job.caller.call_id))
        elif isinstance(job, _ClosingJob):
            if isinstance(answer, Reply):
                self.post(job.conversation, ArchiveDone(answer.value))
            else:
                log.error(
                    "archive_failed", conversation_id=job.conversation_id, error=answer.message
                )
                self.post(job.conversation, ArchiveFailed(answer.message))
        elif isinstance(job, _FirstContact):
            self.first_contact_stored(job.customer_id, answer)
        elif isinstance(answer, Failure):
            log.error(
                "late_archive_failed",
                conversation_id=job.request.conversation_id,
                error=answer.message,
            )
