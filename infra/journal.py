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
``fsync_interval_ms`` later) or ``never`` (the OS decides). A write or fsync that fails leaves
the segment as it was (what was written of it is cut off) and raises
:class:`JournalWriteFailed`: the host acknowledges none of it (see :mod:`actors.durability`).
A segment is deleted once every conversation with records in it is archived (or moved) and it
is no longer being written; records of archived conversations beside live ones are removed by
:meth:`JournalWriter.compact`, which rewrites the needed records into a new segment opening
with a ``compacted`` record that supersedes the older segments.

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

import contextlib
import errno
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

from infra import failpoints
from infra.archive import StorageError

MAGIC = b"CXJ"
VERSION = 1
HEADER = MAGIC + bytes([VERSION])
_FRAME = struct.Struct(">II")
MAX_RECORD_BYTES = 64 * 1024 * 1024
SEGMENT_BYTES = 8 * 1024 * 1024
#: How long records of archived conversations may stay in a host's journal before it is
#: compacted (sooner when they make up half of it).
COMPACT_AFTER_S = 60.0
#: The record that opens a compacted segment: ``{"k": COMPACTED, "c": "", "through": N}``;
#: segments numbered up to N are superseded by it.
COMPACTED = "compacted"


class JournalError(StorageError):
    """A journal that this engine cannot read (another version, not a journal)."""


def encode_frame(record: dict[str, Any]) -> bytes:
    payload: bytes = msgpack.packb(record, use_bin_type=True)
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


class JournalWriteFailed(StorageError):
    """A write or fsync of the journal failed: what it carried is not durable."""


class Disk:
    """The system calls the journal writer makes. A fault drill substitutes its own (a disk
    that fills up, an fsync that fails) through :data:`DISK`; the engine always uses this one
    otherwise."""

    def write(self, fd: int, data: bytes) -> int:
        failpoints.check("journal.write")
        return os.write(fd, data)

    def fsync(self, fd: int) -> None:
        failpoints.check("journal.fsync")
        os.fsync(fd)

    def truncate(self, fd: int, size: int) -> None:
        os.ftruncate(fd, size)


#: The disk every new :class:`JournalWriter` writes through.
DISK = Disk()
PROBE_FILE = "probe.tmp"
PROBE_BYTES = 64 * 1024


