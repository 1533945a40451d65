"""The archive's errors, shared by its SQLite and PostgreSQL backends."""

from __future__ import annotations

from domain.errors import CxError, ErrorKind


class StorageError(CxError):
    """The storage's fault (disk, lock, permissions, corrupt or foreign file), not the caller's."""

    kind = ErrorKind.UNAVAILABLE


class ArchiveUnavailable(StorageError):
    """The archive cannot be written now (locked, read-only, disk full); retry later."""
