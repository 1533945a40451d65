"""``cx export``: archived conversations created in a time range, as JSON lines or CSV; and
``cx forget``, a customer's data deleted on request.

The archive is read directly (read-only, as ``storage`` names it), page by page in creation
order, so an export needs no running engine and holds one page in memory whatever the range.

- ``jsonl``: one conversation per line, as ``cx history --json`` shows it (ISO-8601 UTC
  times), with its events;
- ``csv``: one row per conversation (:data:`CSV_COLUMNS`); its payload (``data``) as JSON.

The events marked for the agents and supervisors alone (``data.audience`` ``AGENTS``: whispers,
a supervisor's read receipts; :func:`domain.events.for_customer`) are left out, and not
counted in ``events``, unless ``include_agent_only``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from actors.snapshots import event_dict, record_dict
from domain.enums import ParticipantType
from domain.events import for_customer
from domain.records import ConversationRecord
from infra.archive_rows import json_default
from infra.archive_store import ArchiveStore, open_archive
from infra.config import load_config
from infra.timefmt import iso
from runtime import control
from runtime.cli_send import UsageError

FORMATS = ("jsonl", "csv")
CSV_COLUMNS = (
    "id", "room_id", "customer_id", "state", "direction", "created_at", "ended_at", "seq",
    "events", "channels", "agents", "data",
)  # fmt: skip
#: Conversations read from the archive at a time.
PAGE = 500


def parse_time(value: str, option: str) -> int:
    """An ISO-8601 date or time (``2026-12-01``, ``2026-12-01T08:00:00Z``; without a zone:
    UTC) as milliseconds since the epoch."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"{option}: {value!r} is not an ISO-8601 date or time (e.g. 2026-12-01T08:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def conversations(
    archive: ArchiveStore, start_ms: int, end_ms: int
) -> Iterator[ConversationRecord]:
    """Every archived conversation created in ``[start_ms, end_ms)``, oldest first."""
    after: tuple[int, str] | None = None
    while page := archive.conversations_between(start_ms, end_ms, after=after, limit=PAGE):
        yield from page
        after = (page[-1].created_at, page[-1].id)


def export(
    archive: ArchiveStore,
    start_ms: int,
    end_ms: int,
    fmt: str,
    out: TextIO,
    *,
    include_agent_only: bool = False,
) -> int:
    """Write the range's conversations to ``out`` in ``fmt``; how many were written."""
    if fmt not in FORMATS:
        raise UsageError(f"--format: {fmt!r}: expected one of {', '.join(FORMATS)}")
    if end_ms <= start_ms:
        raise UsageError("--to must be later than --from")
    count = 0
    writer = csv.writer(out) if fmt == "csv" else None
    if writer is not None:
        writer.writerow(CSV_COLUMNS)
    for record in conversations(archive, start_ms, end_ms):
        events = archive.events(record.id)
        if not include_agent_only:
            events = [event for event in events if for_customer(event.data)]
        if writer is None:
            line = {**record_dict(record), "events": [event_dict(e) for e in events]}
            out.write(json.dumps(line, ensure_ascii=False, default=json_default) + "\n")
        else:
            writer.writerow(_csv_row(record, len(events)))
        count += 1
    return count


def _csv_row(record: ConversationRecord, events: int) -> list[Any]:
    return [
        record.id, record.room_id, record.customer_id, str(record.state),
        str(record.direction), iso(record.created_at), iso(record.ended_at) or "", record.seq,
        events, " ".join(str(s.channel) for s in record.channel_sessions),
        " ".join(p.id for p in record.participants if p.type is ParticipantType.AGENT),
        json.dumps(dict(record.data), ensure_ascii=False, default=json_default),
    ]  # fmt: skip


def forget_command(config: str, customer_id: str) -> int:
    """``cx forget``: through the running engine, which refuses while the customer has a
    live conversation (exit code 2) and deletes nothing then."""
    with control.connect(config) as gw:
        forgotten = gw.forget_customer(customer_id)
    counts = ", ".join(f"{count} {what}" for what, count in forgotten.items())
    print(f"cx forget: customer {customer_id}: deleted {counts}")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--from",
        dest="start",
        required=True,
        metavar="ISO",
        help="first creation time included (ISO-8601; no zone: UTC)",
    )
    parser.add_argument(
        "--to",
        dest="end",
        required=True,
        metavar="ISO",
        help="creation time where the range ends (excluded)",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="jsonl",
        help="jsonl (default): a conversation with its events per line;"
        " csv: a row per conversation",
    )
    parser.add_argument("--out", metavar="FILE", help="write there (default: stdout)")
    parser.add_argument(
        "--include-agent-only",
        action="store_true",
        help="also the events for the agents alone (whispers; left out by default)",
    )


def export_command(
    config: str,
    start: str,
    end: str,
    *,
    fmt: str = "jsonl",
    out: str | None = None,
    include_agent_only: bool = False,
) -> int:
    """``cx export``: the conversations to ``out`` (a file, replaced whole) or stdout; the
    count to stderr."""
    start_ms, end_ms = parse_time(start, "--from"), parse_time(end, "--to")
    if end_ms <= start_ms:
        raise UsageError("--to must be later than --from")
    settings = load_config(config)
    agents = include_agent_only
    with open_archive(settings.storage, read_only=True, create=False) as archive:
        if out is None:
            count = export(archive, start_ms, end_ms, fmt, sys.stdout, include_agent_only=agents)
        else:
            target = Path(out)
            partial = target.with_name(target.name + ".partial")
            # customer messages: readable by the file's owner only
            descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with open(descriptor, "w", encoding="utf-8", newline="") as stream:
                count = export(archive, start_ms, end_ms, fmt, stream, include_agent_only=agents)
            partial.replace(target)
    print(f"cx export: {count} conversation(s)", file=sys.stderr)
    return 0
