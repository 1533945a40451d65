"""Where journals live: the interface the actors use, and the backend ``storage`` names.

A conversation host writes its records through a :class:`Journal`; the TopicMonitor finds and
reads the journals of hosts that died (or of the previous run) through a
:class:`JournalStore`. Two backends implement them, picked by ``storage.postgres``:

- files (``storage.postgres`` null, the default): one directory per writer under
  ``storage.journal`` (:class:`infra.journal.JournalWriter`, :func:`infra.journal_read.read_directory`);
- PostgreSQL (``storage.postgres`` a connection string): rows of one database shared by every
  node (:mod:`infra.journal_pg`).

``storage.memory`` (simulations) overrides both: no journal at all (:mod:`infra.journal_null`).

Actors only see this module's names: :func:`open_store` and the two protocols. The writer id
is the host id (unique across restarts).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from infra.config.settings import StorageSettings
from infra.journal import COMPACT_AFTER_S, JournalWriter
from infra.journal_null import NullStore
from infra.journal_pg_store import PgStore
from infra.journal_read import JournalRead, read_directory
from infra.journal_records import Record

#: Where damaged journal directories are moved, beside ``storage.journal``.
DAMAGED_DIRECTORY = "damaged"


class Journal(Protocol):
    """One writer's journal, as a conversation host uses it.

    Records are :meth:`add`-ed while a Thespian message is handled and written by
    :meth:`flush` (one write or one transaction) before anything leaves the host; a flush that
    fails raises :class:`~infra.journal.JournalWriteFailed`, keeps none of its records and
    leaves the journal *failed* (:attr:`failure` set) until :meth:`probe` succeeds."""

    failure: str | None
    #: Whether :meth:`records_of` gives back every record added (else a conversation must
    #: keep its older events in memory: they cannot be read back).
    holds_events: bool

    @property
    def pending(self) -> bool: ...

    def add(self, conversation_id: str, record: Record) -> None: ...

    def flush(self) -> None: ...

    def sync_due_in_ms(self) -> int | None: ...

    def sync_if_due(self) -> None: ...

    def probe(self) -> bool: ...

    def records_of(self, conversation_id: str) -> list[dict[str, Any]]:
        """The conversation's records, stored and pending, in order; OSError if unreadable."""
        ...

    def durable_records(self) -> list[Record]:
        """Every record this writer has made durable, in order; a
        :class:`~infra.journal_segment.JournalError` (a ``StorageError``) if unreadable."""
        ...

    def forget(self, conversation_id: str) -> None: ...

    def compaction_due(self, after_s: float = COMPACT_AFTER_S) -> bool: ...

    def compact(self) -> bool: ...

    def close(self) -> None: ...


class JournalStore(Protocol):
    """Every writer's journal in one place, for recovery."""

    def open(self, writer_id: str) -> Journal:
        """The journal ``writer_id`` writes from now on."""
        ...

    def writers(self) -> list[str]:
        """The writers whose journals hold records, in order of their ids."""
        ...

    def fence(self, writer_id: str) -> None:
        """Make sure ``writer_id`` can never write again (before its journal is read to
        rebuild its conversations elsewhere)."""
        ...

    def read(self, writer_id: str, *, salvage: bool) -> JournalRead:
        """Every readable record of the writer, in order
        (:func:`~infra.journal_read.read_directory`'s rules for damage)."""
        ...

    def discard(self, writer_id: str) -> None:
        """Its conversations are back elsewhere: delete the writer's journal."""
        ...

    def move_aside(self, writer_id: str) -> str:
        """Keep a damaged journal for a person, out of the way; where it went."""
        ...


@dataclass(frozen=True, slots=True)
class FileStore:
    """Journals as directories under ``root`` (``storage.journal``), one per writer.

    :meth:`fence` does nothing: a file journal lives on the disk of the node whose processes
    write it, and a host is declared dead there only once its process has exited."""

    root: Path
    fsync: str = "interval"
    interval_ms: int = 50

    def open(self, writer_id: str) -> JournalWriter:
        return JournalWriter(self.root / writer_id, fsync=self.fsync, interval_ms=self.interval_ms)

    def writers(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())

    def fence(self, writer_id: str) -> None:
        return None

    def read(self, writer_id: str, *, salvage: bool) -> JournalRead:
        return read_directory(self.root / writer_id, salvage=salvage)

    def discard(self, writer_id: str) -> None:
        shutil.rmtree(self.root / writer_id, ignore_errors=True)

    def move_aside(self, writer_id: str) -> str:
        """Move the directory to ``damaged/<UTC time>/<writer id>`` beside the journal."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        target = self.root.parent / DAMAGED_DIRECTORY / stamp / writer_id
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(self.root / writer_id, target)
        return str(target)


def open_store(storage: StorageSettings) -> JournalStore:
    """The journal store ``storage`` names: PostgreSQL if ``storage.postgres`` is set, else
    the directories under ``storage.journal``; none at all if ``storage.memory``."""
    if storage.memory:
        return NullStore()
    if storage.postgres is not None:
        return PgStore(storage.postgres, fsync=storage.fsync)
    return FileStore(Path(storage.journal), storage.fsync, storage.fsync_interval_ms)


def open_journal(storage: StorageSettings, writer_id: str) -> Journal:
    """The journal a conversation host ``writer_id`` writes."""
    return open_store(storage).open(writer_id)
