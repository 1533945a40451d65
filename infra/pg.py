"""What every PostgreSQL connection of the engine shares: how it connects, how long it waits
for a silent server, how ``storage.fsync`` maps to commit settings, and how a server's error
is named in one line. The journal (:mod:`infra.journal_pg`) and the archive
(:mod:`infra.archive_pg`) each keep their own tables and schema version.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

#: libpq settings every connection gets unless the connection string sets them: a server that
#: stops answering (a cut cable, a frozen machine) fails the connection within about 10 s (a
#: write unacknowledged by TCP, or keepalives unanswered) instead of the kernel's many minutes,
#: so the engine refuses and probes instead of freezing.
LIVENESS: dict[str, int] = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
}

#: ``storage.fsync`` -> the session's ``synchronous_commit``: ``always`` waits for the commit's
#: WAL on disk; ``interval`` and ``never`` return at once (the server's WAL writer flushes
#: within three times ``wal_writer_delay``, 600 ms by default).
SYNCHRONOUS_COMMIT = {"always": "on", "interval": "off", "never": "off"}


def open_connection(dsn: str, *, application_name: str, **options: Any) -> psycopg.Connection[Any]:
    """An autocommit connection with :data:`LIVENESS` (where the string does not say
    otherwise) and ``application_name``; raises psycopg.Error if the server cannot be
    reached."""
    given = conninfo_to_dict(dsn)
    extra: dict[str, Any] = {k: v for k, v in LIVENESS.items() if k not in given}
    extra["application_name"] = application_name
    return psycopg.connect(dsn, autocommit=True, **extra, **options)


def describe(error: BaseException) -> str:
    """One line naming what went wrong with the server."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else 'no detail'}"
