"""Journal damage in the middle of a log is never silently lost.

A torn tail (damage running to the end of a host's last segment: what a crash leaves) is
dropped quietly. Damage followed by valid frames, or in a segment that is not the last, stops
the start-up naming the file, the offset and the conversations that may have lost records,
and deletes nothing; with salvage every intact frame is restored, the losses are reported per
conversation, and the damaged journal is moved aside.
"""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest
from thespian.actors import ActorExitRequest

from infra.archive_errors import StorageError
from infra.config import load_config
from infra.journal_read import JournalDamagedError, read_directory
from infra.journal_segment import FRAME, HEADER, JournalError, encode_frame, read_segment
from runtime import procs, testing
from runtime.gateway import Gateway, UnavailableError, UnknownIdError
from runtime.system import start
from tests.conftest import salvage_storage
from tests.multiproc_support import system_pids, write_config
from tests.test_cli import cx, one_line

storage = salvage_storage


def frames(data: bytes) -> list[tuple[int, int]]:
    """(offset, size) of every frame of an undamaged segment."""
    found, offset = [], len(HEADER)
    while offset < len(data):
        length, _ = FRAME.unpack_from(data, offset)
        found.append((offset, FRAME.size + length))
        offset += FRAME.size + length
    return found


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Storage of an engine that ran four conversations and stopped, and the offset of the
    frame to damage: the last frame of D before C opened. A, B and D were open then; after it
    A and D got messages, C opened and got one; B was quiet."""
    root = tmp_path_factory.mktemp("damage")
    with Gateway.embedded(storage(root), seed=3) as gw:
        a, b, d = (gw.start_session(f"cust-{n}", "WEB", f"v{n}") for n in "abd")
        gw.customer_message(a.channel_session_id, "a1", message_id="a1")
        gw.customer_message(d.channel_session_id, "d1", message_id="d1")
        (segment,) = (root / "journal").glob("*/*.seg")
        before = frames(segment.read_bytes())
        damaged_at, size = before[-1]  # D's "d1"
        c = gw.start_session("cust-c", "WEB", "vc")
        for ref, text in ((a, "a2"), (d, "d2"), (c, "c1")):
            gw.customer_message(ref.channel_session_id, text, message_id=text)
        events = {ref.conversation_id: gw.events(ref.conversation_id) for ref in (a, b, c, d)}
    after = len(frames(segment.read_bytes())) - len(before)
    ids = {name: ref.conversation_id for name, ref in zip("abcd", (a, b, c, d), strict=True)}
    return {
        "root": root,
        "ids": ids,
        "events": events,
        "at": damaged_at,
        "size": size,
        "after": after,
    }


def damaged_copy(
    written: dict[str, Any], tmp_path: Path, at: int | None = None
) -> tuple[Path, Path, bytes]:
    """A copy of the written storage with one byte flipped inside the frame at ``at`` (by
    default the chosen one)."""
    root = tmp_path / "storage"
    shutil.copytree(written["root"], root)
    (segment,) = (root / "journal").glob("*/*.seg")
    content = bytearray(segment.read_bytes())
    content[(written["at"] if at is None else at) + FRAME.size + 3] ^= 0x10
    segment.write_bytes(bytes(content))
    return root, segment, bytes(content)


def test_a_flipped_byte_mid_segment_stops_start_up_naming_file_offset_and_conversations(
    written: dict[str, Any], tmp_path: Path
) -> None:
    root, segment, content = damaged_copy(written, tmp_path)
    with pytest.raises(UnavailableError) as refused:
        Gateway.embedded(storage(root), seed=4)
    message = str(refused.value)
    assert str(segment) in message
    assert f"byte offset {written['at']}" in message
    ids = written["ids"]
    for name in "abd":  # open at the damage
        assert ids[name] in message
    assert ids["c"] not in message  # opened after it
    assert segment.read_bytes() == content  # nothing deleted or changed
    assert not (root / "damaged").exists()


def test_mid_log_damage_is_a_typed_journal_error_with_the_exposed_conversations(
    written: dict[str, Any], tmp_path: Path
) -> None:
    _, segment, _ = damaged_copy(written, tmp_path)
    with pytest.raises(JournalDamagedError) as refused:
        read_directory(segment.parent)
    assert isinstance(refused.value, JournalError) and isinstance(refused.value, StorageError)
    (damage,) = refused.value.damage
    ids = written["ids"]
    assert (damage.path, damage.offset, damage.tail) == (str(segment), written["at"], False)
    assert set(damage.conversations) == {ids["a"], ids["b"], ids["d"]}
    assert damage.records_after == written["after"] > 0
    assert damage.end == written["at"] + written["size"]  # reading resumed at the next frame


def test_runtime_system_start_refuses_mid_log_damage_with_the_typed_error(
    written: dict[str, Any], tmp_path: Path
) -> None:
    root, segment, content = damaged_copy(written, tmp_path)
    settings = load_config({**storage(root), "system": {"base": "simpleSystemBase"}})
    with pytest.raises(JournalDamagedError, match=f"byte offset {written['at']}"):
        start(settings)
    assert segment.read_bytes() == content


# ------------------------------------------------------------------------------ salvage


def test_salvage_restores_every_intact_frame_after_the_damage(
    written: dict[str, Any], tmp_path: Path
) -> None:
    root, _, _ = damaged_copy(written, tmp_path)
    ids, events = written["ids"], written["events"]
    with Gateway.embedded(storage(root, salvage=True), seed=4) as gw:
        assert gw.boot["error"] is None
        for name in "abc":  # C opened after the damage; A's records replay across it
            assert gw.events(ids[name]) == events[ids[name]], name
        assert gw.status()["conversations"] == {"CREATED": 3}


def test_salvage_reports_what_each_conversation_lost(
    written: dict[str, Any], tmp_path: Path
) -> None:
    root, segment, _ = damaged_copy(written, tmp_path)
    ids = written["ids"]
    log_file = tmp_path / "cx.log"
    config = {**storage(root, salvage=True), "logging": {"level": "warning", "file": str(log_file)}}
    with Gateway.embedded(config, seed=4) as gw:
        outcomes = {loss["conversation_id"]: loss["outcome"] for loss in gw.boot["salvaged"]}
        assert outcomes == {ids["a"]: "restored", ids["b"]: "restored_prefix", ids["d"]: "refused"}
        assert {(loss["file"], loss["offset"]) for loss in gw.boot["salvaged"]} == {
            (str(segment), written["at"])
        }
        with pytest.raises(UnknownIdError):  # the gap in its journal: not restored
            gw.conversation(ids["d"])
    logs = [json.loads(line) for line in log_file.read_text().splitlines()]
    logged = {e["conversation_id"]: e["outcome"] for e in logs if e["event"] == "journal_salvaged"}
    assert logged == outcomes


def test_salvage_reports_a_conversation_whose_opening_record_was_lost(
    written: dict[str, Any], tmp_path: Path
) -> None:
    opening_of_c = written["at"] + written["size"]  # C opened right after D's "d1"
    root, _, _ = damaged_copy(written, tmp_path, at=opening_of_c)
    ids = written["ids"]
    with Gateway.embedded(storage(root, salvage=True), seed=4) as gw:
        outcomes = {loss["conversation_id"]: loss["outcome"] for loss in gw.boot["salvaged"]}
        assert outcomes[ids["c"]] == "unrestorable"
        with pytest.raises(UnknownIdError):
            gw.conversation(ids["c"])
        assert gw.events(ids["d"]) == written["events"][ids["d"]]  # nothing of D was lost


def test_salvage_moves_the_damaged_journal_aside(written: dict[str, Any], tmp_path: Path) -> None:
    root, segment, content = damaged_copy(written, tmp_path)
    with Gateway.embedded(storage(root, salvage=True), seed=4):
        pass
    (kept,) = (root / "damaged").glob(f"*/{segment.parent.name}/{segment.name}")
    assert kept.read_bytes() == content
    assert not segment.parent.exists()


# ------------------------------------------------------------------------------ torn tails


@pytest.mark.parametrize("tail", ["cut", "zeros"])
def test_a_torn_tail_is_truncated_quietly_and_start_succeeds(
    written: dict[str, Any], tmp_path: Path, tail: str
) -> None:
    root = tmp_path / "storage"
    shutil.copytree(written["root"], root)
    (segment,) = (root / "journal").glob("*/*.seg")
    data = segment.read_bytes()
    # a crash cut the last write short, or the file system extended the file without data
    segment.write_bytes(data[:-5] if tail == "cut" else data + bytes(4096))
    with Gateway.embedded(storage(root), seed=4) as gw:
        assert gw.boot["error"] is None
        assert gw.boot["salvaged"] == [] and gw.boot["refused"] == []
        assert len(gw.boot["damage"]) == 1 and "dropped" in gw.boot["damage"][0]
        assert gw.status()["conversations"] == {"CREATED": 4}
    assert not (root / "damaged").exists()


def test_damage_in_a_segment_that_is_not_the_last_is_mid_log(tmp_path: Path) -> None:
    first = {"k": "open", "c": "conv-1", "t": 0}
    (tmp_path / "00000001.seg").write_bytes(HEADER + encode_frame(first) + encode_frame(first)[:6])
    (tmp_path / "00000002.seg").write_bytes(HEADER + encode_frame({"k": "cmd", "c": "conv-1"}))
    with pytest.raises(JournalDamagedError, match=r"00000001\.seg.*conv-1"):
        read_directory(tmp_path)
    (tmp_path / "00000002.seg").unlink()  # now the torn frame ends the last segment
    assert read_directory(tmp_path).records == [first]


def test_reading_resumes_at_the_next_valid_frame_after_damage(tmp_path: Path) -> None:
    records = [{"k": "cmd", "c": "conv-1", "n": n} for n in range(3)]
    data = bytearray(HEADER + b"".join(encode_frame(r) for r in records))
    data[len(HEADER) + len(encode_frame(records[0])) + FRAME.size + 2] ^= 1
    path = tmp_path / "00000001.seg"
    path.write_bytes(bytes(data))
    items = list(read_segment(path))
    assert items[0] == records[0] and items[2] == records[2]
    assert isinstance(items[1], str) and "CRC mismatch" in items[1]
    read = read_directory(tmp_path, salvage=True)
    assert read.records == [records[0], records[2]]
    assert [d.offset for _, d in read.mid_log] == [len(HEADER) + len(encode_frame(records[0]))]


# ------------------------------------------------------------------------------ host loss


@pytest.mark.parametrize("salvage", [False, True], ids=["plain", "started-with-salvage"])
def test_host_loss_recovery_stops_at_mid_log_damage_and_keeps_the_journal(
    tmp_path: Path, salvage: bool
) -> None:
    # salvage is a person's decision at a start: a later host loss never salvages on its own
    with Gateway.embedded(storage(tmp_path, salvage=salvage), seed=4) as gw:
        refs = [gw.start_session(f"cust-{n}", "WEB", f"v{n}") for n in range(2)]
        for ref in refs:
            gw.customer_message(ref.channel_session_id, "hello")
        (segment,) = (tmp_path / "journal").glob("*/*.seg")
        data = bytearray(segment.read_bytes())
        offset, _ = frames(bytes(data))[2]
        data[offset + FRAME.size + 1] ^= 0x40
        segment.write_bytes(bytes(data))
        monitor = testing.actor(gw, testing.addresses(gw).monitor)
        (host,) = monitor.placement.hosts.values()
        testing.system(gw).tell(host.address, ActorExitRequest())
        assert gw.status()["conversations"] == {}  # none restored from the damaged journal
        for ref in refs:
            with pytest.raises(UnknownIdError):
                gw.conversation(ref.conversation_id)
        assert segment.read_bytes() == bytes(data)


# ------------------------------------------------------------------------------ cx start


@pytest.mark.multiproc
def test_cx_start_refuses_mid_log_damage_in_one_line_and_exits_3(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    with Gateway.embedded(config, seed=4) as gw:
        for n in range(3):
            ref = gw.start_session(f"cust-{n}", "WEB", f"v{n}")
            gw.customer_message(ref.channel_session_id, "hello")
    (segment,) = (tmp_path / "journal").glob("*/*.seg")
    data = bytearray(segment.read_bytes())
    offset, _ = frames(bytes(data))[1]
    data[offset + FRAME.size + 1] ^= 0x40
    segment.write_bytes(bytes(data))
    try:
        started = cx("start", "--config", str(config), cwd=tmp_path)
        assert started.returncode == 3, started
        line = one_line(started.stderr)
        assert line.startswith("cx start: the engine could not start: ")
        assert f"{segment}: journal damaged in the middle at byte offset {offset}" in line
        assert "--salvage-journal" in line and "Traceback" not in started.stderr
        assert segment.read_bytes() == bytes(data)
    finally:
        left = system_pids(config)
        if left:
            cx("stop", "--config", str(config), cwd=tmp_path)
            procs.signal_all(system_pids(config), signal.SIGKILL)
    assert not left, f"processes left behind: {sorted(left)}"
