"""The Archivist: every write to the archive, off the TopicMonitor's path.

The TopicMonitor creates it (a new one if it dies) and sends it work, each request with a
``ReplyTo`` of the monitor and a job id; the Archivist answers each job with ``Reply`` or
``Failure`` under that id, and the monitor passes the answer on. A closing conversation
asks it directly:

- a closing conversation's archive transaction (``ArchiveRequest``, from the conversation),
  answered to the conversation itself with ``ArchiveDone`` (the sequence number written
  through) once it has committed, the TopicMonitor told only the outcome
  (``ArchiveOutcome``); and late events of an archived conversation (``ArchiveLateRequest``,
  through the monitor). Both wait here while the archive refuses writes (locked, read-only,
  disk full) and are retried on this actor's own alarm with a backoff
  (``RETRY_BACKOFF_MS``): one failed attempt holds every waiting write back until the next
  retry, so a locked archive costs one attempt per retry however many conversations wait.
  A conversation asked again while waiting is written once, with its fuller snapshot, and
  answered once, where it asked from last (events beyond what was written are appended
  later: the answer says through which sequence number it was written). The closings that
  wait are written together, up to ``SLICE`` in one transaction (group commit), and each is
  answered only once that transaction has committed: a group the archive refuses answers
  none of them. A long backlog is written ``SLICE`` at a time.
- a customer's first contact (``StoreIdentity``: the identity, and the new room with it, in
  one transaction), an activity added to an archived conversation (``ArchivedActivity``) and
  reads of what is archived (``ArchivedQuery``): one attempt each, because a caller waits;
  whatever the archive refuses is answered ``unavailable`` and stores nothing.

Each attempt waits at most ``BUSY_TIMEOUT_MS`` for SQLite's lock, so that no attempt holds
this actor long; it never sleeps. A successful write while retries wait (the archive is back)
writes what waits at once.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import structlog

from actors.archivist_rooms import room_answer, room_posted
from actors.figures import WriteTally
from actors.inventory import customer_rooms
from actors.messages import (
    ArchivedActivity,
    ArchiveDone,
    ArchivedQuery,
    ArchiveFailed,
    ArchiveLateRequest,
    ArchiveNext,
    ArchiveOpened,
    ArchiveOutcome,
    ArchiveRequest,
    CreateRoom,
    Deliver,
    ForgetCustomer,
    PostToRoom,
    Ref,
    ReplyTo,
    RoomQuery,
    StoreIdentity,
)
from actors.nodes import fits
from actors.snapshots import event_dict, record_dict
from actors.timed import TimedActor
from domain.enums import EventType, RoomMode, RoomType
from domain.errors import CxError, ErrorKind
from domain.events import RESERVED_NAMES
from domain.records import SYSTEM, Event
from infra.archive_errors import StorageError
from infra.archive_rows import RoomRecord
from infra.archive_store import ArchiveStore, open_archive

log = structlog.get_logger("cx.archivist")

#: What is done in one attempt, because a caller waits.
_AtOnce = (
    StoreIdentity | ArchivedActivity | ArchivedQuery | ForgetCustomer
    | CreateRoom | PostToRoom | RoomQuery
)  # fmt: skip

#: SQLite's busy timeout of one attempt: how long a locked archive can hold this actor.
BUSY_TIMEOUT_MS = 50
#: Waits between attempts at the writes that wait; the last one repeats.
RETRY_BACKOFF_MS = (250, 500, 1_000, 2_000, 5_000)
#: Writes done for one message before the rest is taken up again (ArchiveNext); also the
#: most closings written in one transaction.
SLICE = 50
RETRY = ("ARCHIVE_RETRY",)


@dataclass(slots=True)
class _Closing:
    request: ArchiveRequest  # the fullest snapshot asked; answered where the last one came from
    conversation: Ref


class Archivist(TimedActor):
    # Placed on a named node by requirements (actors.nodes.node_requirements).
    actorSystemCapabilityCheck = staticmethod(fits)  # noqa: N815 (Thespian's name)

    def __init__(self) -> None:
        super().__init__()
        self.archive: ArchiveStore | None = None
        self.closings: dict[str, _Closing] = {}  # by conversation id, oldest first
        self.late: deque[tuple[ArchiveLateRequest, ReplyTo | None]] = deque()
        self.failures = 0  # failed attempts in a row
        self.waiting = False  # a retry is armed: nothing is tried before it fires
        self._retry_token = 0
        self._next_sent = False  # an ArchiveNext is on its way
        self._arrived = False  # this message brought writes that wait: done before sending
        self.tally = WriteTally()  # the archive writes of closings and late events

    def on_wired(self, sender: Any) -> None:
        """Open the archive (creating it on new storage) and tell the TopicMonitor, which reads
        it through a connection of its own that never creates or writes anything."""
        problem = None
        try:
            self._storage()
        except StorageError as error:  # opened again at the next attempt
            log.error("archive_unavailable", error=str(error))
            problem = str(error)
        self.send(sender, ArchiveOpened(problem))

    def on_exit(self) -> None:
        if self.archive is not None:
            self.archive.close()
            self.archive = None

    def _storage(self) -> ArchiveStore:
        if self.archive is None:
            storage = self.wired().settings.storage
            self.archive = open_archive(storage, busy_timeout_ms=BUSY_TIMEOUT_MS)
        return self.archive

    def figures(self) -> dict[str, Any]:
        """Its archive writes, and how many wait (for a retry or their turn)."""
        waiting = len(self.closings) + len(self.late)
        return {"archive": self.tally.as_dict(), "archive_waiting": waiting}

    # ------------------------------------------------------------------ entry

    def on_message(self, message: Any, sender: Any) -> None:
        if isinstance(message, ArchiveNext):
            self._next_sent = False
            self._write_waiting()
        else:
            super().on_message(message, sender)

    def on_deliver(self, item: Deliver, sender: Any) -> None:
        payload, reply_to = item.payload, item.reply_to
        if isinstance(payload, ArchiveRequest):
            conversation_id = payload.record.id
            closing = self.closings.get(conversation_id)
            if closing is None:
                closing = self.closings[conversation_id] = _Closing(payload, payload.conversation)
            if len(payload.events) >= len(closing.request.events):
                closing.request = payload  # the fuller snapshot is written
            closing.conversation = payload.conversation  # rebuilt elsewhere: its new place
            self._arrived = True
        elif isinstance(payload, ArchiveLateRequest):
            self.late.append((payload, reply_to))
            self._arrived = True
        elif isinstance(payload, _AtOnce):
            try:
                self._at_once(payload, reply_to)
            except StorageError as error:
                log.warning("archive_refused", request=type(payload).__name__, error=str(error))
                self.refuse(reply_to, ErrorKind.UNAVAILABLE, _refused(payload, error))
        else:
            self.refuse(
                reply_to,
                ErrorKind.BAD_ARGUMENT,
                f"Archivist cannot handle {type(payload).__name__}",
            )

    def before_send(self) -> None:
        """What this message brought (a batch of closings) is written together, group commit."""
        if self._arrived:
            self._arrived = False
            try:
                self._write_waiting()
            except Exception:  # a defect: logged; what waits is tried again with the next write
                log.exception("archive_write_failed")

    def on_alarm(self, key: Hashable, payload: Any) -> None:
        if key == RETRY and payload == self._retry_token and self.waiting:
            self.waiting = False
            self._write_waiting()

    # ------------------------------------------------------------------ writes that wait

    def _write_waiting(self) -> None:
        if self.waiting:
            return
        written = 0
        while self.closings or self.late:
            if written >= SLICE:
                if not self._next_sent:
                    self._next_sent = True
                    self.send(self.myAddress, ArchiveNext())
                return
            done = self._write_closings(SLICE) if self.closings else self._write_late()
            if done == 0:
                return
            written += done
        self.failures = 0

    def _write_closings(self, group: int) -> int:
        """Write the oldest ``group`` waiting closings in one transaction (group commit) and
        answer each once it has committed; 0 if the archive refused (none is answered, all
        wait for the retry armed). A snapshot at fault fails its whole group: the oldest is
        then written alone, and the rest in the next group."""
        batch = list(itertools.islice(self.closings.items(), group))
        snapshots = [(c.request.record, c.request.events) for _, c in batch]
        try:
            with self.tally.timed(len(snapshots)):
                self._storage().store_conversations(snapshots)
        except StorageError as error:
            self._back_off(batch[0][0], error)
            return 0
        except ValueError as error:  # a request's own fault: retrying it cannot help
            if len(batch) > 1:
                return self._write_closings(1)
            self._refused_for_good(*batch[0], error)
            return 1
        for conversation_id, closing in batch:
            del self.closings[conversation_id]
            through_seq = max((e.seq for e in closing.request.events), default=0)
            self.post(closing.conversation, ArchiveDone(through_seq))
            self.post(Ref(self.wired().monitor, ""), ArchiveOutcome(conversation_id, True))
        return len(batch)

    def _refused_for_good(self, conversation_id: str, closing: _Closing, error: Exception) -> None:
        del self.closings[conversation_id]
        log.error("archive_refused", conversation_id=conversation_id, error=str(error))
        problem = f"conversation {conversation_id}: {error}"
        self.post(closing.conversation, ArchiveFailed(problem))
        self.post(Ref(self.wired().monitor, ""), ArchiveOutcome(conversation_id, False, problem))

    def _write_late(self) -> int:
        """Write the oldest late events; 0 if the archive refused (a retry is armed)."""
        late, caller = self.late[0]
        try:
            with self.tally.timed():
                self._storage().append_events(late.conversation_id, late.events)
        except StorageError as error:
            self._back_off(late.conversation_id, error)
            return 0
        except (KeyError, ValueError) as error:
            log.error(
                "late_archive_refused", conversation_id=late.conversation_id, error=str(error)
            )
        self.late.popleft()
        self.reply(caller)
        return 1

    def _back_off(self, conversation_id: str, error: StorageError) -> None:
        delay = RETRY_BACKOFF_MS[min(self.failures, len(RETRY_BACKOFF_MS) - 1)]
        self.failures += 1
        self._retry_token += 1
        self.waiting = True
        self.alarms.arm(RETRY, self._retry_token, self.now() + delay, self._retry_token)
        log.warning(
            "archive_unavailable",
            conversation_id=conversation_id,
            waiting=len(self.closings) + len(self.late),
            attempt=self.failures,
            retry_in_ms=delay,
            error=str(error),
        )

    def _archive_is_back(self) -> None:
        """A write just committed: what waits for a retry is written now."""
        if self.waiting:
            self.alarms.disarm(RETRY)
            self.waiting = False
            self.failures = 0
            self._write_waiting()

    # ------------------------------------------------------------------ one attempt each

    def _at_once(self, payload: _AtOnce, reply_to: ReplyTo | None) -> None:
        if isinstance(payload, StoreIdentity):
            self._store_identity(payload, reply_to)
        elif isinstance(payload, ForgetCustomer):
            forgotten = self._storage().forget_customer(payload.customer_id)
            log.info("customer_forgotten", customer_id=payload.customer_id, **forgotten)
            self.reply(reply_to, forgotten)
        elif isinstance(payload, ArchivedActivity):
            self._activity(payload, reply_to)
        elif isinstance(payload, CreateRoom | PostToRoom | RoomQuery):
            try:
                answer = room_answer(self._storage(), payload, self.now())
            except StorageError:
                raise
            except CxError as refusal:
                self.refuse(reply_to, refusal.kind, str(refusal))
                return
            self.reply(reply_to, answer)
            if isinstance(payload, PostToRoom):  # pushed to the members' desks as it is kept
                posted = room_posted(self._storage(), payload, answer["seq"], self.now())
                self.post(Ref(self.wired().agents, ""), posted)
        else:
            self._query(payload, reply_to)

    def _store_identity(self, request: StoreIdentity, reply_to: ReplyTo | None) -> None:
        room = None
        if request.room_id is not None:
            room = RoomRecord(
                request.room_id,
                RoomType.CUSTOMER,
                RoomMode.CONTACT_CENTER,
                request.customer_id,
                request.room_created_at,
            )
        try:
            self._storage().record_customer_identity(
                request.customer_id, request.channel, request.identifier, new_room=room
            )
        except ValueError as error:  # another contact-center room came first: look again
            self.refuse(reply_to, ErrorKind.UNAVAILABLE, f"start_session not done: {error}; retry")
            return
        self.reply(reply_to)
        self._archive_is_back()

    def _activity(self, request: ArchivedActivity, reply_to: ReplyTo | None) -> None:
        archive = self._storage()
        record = archive.conversation(request.conversation_id)
        if record is None:
            self.refuse(
                reply_to, ErrorKind.UNKNOWN_ID, f"no conversation {request.conversation_id}"
            )
            return
        if (
            not isinstance(request.name, str)
            or not 0 < len(request.name) <= 64
            or request.name in RESERVED_NAMES
        ):
            self.refuse(
                reply_to,
                ErrorKind.BAD_ARGUMENT,
                f"add_activity refused on conversation {record.id} in state CLOSED: "
                f"name {request.name!r} must be 1 to 64 characters and not an engine event name",
            )
            return
        seq = archive.last_seq(record.id) + 1
        event = Event(
            record.id,
            record.room_id,
            seq,
            request.name,
            EventType.ACTIVITY,
            self.now(),
            SYSTEM,
            None,
            request.data,
        )
        archive.append_events(record.id, [event])
        self.reply(reply_to, seq)
        self._archive_is_back()

    def _query(self, query: ArchivedQuery, reply_to: ReplyTo | None) -> None:
        archive = self._storage()
        if query.kind == "customer":
            rooms = customer_rooms(archive, query.id)
            if rooms is None:
                self.refuse(reply_to, ErrorKind.UNKNOWN_ID, f"no customer {query.id} in the archive")
            else:
                self.reply(reply_to, rooms)
            return
        if query.kind == "history":
            if archive.room(query.id) is None:
                self.refuse(reply_to, ErrorKind.UNKNOWN_ID, f"room {query.id} does not exist")
                return
            history = []
            for past in archive.room_conversations(query.id):
                item = record_dict(past)
                item["events"] = [event_dict(e) for e in archive.events(past.id)]
                history.append(item)
            self.reply(reply_to, history)
            return
        if query.kind == "events":
            # the events alone (one query); the conversation only to tell "none yet" from unknown
            events = archive.events(query.id, query.after_seq)
            if events or archive.has_conversation(query.id):
                self.reply(reply_to, [event_dict(e) for e in events])
            else:
                self.refuse(reply_to, ErrorKind.UNKNOWN_ID, f"no conversation {query.id}")
            return
        record = archive.conversation(query.id)
        if record is None:
            self.refuse(reply_to, ErrorKind.UNKNOWN_ID, f"no conversation {query.id}")
        else:
            self.reply(reply_to, record_dict(record))


def _refused(payload: _AtOnce, error: Exception) -> str:
    if isinstance(payload, ForgetCustomer):
        return (
            f"forget_customer of {payload.customer_id} refused: the archive is unavailable"
            f" ({error}); nothing was deleted: retry"
        )
    if isinstance(payload, StoreIdentity):
        return (
            f"start_session of customer {payload.customer_id} refused: the archive is"
            f" unavailable ({error}); nothing was stored: retry"
        )
    if isinstance(payload, ArchivedActivity):
        return f"archive unavailable, activity not stored: {error}"
    if isinstance(payload, CreateRoom | PostToRoom | RoomQuery):
        return f"{type(payload).__name__} not done: the archive is unavailable ({error}); retry"
    return f"archive unavailable, {payload.kind} of {payload.id} not read: {error}"
