"""What the PostgreSQL journal's tests share: a few SQL statements, records, a config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg

from infra.journal_pg import APPLICATION
from infra.journal_pg_store import PgStore
from runtime.gateway import Gateway
from tests.conftest import storage_config


def record(conversation_id: str, text: str) -> dict[str, Any]:
    return {"k": "cmd", "c": conversation_id, "text": text}


def texts(store: PgStore, writer_id: str) -> list[str]:
    return [r["text"] for r in store.read(writer_id, salvage=False).records]


def sql(dsn: str, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as connection:
        cursor = connection.execute(statement, params or None)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


def pg_config(tmp_path: Path, dsn: str) -> dict[str, Any]:
    config = storage_config(tmp_path)
    config["storage"]["postgres"] = dsn
    config["logging"] = {"level": "error"}
    return config


def customer_texts(gw: Gateway, conversation_id: str) -> list[str]:
    return [
        e["data"]["text"] for e in gw.events(conversation_id) if e["name"] == "CUSTOMER_MESSAGE"
    ]


def cut_writers(dsn: str) -> int:
    """Terminate every conversation host's journal connection, as a server restart would."""
    cut = sql(
        dsn,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE %s",
        f"{APPLICATION} host-%",
    )
    return len(cut)
