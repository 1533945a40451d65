"""The archive's upkeep, written once for both backends: the webhook dispatcher's durable
cursors, the retention sweep and the deletion of a customer's data.

:class:`ArchiveUpkeep` extends :class:`~infra.archive_reads.ArchiveReads` with writes; each
backend gives it ``_run_writes``, which runs statements (``?`` placeholders, standard SQL
that SQLite and PostgreSQL both accept) in one transaction and returns their row counts.

Webhook cursors. ``webhooks`` holds one row per webhook name: ``since``, the time it was first
seen (it delivers the conversations archived from then on, not the history before it), and
``skipped``, how many conversations it passed over because its backlog was over its bound.
``webhook_cursors`` holds, per webhook and conversation, the last sequence number delivered
(or passed over by the event filter): a conversation is pending while its ``seq`` is higher.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from infra.archive_reads import ArchiveReads

#: Conversations deleted per transaction by the retention sweep.
SWEEP_BATCH = 500
#: Conversation ids per statement when cursors are read.
READ_BATCH = 500
#: The tables holding rows of a conversation, by the column naming it.
_CONVERSATION_ROWS = (
    ("events", "conversation_id"),
    ("participants", "conversation_id"),
    ("channel_sessions", "conversation_id"),
    ("webhook_cursors", "conversation_id"),
    ("conversations", "id"),
)
_PENDING = (
    " FROM conversations c LEFT JOIN webhook_cursors w"
    " ON w.webhook = ? AND w.conversation_id = c.id"
    " WHERE c.touched >= ? AND c.seq > COALESCE(w.seq, 0)"
    " AND (w.seq IS NOT NULL OR COALESCE(c.ended_at, c.created_at) >= ?)"
)


@dataclass(frozen=True, slots=True)
class WebhookPending:
    """A conversation with events a webhook has not delivered: those after ``delivered`` up
    to ``seq``."""

    conversation_id: str
    seq: int
    delivered: int


class ArchiveUpkeep(ArchiveReads):
    """Every write of the archive that is not the engine's archiving itself."""

    def _run_writes(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        """Run ``statements`` in one transaction; their row counts. Raises StorageError (or a
        subclass) on a fault, and then nothing was written."""
        raise NotImplementedError

    # -- webhooks -----------------------------------------------------------------------------

    def webhook_since(self, webhook: str, now_ms: int) -> int:
        """When ``webhook`` was first seen (recorded now if never)."""
        self._run_writes(
            [
                (
                    "INSERT INTO webhooks (name, since, skipped) VALUES (?, ?, 0)"
                    " ON CONFLICT (name) DO NOTHING",
                    (webhook, now_ms),
                )
            ]
        )
        return int(self._rows("SELECT since FROM webhooks WHERE name = ?", (webhook,))[0]["since"])

    def webhook_pending(
        self, webhook: str, since: int, limit: int, *, touched_from: int = 0
    ) -> list[WebhookPending]:
        """Up to ``limit`` conversations with undelivered events, the longest closed first;
        ``touched_from``: only among those written since then (what is older was delivered)."""
        rows = self._rows(
            "SELECT c.id AS id, c.seq AS seq, COALESCE(w.seq, 0) AS delivered"
            + _PENDING
            + " ORDER BY COALESCE(c.ended_at, c.created_at), c.id LIMIT ?",
            (webhook, touched_from, since, limit),
        )
        return [WebhookPending(row["id"], int(row["seq"]), int(row["delivered"])) for row in rows]

    def webhook_backlog(self, webhook: str, since: int, *, touched_from: int = 0) -> int:
        """How many conversations have events ``webhook`` has not delivered."""
        rows = self._rows("SELECT COUNT(*) AS n" + _PENDING, (webhook, touched_from, since))
        return int(rows[0]["n"])

    def last_touched(self) -> int:
        """The latest ``touched`` of any conversation (0 if none)."""
        rows = self._rows("SELECT MAX(touched) AS touched FROM conversations")
        return int(rows[0]["touched"] or 0)

    def webhook_advance(self, webhook: str, conversation_id: str, seq: int) -> None:
        """Record that ``webhook`` delivered ``conversation_id`` up to ``seq`` (never back)."""
        self._run_writes([_advance(webhook, conversation_id, seq)])

    def webhook_delivered(self, webhook: str, conversation_ids: Sequence[str]) -> dict[str, int]:
        """The last sequence number ``webhook`` delivered of each conversation (0: none yet)."""
        delivered = dict.fromkeys(conversation_ids, 0)
        ids = list(delivered)
        for start in range(0, len(ids), READ_BATCH):
            chunk = ids[start : start + READ_BATCH]
            marks = ", ".join("?" for _ in chunk)
            for row in self._rows(
                "SELECT conversation_id, seq FROM webhook_cursors"
                f" WHERE webhook = ? AND conversation_id IN ({marks})",
                (webhook, *chunk),
            ):
                delivered[row["conversation_id"]] = int(row["seq"])
        return delivered

    def webhook_skip(self, webhook: str, passed: Sequence[WebhookPending]) -> None:
        """Pass over these conversations (the backlog is over its bound), counting them."""
        if not passed:
            return
        self._run_writes(
            [
                *(_advance(webhook, p.conversation_id, p.seq) for p in passed),
                (
                    "UPDATE webhooks SET skipped = skipped + ? WHERE name = ?",
                    (len(passed), webhook),
                ),
            ]
        )

    def webhook_skipped(self, webhook: str) -> int:
        rows = self._rows("SELECT skipped FROM webhooks WHERE name = ?", (webhook,))
        return int(rows[0]["skipped"]) if rows else 0

    # -- retention and deletion ---------------------------------------------------------------

    def sweep_closed_before(self, before_ms: int) -> int:
        """Delete every archived conversation that ended before ``before_ms`` (its sessions,
        participants, events and webhook cursors with it), a batch per transaction; how many."""
        deleted = 0
        while rows := self._rows(
            "SELECT id FROM conversations WHERE ended_at IS NOT NULL AND ended_at < ? LIMIT ?",
            (before_ms, SWEEP_BATCH),
        ):
            deleted += self._delete_conversations([row["id"] for row in rows])[-1]
        return deleted

    def forget_customer(self, customer_id: str) -> dict[str, int]:
        """Delete everything the archive holds of the customer, in one transaction: their
        conversations (with sessions, participants, events, webhook cursors), rooms,
        identities and customer row. How many of each were deleted."""
        ids = [
            row["id"]
            for row in self._rows(
                "SELECT id FROM conversations WHERE customer_id = ?", (customer_id,)
            )
        ]
        counts = self._delete_conversations(
            ids,
            also=(
                (
                    "DELETE FROM room_members WHERE room_id IN"
                    " (SELECT id FROM rooms WHERE customer_id = ?)",
                    (customer_id,),
                ),
                ("DELETE FROM identities WHERE customer_id = ?", (customer_id,)),
                ("DELETE FROM rooms WHERE customer_id = ?", (customer_id,)),
                ("DELETE FROM customers WHERE id = ?", (customer_id,)),
            ),
        )
        events = counts[0] if ids else 0
        return {
            "conversations": counts[len(_CONVERSATION_ROWS) - 1] if ids else 0,
            "events": events,
            "identities": counts[-3],
            "rooms": counts[-2],
            "customers": counts[-1],
        }

    def _delete_conversations(
        self, ids: Sequence[str], also: Sequence[tuple[str, Sequence[Any]]] = ()
    ) -> list[int]:
        statements: list[tuple[str, Sequence[Any]]] = []
        if ids:
            marks = ", ".join("?" for _ in ids)
            statements = [
                (f"DELETE FROM {table} WHERE {column} IN ({marks})", tuple(ids))
                for table, column in _CONVERSATION_ROWS
            ]
        return self._run_writes([*statements, *also])


def _advance(webhook: str, conversation_id: str, seq: int) -> tuple[str, Sequence[Any]]:
    return (
        "INSERT INTO webhook_cursors (webhook, conversation_id, seq) VALUES (?, ?, ?)"
        " ON CONFLICT (webhook, conversation_id) DO UPDATE SET seq = excluded.seq"
        " WHERE webhook_cursors.seq < excluded.seq",
        (webhook, conversation_id, seq),
    )
