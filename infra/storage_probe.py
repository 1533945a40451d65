"""Whether the archive takes writes now, asked without writing anything: what the engine's
readiness check (``/readyz``) needs of storage.

SQLite: the archive file must exist and give this process its write lock (``BEGIN
IMMEDIATE``, rolled back at once) within the timeout; a file locked by another writer for
longer, or that cannot be opened for writing, is not writable. PostgreSQL: the server must
answer and accept read-write transactions (not a standby, not ``default_transaction_read_only``).
"""

from __future__ import annotations

import sqlite3

import psycopg

from infra.config.settings import StorageSettings
from infra.pg import describe, open_connection

__all__ = ["archive_problem"]


def archive_problem(storage: StorageSettings, *, timeout_s: float) -> str | None:
    """Why the archive would refuse a write now (one line), or None if it would take one."""
    if storage.postgres is not None:
        return _postgres_problem(storage.postgres)
    path = storage.archive
    if not path.is_file():
        return f"the archive {path} does not exist"
    try:
        db = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=timeout_s, isolation_level=None
        )
    except sqlite3.Error as error:
        return f"the archive {path} cannot be opened for writing: {error}"
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute("ROLLBACK")
    except sqlite3.Error as error:
        return f"the archive {path} refuses writes: {error}"
    finally:
        db.close()
    return None


def _postgres_problem(dsn: str) -> str | None:
    """The server's own liveness bounds (``infra.pg.LIVENESS``) bound the wait."""
    try:
        with open_connection(dsn, application_name="cx-readiness") as db:
            row = db.execute("SELECT current_setting('transaction_read_only')").fetchone()
    except psycopg.Error as error:
        return f"the PostgreSQL archive does not answer: {describe(error)}"
    if row is None or row[0] != "off":
        return "the PostgreSQL archive is read-only (a standby, or default_transaction_read_only)"
    return None