@dataclass
class JournalWriter:
    """One host's journal. Records are added while a message is handled and written by
    :meth:`flush` before anything leaves the host.

    A write or fsync that fails raises :class:`JournalWriteFailed` and leaves the segment as it
    was before that flush (what was written of it is cut off again): the records of that flush
    are gone, and the caller must undo what they described and acknowledge none of it. The
    writer is then *failed* (:attr:`failure`): it refuses to write until :meth:`probe` has shown
    that the file system takes a write and an fsync again."""

    directory: Path
    fsync: str = "interval"
    interval_ms: int = 50
    segment_bytes: int = SEGMENT_BYTES
    disk: Disk = field(default_factory=lambda: DISK)
    failure: str | None = None  # why the last write failed, until a probe succeeds
    _pending: list[bytes] = field(default_factory=list)
    _pending_new: set[str] = field(default_factory=set)  # registered in this flush only
    _segment: int = 0
    _file: Any = None
    _size: int = 0  # bytes of the current segment on disk
    # segment -> conversation -> bytes of its records there, for conversations still needed
    _live: dict[int, dict[str, int]] = field(default_factory=dict)
    _dead_bytes: int = 0  # records of forgotten conversations still in the files
    _dead_since: float | None = None  # when the oldest of them was forgotten
    _last_sync: float = 0.0
    _unsynced: bool = False

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        existing = sorted(segment_number(p) for p in self.directory.glob("*.seg"))
        self._open_segment((existing[-1] + 1) if existing else 1)

    @property
    def pending(self) -> bool:
        return bool(self._pending)

    def add(self, conversation_id: str, record: dict[str, Any]) -> None:
        frame = encode_frame(record)
        self._pending.append(frame)
        live = self._live[self._segment]
        held = live.get(conversation_id)
        if held is None:
            self._pending_new.add(conversation_id)
            held = 0
        live[conversation_id] = held + len(frame)

    def flush(self) -> None:
        """Write what was added (one write), then sync as the policy says; raises
        :class:`JournalWriteFailed` (and leaves nothing of it in the file) if the disk
        refuses the write or the sync that covers it."""
        if not self._pending:
            self.sync_if_due()
            return
        data = b"".join(self._pending)
        self._pending.clear()
        new, self._pending_new = self._pending_new, set()
        if self.failure is not None:
            self._drop(new)
            raise JournalWriteFailed(f"journal {self.directory} is failing: {self.failure}")
        start = self._size
        try:
            self._write_all(data)
            self._unsynced = True
            if self.fsync == "always" or self.sync_due_in_ms() == 0:
                self._sync()
        except OSError as error:
            self._cut(start)
            self._drop(new)
            self.failure = _describe(error)
            raise JournalWriteFailed(
                f"journal {self.directory}: write failed: {self.failure}"
            ) from error
        self._size = start + len(data)
        if self._size >= self.segment_bytes:
            self._rotate()

    def sync_due_in_ms(self) -> int | None:
        """Under the interval policy: in how many ms unsynced records must be synced."""
        if not self._unsynced or self.fsync != "interval":
            return None
        elapsed_ms = (time.monotonic() - self._last_sync) * 1000
        return max(0, int(self.interval_ms - elapsed_ms))

    def sync_if_due(self) -> None:
        """Sync what the interval policy says is due; a failing fsync fails the writer (the
        records it covered were acknowledged under that policy: they are what an OS crash
        could have lost too) and raises :class:`JournalWriteFailed`."""
        if self.failure is not None or self.sync_due_in_ms() != 0:
            return
        try:
            self._sync()
        except OSError as error:
            self.failure = _describe(error)
            raise JournalWriteFailed(
                f"journal {self.directory}: fsync failed: {self.failure}"
            ) from error

    def probe(self) -> bool:
        """While failed: whether the file system takes a write and an fsync again (a scratch
        file in the journal's directory, removed at once). Clears :attr:`failure` if so."""
        if self.failure is None:
            return True
        path = self.directory / PROBE_FILE
        try:
            try:
                self._create(path, bytes(PROBE_BYTES))
                self.disk.fsync(self._file.fileno())  # what was written before the failure
            finally:
                path.unlink(missing_ok=True)
        except OSError as error:
            self.failure = _describe(error)
            return False
        self.failure = None
        self._last_sync = time.monotonic()
        self._unsynced = False
        return True

    def records_of(self, conversation_id: str) -> list[dict[str, Any]]:
        """Every record of one conversation this journal holds, in order: those in the
        segment files that hold its records, then those added but not yet written. Raises
        OSError if a file cannot be read; damaged bytes are skipped."""
        records: list[dict[str, Any]] = []
        for segment in sorted(s for s, held in self._live.items() if conversation_id in held):
            path = self._path(segment)
            if path.exists():
                records += [
                    r for r in read_segment(path) if isinstance(r, dict) and r["c"] == conversation_id
                ]
        for frame in self._pending:
            record, _ = _frame_at(frame, 0)
            if record is not None and record["c"] == conversation_id:
                records.append(record)
        return records

    def forget(self, conversation_id: str) -> None:
        """The conversation needs no record from here any more (archived, or moved). A
        segment left with no needed record is deleted at once; records left beside others'
        are removed by the next :meth:`compact`."""
        for segment in list(self._live):
            conversations = self._live[segment]
            held = conversations.pop(conversation_id, None)
            if held is None:
                continue
            if not conversations and segment != self._segment:
                del self._live[segment]
                self._path(segment).unlink(missing_ok=True)
                continue
            self._dead_bytes += held
            if self._dead_since is None:
                self._dead_since = time.monotonic()

    def compaction_due(self, after_s: float = COMPACT_AFTER_S) -> bool:
        """Whether records of forgotten conversations have been in the files for ``after_s``,
        or make up half of them."""
        if self._dead_since is None or self._pending or self.failure is not None:
            return False
        held = sum(sum(c.values()) for c in self._live.values())
        return time.monotonic() - self._dead_since >= after_s or self._dead_bytes >= held

    def compact(self) -> bool:
        """Rewrite the journal without the records of forgotten conversations: the needed
        records, in order, go to a new segment behind a :data:`COMPACTED` record naming the
        last segment it replaces; it is written under a temporary name, synced and renamed
        into place, and only then are the old segments deleted (a reader that still finds
        them skips them). False (and nothing changed) if the disk refuses."""
        if self._pending or self.failure is not None:
            return False
        needed = {c for conversations in self._live.values() for c in conversations}
        through = self._segment
        number = through + 1
        frames = [encode_frame({"k": COMPACTED, "c": "", "through": through})]
        sizes: dict[str, int] = {}
        for path in sorted(self.directory.glob("*.seg"), key=segment_number):
            if segment_number(path) > through:
                continue
            for record in read_segment(path):
                if isinstance(record, str):
                    return False  # damaged: keep every file as it is for a person to look at
                if record["c"] in needed:
                    frame = encode_frame(record)
                    frames.append(frame)
                    sizes[record["c"]] = sizes.get(record["c"], 0) + len(frame)
        temporary = self.directory / f"{number:08d}.tmp"
        data = HEADER + b"".join(frames)
        try:
            self._create(temporary, data)
            os.replace(temporary, self._path(number))
            _sync_directory(self.directory)
        except OSError:
            temporary.unlink(missing_ok=True)
            return False
        self._file.close()
        for path in self.directory.glob("*.seg"):
            if segment_number(path) <= through:
                path.unlink(missing_ok=True)
        self._file = open(self._path(number), "ab", buffering=0)  # noqa: SIM115 (kept open)
        self._segment, self._size = number, len(data)
        self._live = {number: sizes}
        self._dead_bytes, self._dead_since = 0, None
        self._unsynced = False
        return True

    def close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(JournalWriteFailed):
                self.flush()
            if self._unsynced and self.fsync != "never" and self.failure is None:
                with contextlib.suppress(OSError):
                    self._sync()
            self._file.close()
            self._file = None

    def _write_all(self, data: bytes, fd: int | None = None) -> None:
        target = self._file.fileno() if fd is None else fd
        offset = 0
        while offset < len(data):
            written = self.disk.write(target, data[offset:] if offset else data)
            if written <= 0:
                raise OSError(errno.EIO, "the write wrote nothing")
            offset += written

    def _cut(self, size: int) -> None:
        """Undo a failed write: the segment ends where the last good write ended."""
        with contextlib.suppress(OSError):
            self.disk.truncate(self._file.fileno(), size)

    def _drop(self, new: set[str]) -> None:
        live = self._live.get(self._segment)
        if live is not None:
            for conversation_id in new:
                live.pop(conversation_id, None)

    def _sync(self) -> None:
        self.disk.fsync(self._file.fileno())
        self._last_sync = time.monotonic()
        self._unsynced = False

    def _rotate(self) -> None:
        """Start the next segment once this one is full. If the disk refuses (the sync of the
        full segment, or the new segment's header), writing goes on in this one."""
        try:
            if self._unsynced:
                self._sync()
            self._open_segment(self._segment + 1)
        except OSError as error:
            self._path(self._segment + 1).unlink(missing_ok=True)
            if self.fsync == "interval" and self._unsynced:
                self.failure = _describe(error)  # acknowledged records could not be synced
            return

    def _open_segment(self, number: int) -> None:
        """Create segment ``number`` (its header written and synced) and write there from now;
        raises OSError, and changes nothing, if the disk refuses."""
        path = self._path(number)
        self._create(path, HEADER)
        file = open(path, "ab", buffering=0)  # noqa: SIM115 (kept open)
        if self._file is not None:
            self._file.close()
        self._file, self._segment, self._size = file, number, len(HEADER)
        self._live.setdefault(number, {})
        self._last_sync = time.monotonic()

    def _create(self, path: Path, data: bytes) -> None:
        """A new file holding ``data``, synced (a probe, a compacted segment, a header)."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            self._write_all(data, fd)
            self.disk.fsync(fd)
        finally:
            os.close(fd)

    def _path(self, number: int) -> Path:
        return self.directory / f"{number:08d}.seg"


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _describe(error: OSError) -> str:
    name = errno.errorcode.get(error.errno or 0, "")
    return f"{name}: {error.strerror or error}" if name else str(error)


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

    Segments that a compacted segment supersedes are skipped (only a crash during the
    compaction leaves them). A torn tail (damage running to the end of the last segment) is
    dropped and described.
    Damage in the middle of the log raises JournalDamagedError naming the file, the offset and
    the conversations that may have lost records, unless ``salvage``: then reading resumes at
    the next valid frame, and the damage is in ``mid_log``.
    """
    records: list[dict[str, Any]] = []
    found: list[tuple[int, Damage]] = []
    scanned = [(path, list(_scan(path))) for path in sorted(directory.glob("*.seg"), key=segment_number)]
    superseded = max(
        (
            int(item.get("through", 0))
            for _, items in scanned
            for item in items
            if isinstance(item, dict) and item.get("k") == COMPACTED
        ),
        default=0,
    )
    # A crash during a compaction may have left the segments it replaced: they are skipped.
    scanned = [(path, items) for path, items in scanned if segment_number(path) > superseded]
    for number, (path, items) in enumerate(scanned, 1):
        size = path.stat().st_size
        for index, item in enumerate(items):
            if isinstance(item, dict) and item.get("k") == COMPACTED:
                continue
            if isinstance(item, Damage):
                last = number == len(scanned) and index == len(items) - 1
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
