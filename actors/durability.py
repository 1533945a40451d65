"""What a conversation host does when its journal cannot be written.

Nothing is acknowledged that is not durable. A host writes the records of everything it did
while handling one Thespian message with one write, before any reply or message leaves it
(:meth:`Host.before_send`). When that write (or the fsync the policy asks for) fails:

1. nothing that the message produced leaves the host: every reply and every message to other
   actors is dropped;
2. every caller of that message gets ``unavailable`` (storage failed, nothing was applied), an
   agent's join its failed outcome, and the TopicMonitor learns of sessions that were neither
   opened nor joined (:class:`~actors.messages.NotApplied`), so that a retry is a new attempt
   and never a duplicate;
3. every conversation the message touched is put back as its journal on disk has it: rebuilt
   from its durable records like a conversation restored after a crash (a conversation that
   was being opened or restored by the message is simply not there);
4. the host is *failing*: until a probe write and fsync succeed (:meth:`Journal.probe`,
   every :data:`PROBE_MS` on the host's alarm heap, so under the virtual clock too), commands
   are refused with ``unavailable`` before they touch anything, and what cannot be refused
   (timer alarms, an archive's confirmation, a restore) is parked and handled once the disk
   takes writes again. The TopicMonitor is told when the host starts and stops failing, and
   ``cx status`` counts failing journals.

A journal that cannot even be read while it fails (a PostgreSQL server that is down) cannot
say what step 3 needs: the touched conversations are taken off the host, refused
``unavailable`` meanwhile, and rebuilt from the journal once a probe succeeds, before the
parked items are handled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from actors.alarms import AlarmHeap
from actors.context import Entity, HostContext
from actors.figures import WriteTally
from actors.messages import (
    Alarm,
    Apply,
    ArchiveDone,
    Failure,
    JoinSession,
    NotApplied,
    OpenConversation,
    Ref,
    ReplyTo,
    RestoreConversation,
    StorageHealth,
    SubscribeOutcome,
    SubscribeRequest,
)
from actors.recovery import Seen, by_conversation
from actors.restore import Rebuilt
from domain.errors import ErrorKind
from domain.ids import conversation_entity_id, conversation_id_of
from infra.journal import JournalWriteFailed
from infra.journal_records import Record, conversation_of
from infra.journal_segment import JournalError, JournalUnreadable
from infra.journal_store import Journal

log = structlog.get_logger("cx.durability")

PROBE_MS = 1000
#: The host's own alarm for probing a failing journal (no entity has the empty id).
PROBE_KEY = ("", "JOURNAL_PROBE")

Item = tuple[str, Any, ReplyTo | None]

#: Payloads that would change a conversation and so need the journal: refused while it fails.
_REFUSED = (Apply, JoinSession, SubscribeRequest, OpenConversation)
#: Payloads nobody can be asked to send again: kept until the journal takes writes.
_PARKED = (Alarm, ArchiveDone, RestoreConversation)


class DurableHost(HostContext, Protocol):
    """What :class:`Durability` needs of its host (:class:`~actors.host.Host`) beyond what
    an entity may do: its alarm heap, dropping what a message produced, and taking a
    conversation off and putting it back as its journal has it."""

    host_id: str
    alarms: AlarmHeap

    def discard_output(self) -> None: ...
    def enqueue(self, items: list[Item]) -> None: ...
    def conversation_of(self, entity_id: str) -> str | None: ...
    def evict(self, conversation_id: str) -> tuple[Entity | None, list[Entity]]: ...
    def reinstate(
        self,
        opened: Record,
        commands: list[Record],
        *,
        journal_again: bool,
        previous: tuple[Entity | None, list[Entity]] | None = None,
    ) -> Rebuilt: ...


@dataclass
class Durability:
    host: DurableHost
    journal: Journal
    handled: list[Item] = field(default_factory=list)  # this Thespian message's mailbox items
    parked: list[Item] = field(default_factory=list)
    probes: int = 0  # the probe alarm's token
    # conversations taken off while their journal could not be read: rebuilt once it can
    # (conversation id -> the entities taken off); their entities' ids, refused meanwhile
    unrebuilt: dict[str, tuple[Entity | None, list[Entity]]] = field(default_factory=dict)
    _waiting: set[str] = field(default_factory=set)
    tally: WriteTally = field(default_factory=WriteTally)  # the journal writes, for the metrics

    def __post_init__(self) -> None:
        if self.failing:  # a journal that could not start (its server unreachable)
            self._report()

    @property
    def failing(self) -> bool:
        return self.journal.failure is not None

    def admit(self, item: Item) -> bool:
        """While the journal fails: whether the host may hand this item to its entity (it
        then remembers it in :attr:`handled`, as it does every item while the journal works,
        for :meth:`flush` to undo)."""
        entity_id, payload, _ = item
        if isinstance(payload, _PARKED):
            self.parked.append(item)
            return False
        creates = isinstance(payload, OpenConversation)
        known = self.host.has(entity_id) or entity_id in self._waiting
        if isinstance(payload, _REFUSED) and (creates or known):
            self._answer(item, self.journal.failure)
            return False
        return True

    def flush(self) -> None:
        """Write the journal before anything leaves; undo the message if the write fails."""
        handled = self.handled.copy()  # the host appends to this very list
        self.handled.clear()
        was_failing = self.failing
        try:
            if self.journal.pending:
                with self.tally.timed():
                    self.journal.flush()
            else:
                self.journal.flush()
        except JournalWriteFailed as error:
            self._undo(handled, str(error))
            if not was_failing:
                self._report()

    def tick(self) -> None:
        """On every real-time wakeup: sync what the interval policy says is due, and compact
        the journal once archived conversations' records have been in it long enough."""
        if self.failing:
            return
        try:
            self.journal.sync_if_due()
        except JournalWriteFailed:
            self._report()
            return
        if self.journal.compaction_due() and self.journal.compact():
            log.debug("journal_compacted", host=self.host.host_id)

    def probe(self) -> None:
        """The probe alarm: a failing journal that takes writes again ends the failure."""
        if not self.failing:
            return
        if self.journal.probe():
            self._recovered()
        else:
            self._arm_probe()

    def hint_ms(self) -> int | None:
        return None if self.failing else self.journal.sync_due_in_ms()

    # ------------------------------------------------------------------ internals

    def _report(self) -> None:
        host = self.host
        log.error("journal_failing", host=host.host_id, problem=self.journal.failure)
        host.post(Ref(host.wired().monitor, ""), StorageHealth(host.host_id, self.journal.failure))
        self._arm_probe()

    def _arm_probe(self) -> None:
        host = self.host
        self.probes += 1
        host.alarms.arm(PROBE_KEY, self.probes, host.now() + PROBE_MS, Alarm(PROBE_KEY, 0, 100))

    def _recovered(self) -> None:
        host = self.host
        if self.unrebuilt:
            unrebuilt, self.unrebuilt = self.unrebuilt, {}
            self._waiting.clear()
            self._rebuild(unrebuilt)
        parked, self.parked = self.parked, []
        log.warning("journal_recovered", host=host.host_id, parked=len(parked))
        host.post(Ref(host.wired().monitor, ""), StorageHealth(host.host_id, None))
        host.enqueue(parked)

    def _answer(self, item: Item, problem: str | None) -> None:
        """Tell whoever waits on this item that nothing was applied."""
        entity_id, payload, reply_to = item
        host = self.host
        message = (
            f"storage failed: the journal of host {host.host_id} cannot be written ({problem});"
            " nothing was applied: retry later"
        )
        host.refuse(reply_to, ErrorKind.UNAVAILABLE, message)
        monitor = Ref(host.wired().monitor, "")
        if isinstance(payload, SubscribeRequest):
            call_id = payload.origin.call_id if payload.origin is not None else ""
            host.post(
                payload.agent,
                SubscribeOutcome(
                    conversation_id_of(entity_id),
                    host.ref(entity_id),
                    payload.request_id,
                    False,
                    Failure(call_id, ErrorKind.UNAVAILABLE, message),
                    payload.origin,
                ),
            )
        elif isinstance(payload, OpenConversation):
            host.post(monitor, NotApplied(payload.conversation_id, payload.first.session_id, True))
        elif isinstance(payload, JoinSession):
            host.post(
                monitor, NotApplied(conversation_id_of(entity_id), payload.start.session_id, False)
            )

    def _undo(self, handled: list[Item], problem: str) -> None:
        host = self.host
        host.discard_output()
        touched: set[str] = set()
        gone: set[str] = set()  # opened or restored by this message: nothing durable here
        answered: set[str] = set()
        for item in handled:
            entity_id, payload, reply_to = item
            if isinstance(payload, RestoreConversation):
                gone.add(conversation_of(payload.opened))
                self.parked.append(item)
                continue
            if isinstance(payload, OpenConversation):
                gone.add(payload.conversation_id)
            conversation_id = host.conversation_of(entity_id)
            if conversation_id is not None:
                touched.add(conversation_id)
            if reply_to is not None and reply_to.call_id in answered:
                reply_to = None
            if reply_to is not None:
                answered.add(reply_to.call_id)
            self._answer((entity_id, payload, reply_to), self.journal.failure)
        previous = {c: host.evict(c) for c in touched | gone}
        self._rebuild({c: previous[c] for c in touched - gone})
        log.error(
            "journal_write_failed",
            host=host.host_id,
            problem=problem,
            undone=len(handled),
            conversations=sorted(touched | gone),
        )

    def _rebuild(self, previous: dict[str, tuple[Entity | None, list[Entity]]]) -> None:
        """Put conversations taken off back as the journal durably holds them; if it cannot
        be read now, keep them off (refused) until a probe succeeds."""
        if not previous:
            return
        records = _durable_records(self.journal, set(previous))
        if records is None:
            self.unrebuilt.update(previous)
            for conversation_id, (_conversation, sessions) in previous.items():
                self._waiting.add(conversation_entity_id(conversation_id))
                self._waiting.update(s.id for s in sessions)
            return
        for conversation_id in sorted(previous):
            seen = records.get(conversation_id)
            if seen is not None and seen.opened is not None:
                self.host.reinstate(
                    seen.opened,
                    seen.commands,
                    journal_again=False,
                    previous=previous[conversation_id],
                )


def _durable_records(journal: Journal, conversation_ids: set[str]) -> dict[str, Seen] | None:
    """Each conversation's records as this host's journal holds them durably; None if the
    journal cannot be reached for now."""
    try:
        records = journal.durable_records()
    except JournalUnreadable as error:
        log.error("journal_unreachable", error=str(error))
        return None
    except JournalError as error:  # damaged in the middle: a person must look at it
        log.error("journal_unreadable", error=str(error))
        return {}
    return {c: seen for c, seen in by_conversation(records).items() if c in conversation_ids}
