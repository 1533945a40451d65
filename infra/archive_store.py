"""Where the archive lives: the interface the actors use, and the backend ``storage`` names.

Two backends implement :class:`ArchiveStore`, picked by ``storage.postgres``:

- SQLite (``storage.postgres`` null, the default): the file ``storage.archive``
  (:class:`infra.archive.Archive`), no server to run;
- PostgreSQL (``storage.postgres`` a connection string): one database shared by every node
  (:class:`infra.archive_pg.PgArchive`).

``storage.memory`` (simulations) overrides both: an SQLite database in this process's memory,
named by ``storage.archive`` and shared by every connection of the process, gone with it.

Both store and read the same records with the same guarantees (idempotent stores, one
transaction per write, one contact-center room per customer enforced by the database) and
raise the same errors (:class:`~infra.archive.StorageError` and its subclasses). Actors only
see this module's names.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Protocol

from domain.records import ConversationRecord, Event
from infra.archive import Archive
from infra.archive_pg import PgArchive
from infra.archive_rooms import RoomMessage
from infra.archive_rows import RoomRecord, Snapshot
from infra.archive_upkeep import WebhookPending
from infra.config.settings import StorageSettings


class ArchiveStore(Protocol):
    """The archive's operations (their contracts are those of :class:`infra.archive.Archive`)."""

    write_attempts: int

    def close(self) -> None: ...

    def __enter__(self) -> ArchiveStore: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def create_room(self, room: RoomRecord) -> None: ...

    def room(self, room_id: str) -> RoomRecord | None: ...

    def contact_center_room_of(self, customer_id: str) -> RoomRecord | None: ...

    def record_customer_identity(
        self, customer_id: str, channel: str, identifier: str, *, new_room: RoomRecord | None = None
    ) -> None: ...

    def rooms_of_customer(self, customer_id: str) -> list[RoomRecord]: ...

    def has_identity(self, customer_id: str, channel: str, identifier: str) -> bool: ...

    def store_conversation(self, record: ConversationRecord, events: Sequence[Event]) -> None: ...

    def store_conversations(self, snapshots: Sequence[Snapshot]) -> None: ...

    def append_events(self, conversation_id: str, events: Sequence[Event]) -> None: ...

    def has_conversation(self, conversation_id: str) -> bool: ...

    def conversation_of_session(self, session_id: str) -> str | None: ...

    def conversation(self, conversation_id: str) -> ConversationRecord | None: ...

    def room_conversations(self, room_id: str) -> list[ConversationRecord]: ...

    def conversations_between(
        self, start_ms: int, end_ms: int, *, after: tuple[int, str] | None = None, limit: int = 500
    ) -> list[ConversationRecord]: ...

    def events(self, conversation_id: str, after_seq: int = 0) -> list[Event]: ...

    def last_seq(self, conversation_id: str) -> int: ...

    def ids_taken(
        self,
        *,
        conversation_id: str | None = None,
        session_id: str | None = None,
        room_id: str | None = None,
    ) -> bool: ...

    def counts(self) -> dict[str, int]: ...

    # upkeep (infra.archive_upkeep.ArchiveUpkeep)

    def webhook_since(self, webhook: str, now_ms: int) -> int: ...

    def webhook_pending(
        self, webhook: str, since: int, limit: int, *, touched_from: int = 0
    ) -> list[WebhookPending]: ...

    def webhook_backlog(self, webhook: str, since: int, *, touched_from: int = 0) -> int: ...

    def last_touched(self) -> int: ...

    def webhook_advance(self, webhook: str, conversation_id: str, seq: int) -> None: ...

    def webhook_delivered(
        self, webhook: str, conversation_ids: Sequence[str]
    ) -> dict[str, int]: ...

    def webhook_skip(self, webhook: str, passed: Sequence[WebhookPending]) -> None: ...

    def webhook_skipped(self, webhook: str) -> int: ...

    def sweep_closed_before(self, before_ms: int) -> int: ...

    def forget_customer(self, customer_id: str) -> dict[str, int]: ...

    # rooms (infra.archive_rooms.ArchiveRooms)

    def store_room(self, room: RoomRecord, members: Sequence[str]) -> None: ...

    def room_members(self, room_id: str) -> list[str]: ...

    def rooms_of_member(self, agent_id: str) -> list[RoomRecord]: ...

    def post_to_room(
        self, room_id: str, message_id: str, author_id: str, text: str, timestamp: int
    ) -> int: ...

    def room_messages(self, room_id: str) -> list[RoomMessage]: ...


def open_archive(
    storage: StorageSettings,
    *,
    read_only: bool = False,
    create: bool = True,
    busy_timeout_ms: int = 5000,
) -> ArchiveStore:
    """The archive ``storage`` names. ``create=False``: it must exist (a reader beside the
    writer that created it); ``busy_timeout_ms``: how long a SQLite writer waits for the
    file's lock (PostgreSQL waits for its row locks as the server is configured)."""
    if storage.memory:
        return Archive(storage.archive, busy_timeout_ms=busy_timeout_ms, shared_memory=True)
    if storage.postgres is not None:
        return PgArchive(storage.postgres, read_only=read_only, create=create, fsync=storage.fsync)
    return Archive(
        storage.archive,
        read_only=read_only,
        create=create,
        fsync=storage.fsync,
        busy_timeout_ms=busy_timeout_ms,
    )
