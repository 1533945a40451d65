"""Partitions: which of ``parts`` places a key (an agent id, a queue name) belongs to.

A stable hash (CRC-32 of the key's UTF-8 bytes, not Python's salted ``hash``), so that every
process, on every node and after every restart, computes the same part for the same key.
"""

from __future__ import annotations

import zlib


def partition_of(key: str, parts: int) -> int:
    """The part, from 0 to ``parts - 1``, that ``key`` belongs to (0 when ``parts`` is 1)."""
    if parts < 1:
        raise ValueError(f"parts must be at least 1, not {parts}")
    return zlib.crc32(key.encode("utf-8")) % parts
