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
A torn or corrupt tail (a frame cut short by a crash, a CRC mismatch) ends the readable part of
its segment: the valid prefix is used and the damage reported; a segment of another version is
refused with an error naming the file.
"""

from __future__ import annotations

import os
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
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


@dataclass
class JournalRead:
    records: list[dict[str, Any]]
    damage: list[str]


def read_directory(directory: Path) -> JournalRead:
    """Every readable record of a host's journal, in order, and what was damaged."""
    records: list[dict[str, Any]] = []
    damage: list[str] = []
    for path in sorted(directory.glob("*.seg"), key=segment_number):
        for item in read_segment(path):
            if isinstance(item, str):
                damage.append(item)
            else:
                records.append(item)
    return JournalRead(records, damage)


def read_segment(path: Path) -> Iterator[dict[str, Any] | str]:
    """The records of one segment; a string in the stream describes damage that ends it."""
    data = path.read_bytes()
    if len(data) < len(HEADER) and MAGIC.startswith(data[: len(MAGIC)]):
        if data:
            yield f"{path}: torn header ({len(data)} bytes): segment ignored"
        return
    if data[: len(MAGIC)] != MAGIC:
        raise JournalError(f"{path}: not a cx journal segment")
    if data[len(MAGIC)] != VERSION:
        raise JournalError(
            f"{path}: journal version {data[len(MAGIC)]}, this engine reads version {VERSION}"
        )
    offset = len(HEADER)
    while offset < len(data):
        if offset + _FRAME.size > len(data):
            yield f"{path}: torn frame header at offset {offset}: {len(data) - offset} bytes dropped"
            return
        length, crc = _FRAME.unpack_from(data, offset)
        start = offset + _FRAME.size
        if length > MAX_RECORD_BYTES or start + length > len(data):
            yield f"{path}: torn frame at offset {offset}: {len(data) - offset} bytes dropped"
            return
        payload = data[start : start + length]
        if zlib.crc32(payload) != crc:
            yield f"{path}: corrupt frame (CRC mismatch) at offset {offset}: {len(data) - offset} bytes dropped"
            return
        try:
            record = msgpack.unpackb(payload, raw=False, strict_map_key=True)
        except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as error:
            yield f"{path}: undecodable frame at offset {offset} ({error}): {len(data) - offset} bytes dropped"
            return
        if not isinstance(record, dict) or not isinstance(record.get("c"), str):
            yield f"{path}: malformed record at offset {offset}: {len(data) - offset} bytes dropped"
            return
        yield record
        offset = start + length
