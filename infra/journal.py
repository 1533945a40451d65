"""The journal: what every live conversation did, on disk before anything leaves its host.

Each host writes one directory (``storage.journal/<host id>``) of numbered segment files
(:mod:`infra.journal_segment`) holding its records (:mod:`infra.journal_records`, described in
docs/JOURNAL.md). The state machine is deterministic, so replaying a conversation's commands
rebuilds it exactly (its sessions, participants, timers with their tokens, sequence numbers);
the journaled events are compared with the replayed ones.

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

Reading is :func:`infra.journal_read.read_directory` (at start-up and when a host dies).
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra import failpoints
from infra.archive_errors import StorageError
from infra.journal_read import read_directory
from infra.journal_records import Record, compacted_record, conversation_of
from infra.journal_segment import (
    HEADER,
    encode_frame,
    frame_at,
    read_segment,
    segment_number,
)

SEGMENT_BYTES = 8 * 1024 * 1024
#: How long records of archived conversations may stay in a host's journal before it is
#: compacted (sooner when they make up half of it).
COMPACT_AFTER_S = 60.0


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
    holds_events = True  # every published event can be read back (records_of)
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

    def add(self, conversation_id: str, record: Record) -> None:
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
                    r
                    for r in read_segment(path)
                    if isinstance(r, dict) and r["c"] == conversation_id
                ]
        for frame in self._pending:
            record, _ = frame_at(frame, 0)
            if record is not None and record["c"] == conversation_id:
                records.append(record)
        return records

    def durable_records(self) -> list[Record]:
        """Every record in the segment files, in order (what a restart would read); raises
        :class:`~infra.journal_segment.JournalError` if the directory is damaged."""
        return read_directory(self.directory).records

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
        frames = [encode_frame(compacted_record(through))]
        sizes: dict[str, int] = {}
        for path in sorted(self.directory.glob("*.seg"), key=segment_number):
            if segment_number(path) > through:
                continue
            for record in read_segment(path):
                if isinstance(record, str):
                    return False  # damaged: keep every file as it is for a person to look at
                conversation_id = conversation_of(record)
                if conversation_id in needed:
                    frame = encode_frame(record)
                    frames.append(frame)
                    sizes[conversation_id] = sizes.get(conversation_id, 0) + len(frame)
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
