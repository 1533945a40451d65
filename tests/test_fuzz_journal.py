"""Fuzzing the journal reader.

``read_segment``/``read_directory`` on random and damaged segments only ever yield records and
at most one damage string (last), or raise ``JournalError`` naming the file, within a time bound.
Damage to a real journal (cut short, bits flipped, bytes overwritten) leaves exactly a prefix of
what was written, and an engine started on it restores a prefix of each conversation's events,
never an archived conversation and never two live conversations in one room.

The long run is ``python -m bench.fuzz`` (docs/RELIABILITY.md).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.fuzz import check_segment, time_limit
from infra.journal_segment import HEADER, JournalError, encode_frame, read_segment
from runtime.gateway import Gateway, UnavailableError
from tests.conftest import salvage_storage
from tests.fuzz_support import EXAMPLES, FUZZ, STRATEGIES


@FUZZ
@given(STRATEGIES["journal"])
def test_any_segment_reads_as_records_and_damage_or_is_refused(data: bytes) -> None:
    assert check_segment(data) in ("clean", "damaged", "refused")


def _raw(payload: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">II", len(payload), zlib.crc32(payload)) + payload


@st.composite
def damaged_segments(draw: Any) -> tuple[list[dict[str, Any]], bytes, int, int]:
    """Records, their segment with bytes ``[start, end)`` damaged, start and end."""
    records = draw(st.lists(STRATEGIES["records"], min_size=1, max_size=8))
    clean = HEADER + b"".join(encode_frame(r) for r in records)
    at = draw(st.integers(len(HEADER), len(clean)))
    kind = draw(st.sampled_from(["cut", "flip", "overwrite", "zeros", "append"]))
    data = bytearray(clean)
    end = len(clean)  # from ``at`` on, nothing is left as written
    if kind == "cut":
        del data[at:]
    elif kind == "flip" and at < len(data):
        data[at] ^= 1 << draw(st.integers(0, 7))
        end = at + 1
    elif kind == "overwrite" and at < len(data):
        chunk = draw(st.binary(min_size=1, max_size=16))
        data[at : at + len(chunk)] = chunk
        end = at + len(chunk)
    elif kind == "zeros":  # a file system that extended the file without the data
        data[at:] = bytes(draw(st.integers(1, 64)))
    else:
        data[len(data) :] = draw(st.binary(min_size=1, max_size=16))
        at = end = len(clean)
    return records, bytes(data), at, end


def _subsequence(items: list[Any], of: list[Any]) -> bool:
    remaining = iter(of)
    return all(any(item == other for other in remaining) for item in items)


@FUZZ
@given(damaged_segments())
def test_damage_loses_only_the_frames_it_touches(
    case: tuple[list[dict[str, Any]], bytes, int, int],
) -> None:
    records, data, at, end = case
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "00000001.seg"
        path.write_bytes(data)
        with time_limit():
            items = list(read_segment(path))
    read = [item for item in items if not isinstance(item, str)]
    damage = [item for item in items if isinstance(item, str)]
    assert _subsequence(read, records), "records that were not written, or out of order"
    # Every frame before the damaged bytes, and every one after them, is read.
    bounds = [len(HEADER)]
    for record in records:
        bounds.append(bounds[-1] + len(encode_frame(record)))
    untouched = [
        record
        for record, start, stop in zip(records, bounds, bounds[1:], strict=False)
        if stop <= at or start >= end
    ]
    assert _subsequence(untouched, read), "an intact frame was not read"
    assert (damage == []) == (data == HEADER + b"".join(encode_frame(r) for r in read)), damage


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", []),
        (b"CX", ["torn header"]),
        (b"CXJ", ["torn header"]),
        (HEADER + b"\xff\xff\xff\xff\x00\x00\x00\x00", ["torn frame"]),
        (HEADER + b"\x00\x00\x00\x00\x00\x00\x00\x00", ["undecodable frame"]),
        (HEADER + _raw(b"\x01"), ["malformed record"]),
        (HEADER + b"\x00\x00", ["torn frame header"]),
    ],
    ids=["empty", "half-header", "no-version", "huge-length", "zeros", "not-a-map", "torn-prefix"],
)
def test_damage_is_described(data: bytes, expected: list[str], tmp_path: Path) -> None:
    path = tmp_path / "00000001.seg"
    path.write_bytes(data)
    items = list(read_segment(path))
    assert len(items) == len(expected)
    for item, fragment in zip(items, expected, strict=True):
        assert isinstance(item, str) and fragment in item and str(path) in item


@pytest.mark.parametrize("data", [b"PK\x03\x04", b"CXJ\x02" + b"\x00" * 8, b"\x00" * 16])
def test_a_foreign_file_is_refused_naming_it(data: bytes, tmp_path: Path) -> None:
    path = tmp_path / "00000001.seg"
    path.write_bytes(data)
    with pytest.raises(JournalError, match=str(path)):
        list(read_segment(path))


# ------------------------------------------------------------------------------ through the engine


@pytest.fixture(scope="module")
def written_storage(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """Storage of an engine that ran three conversations (one archived) and stopped."""
    root = tmp_path_factory.mktemp("journal-fuzz")
    with Gateway.embedded(_config(root), seed=5) as gw:
        refs = [gw.start_session(f"cust-{i}", "WEB", f"v{i}") for i in range(3)]
        gw.agent_login("alice", max_conversations=5)
        gw.agent_join("alice", refs[0].conversation_id)
        for n in range(6):
            for ref in refs:
                gw.customer_message(ref.channel_session_id, f"m{n}", message_id=f"m{n}")
        gw.agent_message("alice", refs[0].conversation_id, "hello")
        gw.end_conversation(refs[2].conversation_id)
        events = {ref.conversation_id: gw.events(ref.conversation_id) for ref in refs}
    return root, {"refs": refs, "events": events}


_config = salvage_storage


@settings(
    FUZZ,
    max_examples=max(EXAMPLES // 8, 25),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_an_engine_started_on_a_damaged_journal_restores_a_prefix(
    written_storage: tuple[Path, dict[str, Any]], data: st.DataObject
) -> None:
    source, written = written_storage
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "storage"
        shutil.copytree(source, root)
        (segment,) = sorted((root / "journal").rglob("*.seg"))
        content = bytearray(segment.read_bytes())
        at = data.draw(st.integers(len(HEADER), len(content)), label="offset")
        cut = data.draw(st.booleans(), label="cut")
        if cut:
            del content[at:]
        elif at < len(content):
            content[at] ^= 1 << data.draw(st.integers(0, 7), label="bit")
        segment.write_bytes(bytes(content))
        salvage = data.draw(st.booleans(), label="salvage")
        with time_limit(20.0, "an engine starting on a damaged journal"):
            try:
                started = Gateway.embedded(_config(root, salvage=salvage), seed=6)
            except UnavailableError as refused:  # damage followed by intact frames
                assert not salvage and not cut, refused  # a cut is a torn tail
                assert f"{segment}: journal damaged in the middle" in str(refused)
                assert segment.read_bytes() == bytes(content)  # nothing deleted
                return
        with (
            time_limit(20.0, "an engine restoring a damaged journal"),
            started as gw,
        ):
            assert gw.boot["error"] is None
            live = {}
            for ref in written["refs"]:
                original = written["events"][ref.conversation_id]
                try:
                    snapshot = gw.conversation(ref.conversation_id)
                except Exception:  # its opening record was lost: not restored
                    continue
                events = gw.events(ref.conversation_id)
                assert events == original[: len(events)], ref.conversation_id
                if snapshot["state"] == "CLOSED":
                    assert events == original  # the archived one comes from the archive
                else:
                    live.setdefault(snapshot["room_id"], []).append(ref.conversation_id)
            assert all(len(ids) == 1 for ids in live.values()), live
            original = source.joinpath(segment.relative_to(root)).read_bytes()
            # (a cut at a frame boundary leaves a shorter journal with nothing to detect)
            if bytes(content) != original and not (cut and at in _frame_starts(original)):
                restored = sum(len(ids) for ids in live.values())
                assert gw.boot["damage"] or restored == 2


def _frame_starts(segment: bytes) -> set[int]:
    starts, offset = set(), len(HEADER)
    while offset < len(segment):
        starts.add(offset)
        offset += 8 + int.from_bytes(segment[offset : offset + 4], "big")
    return starts
