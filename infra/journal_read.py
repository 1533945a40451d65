"""Reading a host's journal directory: every readable record in order, and what was damaged.

Segments that a compacted segment supersedes are skipped (only a crash during the compaction
leaves them). Damage that nothing valid follows, at the end of a host's last segment, is a torn
tail, what a crash leaves: it is dropped and described. Damage followed by a valid frame, or in
a segment that is not the last, is damage in the middle of the log: :class:`JournalDamagedError`
names the file, the byte offset and the conversations that may have lost records, unless the
caller salvages (``salvage=True``: every intact record is returned and the damage listed in
:attr:`JournalRead.mid_log`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from infra.journal_records import (
    Record,
    RecordKind,
    compacted_through,
    conversation_of,
    kind_of,
)
from infra.journal_segment import Damage, JournalError, scan, segment_number

MAX_NAMED = 50


class JournalDamagedError(JournalError):
    """Damage in the middle of a journal (valid records follow it, or it is in a segment that
    is not the last): records of live conversations may be lost. Start-up stops unless the
    journal is salvaged (``cx start --salvage-journal``)."""

    def __init__(self, damage: tuple[Damage, ...]) -> None:
        self.damage = damage
        first = damage[0]
        names = sorted({c for d in damage for c in d.conversations})
        shown = ", ".join(names[:MAX_NAMED]) + (
            f" and {len(names) - MAX_NAMED} more" if len(names) > MAX_NAMED else ""
        )
        more = f" (and {len(damage) - 1} more damaged places)" if len(damage) > 1 else ""
        super().__init__(
            f"{first.path}: journal damaged in the middle at byte offset {first.offset}"
            f" ({first.problem}, {first.end - first.offset} bytes unreadable, {first.records_after}"
            f" valid records after it){more}; conversations that may have lost records:"
            f" {shown or 'none named'} (one opened and ended within the damaged bytes cannot be"
            " named); nothing was restored or deleted: start with --salvage-journal"
            " (storage.salvage_journal) to restore every intact record and move the damaged"
            " journal aside"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.damage,))


@dataclass
class JournalRead:
    records: list[Record]
    damage: list[str]  # every damaged place, described (torn tails and salvaged damage)
    # Damage in the middle of the log, each with the number of records read before it.
    mid_log: list[tuple[int, Damage]] = field(default_factory=list)


def read_directory(directory: Path, *, salvage: bool = False) -> JournalRead:
    """Every readable record of a host's journal, in order, and what was damaged.

    Segments that a compacted segment supersedes are skipped (only a crash during the
    compaction leaves them). A torn tail (damage running to the end of the last segment) is
    dropped and described.
    Damage in the middle of the log raises JournalDamagedError naming the file, the offset and
    the conversations that may have lost records, unless ``salvage``: then reading resumes at
    the next valid frame, and the damage is in ``mid_log``.
    """
    records: list[Record] = []
    found: list[tuple[int, Damage]] = []
    scanned = [
        (path, list(scan(path))) for path in sorted(directory.glob("*.seg"), key=segment_number)
    ]
    superseded = max(
        (
            compacted_through(item)
            for _, items in scanned
            for item in items
            if isinstance(item, dict) and kind_of(item) is RecordKind.COMPACTED
        ),
        default=0,
    )
    # A crash during a compaction may have left the segments it replaced: they are skipped.
    scanned = [(path, items) for path, items in scanned if segment_number(path) > superseded]
    for number, (path, items) in enumerate(scanned, 1):
        size = path.stat().st_size
        for index, item in enumerate(items):
            if isinstance(item, dict) and kind_of(item) is RecordKind.COMPACTED:
                continue
            if isinstance(item, Damage):
                last = number == len(scanned) and index == len(items) - 1
                found.append((len(records), replace(item, tail=last and item.end == size)))
            else:
                records.append(item)
    return assemble(records, found, salvage=salvage)


def assemble(
    records: list[Record], found: list[tuple[int, Damage]], *, salvage: bool
) -> JournalRead:
    """A journal's read from its intact ``records`` and the damage ``found`` among them (each
    with the number of records read before it): damage in the middle of the log raises
    JournalDamagedError unless ``salvage``."""
    mid_log = [
        (at, replace(d, records_after=len(records) - at, conversations=_exposed(records, at)))
        for at, d in found
        if not d.tail
    ]
    if mid_log and not salvage:
        raise JournalDamagedError(tuple(d for _, d in mid_log))
    damage = [d.describe() for _, d in found]
    return JournalRead(records, damage, mid_log)


def _exposed(records: list[Record], at: int) -> tuple[str, ...]:
    """Conversations that may have had records where ``records[at]`` was read after damage:
    open before it (not closed), or with records after it but no opening record before them."""
    state: dict[str, RecordKind] = {}
    for record in records[:at]:
        kind = kind_of(record)
        if kind is RecordKind.OPEN or kind is RecordKind.CLOSED:
            state[conversation_of(record)] = kind
    exposed = {c for c, kind in state.items() if kind is RecordKind.OPEN}
    opened_after: set[str] = set()
    for record in records[at:]:
        conversation_id = conversation_of(record)
        if kind_of(record) is RecordKind.OPEN:
            opened_after.add(conversation_id)
        elif conversation_id not in state and conversation_id not in opened_after:
            exposed.add(conversation_id)  # its opening record was in the damaged bytes
    return tuple(sorted(exposed))
