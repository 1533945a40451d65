"""No journal at all: the backend ``storage.memory`` picks (simulations).

A host writing through :class:`NullJournal` keeps nothing: every record is dropped, every
flush succeeds at once, and there is nothing to recover after a crash. As nothing can be read
back (``holds_events`` false), the host's conversations keep all their events in memory
instead of their recent ones (:mod:`actors.event_window`) until they are archived. The engine's behaviour
is otherwise unchanged (the same commands, events, replies and timers), which is what a
simulation needs: the journal is there for crashes, and a simulation without faults has none.
"""

from __future__ import annotations

from typing import Any

from infra.journal_read import JournalRead
from infra.journal_records import Record


class NullJournal:
    """A :class:`~infra.journal_store.Journal` that writes nothing and never fails."""

    failure: str | None = None
    #: nothing can be read back: a conversation keeps all its events in memory instead
    holds_events = False

    @property
    def pending(self) -> bool:
        return False

    def add(self, conversation_id: str, record: Record) -> None:
        return None

    def flush(self) -> None:
        return None

    def sync_due_in_ms(self) -> int | None:
        return None

    def sync_if_due(self) -> None:
        return None

    def probe(self) -> bool:
        return True

    def records_of(self, conversation_id: str) -> list[dict[str, Any]]:
        return []

    def durable_records(self) -> list[Record]:
        return []

    def forget(self, conversation_id: str) -> None:
        return None

    def compaction_due(self, after_s: float = 0.0) -> bool:
        return False

    def compact(self) -> bool:
        return False

    def close(self) -> None:
        return None


class NullStore:
    """A :class:`~infra.journal_store.JournalStore` of journals that hold nothing."""

    def open(self, writer_id: str) -> NullJournal:
        return NullJournal()

    def writers(self) -> list[str]:
        return []

    def fence(self, writer_id: str) -> None:
        return None

    def read(self, writer_id: str, *, salvage: bool) -> JournalRead:
        return JournalRead(records=[], damage=[])

    def discard(self, writer_id: str) -> None:
        return None

    def move_aside(self, writer_id: str) -> str:
        return "nowhere: storage.memory keeps no journal"
