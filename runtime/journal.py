"""The journal: what every live conversation did, on disk before anything leaves its host.

Each host writes one directory (``storage.journal/<host id>``) of numbered segment files. A
segment starts with the header ``b"CXJ"`` and a version byte, then holds frames: a 4-byte
big-endian payload length, the payload's CRC-32, and the payload, a msgpack map. Records:

- ``{"k": "open", "c": id, "room": ..., "customer": ..., "dir": ..., "t": ms, "policy": {...},
  "first": command}``: a conversation was created (or moved here from another host);
- ``{"k": "cmd", "c": id, "t": ms, "cmd": command, "ev": [events]}``: a command the
  conversation applied at time ``t`` and the events it published;
- ``{"k": "closed", "c": id}``: the conversation is archived and needs nothing from here.

The state machine is deterministic, so replaying the commands rebuilds a conversation exactly
(its sessions, participants, timers with their tokens, sequence numbers); the journaled events
are compared with the replayed ones.

Records are buffered while a host handles one message and written with one ``write`` before
the host sends anything (a process crash loses nothing acknowledged); ``storage.fsync`` decides
when they reach the disk: ``always`` (fsync before sending: group commit), ``interval`` (at most
``fsync_interval_ms`` later) or ``never`` (the OS decides). A segment is deleted once every
conversation with records in it is archived (or moved) and it is no longer being written.

Reading (``read_directory``, at start-up and when a host dies): after a bad frame (cut short, a
CRC mismatch, undecodable, not a record) reading resumes at the next position where a frame's
header, CRC and record all validate. Damage that nothing valid follows, at the end of a host's
last segment, is a torn tail, what a crash leaves: it is dropped and described. Damage followed
by a valid frame, or in a segment that is not the last, is damage in the middle of the log:
``JournalDamagedError`` names the file, the byte offset and the conversations that may have
lost records, unless the caller salvages (``salvage=True``: every intact record is returned and
the damage listed in ``JournalRead.mid_log``). A segment of another version is refused with an
error naming the file.
"""

from __future__ import annotations

import os
import re
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import msgpack

from runtime.archive import StorageError

MAGIC = b"CXJ"
VERSION = 1
HEADER = MAGIC + bytes([VERSION])
_FRAME = struct.Struct(">II")
MAX_RECORD_BYTES = 64 * 1024 * 1024
SEGMENT_BYTES = 8 * 1024 * 1024


class JournalError(StorageError):
    """A journal that this engine cannot read (another version, not a journal)."""


def encode_frame(record: dict[str, Any]) -> bytes:
    payload: bytes = msgpack.packb(record, use_bin_type=True)
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


@dataclass
class JournalWriter:
    directory: Path
    fsync: str = "interval"
    interval_ms: int = 50
    segment_bytes: int = SEGMENT_BYTES
    _pending: list[bytes] = field(default_factory=list)
    _segment: int = 0
    _file: Any = None
    _size: int = 0
    _live: dict[int, set[str]] = field(default_factory=dict)
    _last_sync: float = 0.0
    _unsynced: bool = False

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        existing = sorted(segment_number(p) for p in self.directory.glob("*.seg"))
        self._open_segment((existing[-1] + 1) if existing else 1)

    def add(self, conversation_id: str, record: dict[str, Any]) -> None:
        frame = encode_frame(record)
        self._pending.append(frame)
        self._size += len(frame)
        self._live.setdefault(self._segment, set()).add(conversation_id)

    def flush(self) -> None:
        """Write what was added (one write), then sync as the policy says."""
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            os.write(self._file.fileno(), data)
            self._unsynced = True
            if self._size >= self.segment_bytes:
                self._sync()
                self._file.close()
                self._open_segment(self._segment + 1)
        due = self.fsync == "always" or (self.fsync == "interval" and self.sync_due_in_ms() == 0)
        if self._unsynced and due:
            self._sync()

    def sync_due_in_ms(self) -> int | None:
        """Under the interval policy: in how many ms unsynced records must be synced."""
        if not self._unsynced or self.fsync != "interval":
            return None
        elapsed_ms = (time.monotonic() - self._last_sync) * 1000
        return max(0, int(self.interval_ms - elapsed_ms))

    def sync_if_due(self) -> None:
        if self.sync_due_in_ms() == 0:
            self._sync()

    def forget(self, conversation_id: str) -> None:
        """The conversation needs no record from here any more (archived, or moved)."""
        for segment in list(self._live):
            conversations = self._live[segment]
            conversations.discard(conversation_id)
            if not conversations and segment != self._segment:
                del self._live[segment]
                self._path(segment).unlink(missing_ok=True)

    def close(self) -> None:
        if self._file is not None:
            self.flush()
            if self._unsynced and self.fsync != "never":
                self._sync()
            self._file.close()
            self._file = None

    def _sync(self) -> None:
        os.fsync(self._file.fileno())
        self._last_sync = time.monotonic()
        self._unsynced = False

    def _open_segment(self, number: int) -> None:
        self._segment = number
        self._file = open(self._path(number), "ab", buffering=0)  # noqa: SIM115 (kept open)
        self._file.write(HEADER)
        self._size = len(HEADER)
        self._live.setdefault(number, set())
        os.fsync(self._file.fileno())
        self._last_sync = time.monotonic()

    def _path(self, number: int) -> Path:
        return self.directory / f"{number:08d}.seg"


def segment_number(path: Path) -> int:
    return int(path.stem) if path.stem.isdigit() else 0


