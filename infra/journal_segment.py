"""The journal's segment files: header, frames, and scanning them for records and damage.

A segment (``<number>.seg`` in a host's journal directory) starts with :data:`MAGIC` and a
version byte (:data:`~infra.journal_records.FORMAT_VERSION`), then holds frames: a 4-byte
big-endian payload length, the payload's CRC-32, and the payload, one record as a msgpack map
(:mod:`infra.journal_records`). :func:`scan` yields a segment's records in order and, for bytes
where a valid frame should start and does not (cut short, a CRC mismatch, undecodable, not a
record), a :class:`Damage`, resuming at the next position where a frame's header, CRC and
record all validate. A segment of another version is refused with an error naming the file.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgpack

from infra.archive_errors import StorageError
from infra.journal_records import FORMAT_VERSION, Record, is_record

MAGIC = b"CXJ"
VERSION = FORMAT_VERSION
HEADER = MAGIC + bytes([VERSION])
#: A frame's header: the payload's length and CRC-32, big-endian.
FRAME = struct.Struct(">II")
MAX_RECORD_BYTES = 64 * 1024 * 1024


class JournalError(StorageError):
    """A journal that this engine cannot read (another version, not a journal)."""


class JournalUnreadable(JournalError):
    """A journal that cannot be reached for now (its database server is down or cut off)."""


def encode_frame(record: Record) -> bytes:
    payload: bytes = msgpack.packb(record, use_bin_type=True)
    return FRAME.pack(len(payload), zlib.crc32(payload)) + payload


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


def read_segment(path: Path) -> Iterator[Record | str]:
    """The records of one segment; a string in the stream describes unreadable bytes, after
    which reading resumes at the next valid frame (if any)."""
    for item in scan(path):
        yield item.describe() if isinstance(item, Damage) else item


def scan(path: Path) -> Iterator[Record | Damage]:
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
        record, problem = frame_at(data, offset)
        if record is not None:
            yield record
            offset += FRAME.size + FRAME.unpack_from(data, offset)[0]
            continue
        resume = _next_frame(data, offset + 1)
        yield Damage(str(path), offset, resume, problem, tail=resume == len(data))
        offset = resume


def frame_at(data: bytes, offset: int) -> tuple[Record | None, str]:
    """The record of the frame at ``offset``, or None and what is wrong with it."""
    if offset + FRAME.size > len(data):
        return None, "torn frame header"
    length, crc = FRAME.unpack_from(data, offset)
    start = offset + FRAME.size
    if length > MAX_RECORD_BYTES or start + length > len(data):
        return None, "torn frame"
    payload = data[start : start + length]
    if zlib.crc32(payload) != crc:
        return None, "corrupt frame (CRC mismatch)"
    try:
        record = msgpack.unpackb(payload, raw=False, strict_map_key=True)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as error:
        return None, f"undecodable frame ({error})"
    if not is_record(record):
        return None, "malformed record"
    return record, ""


_RECORD_START = re.compile(rb"[\x80-\x8f\xde\xdf]")  # a record is a msgpack map


def _next_frame(data: bytes, offset: int) -> int:
    """Where the next valid frame (length, CRC and record all valid) starts at or after
    ``offset``; ``len(data)`` if none does. Only positions whose payload would start like a
    msgpack map are tried."""
    for found in _RECORD_START.finditer(data, offset + FRAME.size):
        start = found.start() - FRAME.size
        length, _ = FRAME.unpack_from(data, start)
        fits = 0 < length <= MAX_RECORD_BYTES and found.start() + length <= len(data)
        if fits and frame_at(data, start)[0] is not None:
            return start
    return len(data)