@dataclass(frozen=True, slots=True)
class Damage:
    """Unreadable bytes ``[offset, end)`` of a segment, found where a frame should start.

    ``end`` is where the next valid frame starts (reading resumed there) or the segment's size.
    ``tail``: nothing valid follows: the damage runs to the end of its segment and
    (``read_directory`` decides) that segment is the host's last: what a crash leaves.
    Otherwise the damage is in the middle of the log, and ``conversations`` are those that may
    have lost records in it: open before it and not closed, or with records after it whose
    opening record is missing.
    """

    path: str
    offset: int
    end: int
    problem: str
    tail: bool = False
    records_after: int = 0  # valid records of the host's journal after the damaged bytes
    conversations: tuple[str, ...] = ()

    def describe(self) -> str:
        what = "dropped" if self.tail else "skipped"
        return f"{self.path}: {self.problem} at offset {self.offset}: {self.end - self.offset} bytes {what}"


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
    records: list[dict[str, Any]]
    damage: list[str]  # every damaged place, described (torn tails and salvaged damage)
    # Damage in the middle of the log, each with the number of records read before it.
    mid_log: list[tuple[int, Damage]] = field(default_factory=list)


def read_directory(directory: Path, *, salvage: bool = False) -> JournalRead:
    """Every readable record of a host's journal, in order, and what was damaged.

    A torn tail (damage running to the end of the last segment) is dropped and described.
    Damage in the middle of the log raises JournalDamagedError naming the file, the offset and
    the conversations that may have lost records, unless ``salvage``: then reading resumes at
    the next valid frame, and the damage is in ``mid_log``.
    """
    records: list[dict[str, Any]] = []
    found: list[tuple[int, Damage]] = []
    paths = sorted(directory.glob("*.seg"), key=segment_number)
    for number, path in enumerate(paths, 1):
        items = list(_scan(path))
        size = path.stat().st_size
        for index, item in enumerate(items):
            if isinstance(item, Damage):
                last = number == len(paths) and index == len(items) - 1
                found.append((len(records), replace(item, tail=last and item.end == size)))
            else:
                records.append(item)
    mid_log = [
        (at, replace(d, records_after=len(records) - at, conversations=_exposed(records, at)))
        for at, d in found
        if not d.tail
    ]
    if mid_log and not salvage:
        raise JournalDamagedError(tuple(d for _, d in mid_log))
    damage = [d.describe() for _, d in found]
    return JournalRead(records, damage, mid_log)


def _exposed(records: list[dict[str, Any]], at: int) -> tuple[str, ...]:
    """Conversations that may have had records where ``records[at]`` was read after damage:
    open before it (not closed), or with records after it but no opening record before them."""
    state: dict[str, str] = {}
    for record in records[:at]:
        kind = record.get("k")
        if kind in ("open", "closed"):
            state[record["c"]] = kind
    exposed = {c for c, kind in state.items() if kind == "open"}
    opened_after: set[str] = set()
    for record in records[at:]:
        conversation_id = record["c"]
        if record.get("k") == "open":
            opened_after.add(conversation_id)
        elif conversation_id not in state and conversation_id not in opened_after:
            exposed.add(conversation_id)  # its opening record was in the damaged bytes
    return tuple(sorted(exposed))


def read_segment(path: Path) -> Iterator[dict[str, Any] | str]:
    """The records of one segment; a string in the stream describes unreadable bytes, after
    which reading resumes at the next valid frame (if any)."""
    for item in _scan(path):
        yield item.describe() if isinstance(item, Damage) else item


def _scan(path: Path) -> Iterator[dict[str, Any] | Damage]:
    data = path.read_bytes()
    if len(data) < len(HEADER) and MAGIC.startswith(data[: len(MAGIC)]):
        if data:
            yield Damage(str(path), 0, len(data), f"torn header ({len(data)} bytes)", tail=True)
        return
    if data[: len(MAGIC)] != MAGIC:
        raise JournalError(f"{path}: not a cx journal segment")
    if data[len(MAGIC)] != VERSION:
        raise JournalError(
            f"{path}: journal version {data[len(MAGIC)]}, this engine reads version {VERSION}"
        )
    offset = len(HEADER)
    while offset < len(data):
        record, problem = _frame_at(data, offset)
        if record is not None:
            yield record
            offset += _FRAME.size + _FRAME.unpack_from(data, offset)[0]
            continue
        resume = _next_frame(data, offset + 1)
        yield Damage(str(path), offset, resume, problem, tail=resume == len(data))
        offset = resume


def _frame_at(data: bytes, offset: int) -> tuple[dict[str, Any] | None, str]:
    """The record of the frame at ``offset``, or None and what is wrong with it."""
    if offset + _FRAME.size > len(data):
        return None, "torn frame header"
    length, crc = _FRAME.unpack_from(data, offset)
    start = offset + _FRAME.size
    if length > MAX_RECORD_BYTES or start + length > len(data):
        return None, "torn frame"
    payload = data[start : start + length]
    if zlib.crc32(payload) != crc:
        return None, "corrupt frame (CRC mismatch)"
    try:
        record = msgpack.unpackb(payload, raw=False, strict_map_key=True)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as error:
        return None, f"undecodable frame ({error})"
    if not isinstance(record, dict) or not isinstance(record.get("c"), str):
        return None, "malformed record"
    return record, ""


_RECORD_START = re.compile(rb"[\x80-\x8f\xde\xdf]")  # a record is a msgpack map


def _next_frame(data: bytes, offset: int) -> int:
    """Where the next valid frame (length, CRC and record all valid) starts at or after
    ``offset``; ``len(data)`` if none does. Only positions whose payload would start like a
    msgpack map are tried."""
    for found in _RECORD_START.finditer(data, offset + _FRAME.size):
        start = found.start() - _FRAME.size
        length, _ = _FRAME.unpack_from(data, start)
        fits = 0 < length <= MAX_RECORD_BYTES and found.start() + length <= len(data)
        if fits and _frame_at(data, start)[0] is not None:
            return start
    return len(data)
