"""Records of archived conversations leave the journal: compaction keeps only what is needed."""

from __future__ import annotations

from pathlib import Path

from infra.journal import JournalWriter
from infra.journal_read import read_directory


def texts(directory: Path) -> list[str]:
    return [r["text"] for r in read_directory(directory).records]


def writer(tmp_path: Path) -> JournalWriter:
    return JournalWriter(tmp_path / "journal", fsync="never", segment_bytes=300)


def test_compaction_removes_forgotten_conversations_and_keeps_the_others_in_order(
    tmp_path: Path,
) -> None:
    journal = writer(tmp_path)
    for n in range(20):  # two conversations, records interleaved over several segments
        journal.add("a", {"k": "cmd", "c": "a", "text": f"a{n}"})
        journal.add("b", {"k": "cmd", "c": "b", "text": f"b{n}"})
        journal.flush()
    journal.forget("a")
    assert journal.compaction_due(after_s=0)
    assert journal.compact()
    assert texts(tmp_path / "journal") == [f"b{n}" for n in range(20)]
    assert not any(b"a1" in p.read_bytes() for p in (tmp_path / "journal").glob("*"))


def test_writing_goes_on_after_a_compaction(tmp_path: Path) -> None:
    journal = writer(tmp_path)
    journal.add("a", {"k": "cmd", "c": "a", "text": "old"})
    journal.add("b", {"k": "cmd", "c": "b", "text": "kept"})
    journal.flush()
    journal.forget("a")
    journal.compact()
    journal.add("b", {"k": "cmd", "c": "b", "text": "new"})
    journal.flush()
    journal.close()
    assert texts(tmp_path / "journal") == ["kept", "new"]


def test_segments_a_compaction_replaced_are_skipped_if_a_crash_left_them(tmp_path: Path) -> None:
    journal = writer(tmp_path)
    journal.add("a", {"k": "cmd", "c": "a", "text": "gone"})
    journal.add("b", {"k": "cmd", "c": "b", "text": "kept"})
    journal.flush()
    directory = tmp_path / "journal"
    old = {p.name: p.read_bytes() for p in directory.glob("*.seg")}
    journal.forget("a")
    journal.compact()
    for name, data in old.items():  # as if the process died before deleting them
        (directory / name).write_bytes(data)
    assert texts(directory) == ["kept"]


def test_nothing_is_due_while_every_record_is_needed(tmp_path: Path) -> None:
    journal = writer(tmp_path)
    journal.add("a", {"k": "cmd", "c": "a", "text": "x"})
    journal.flush()
    assert not journal.compaction_due(after_s=0)


def test_a_conversation_that_filled_whole_segments_leaves_without_waiting(tmp_path: Path) -> None:
    journal = writer(tmp_path)
    for n in range(20):
        journal.add("a", {"k": "cmd", "c": "a", "text": f"a{n}"})
        journal.flush()
    journal.add("b", {"k": "cmd", "c": "b", "text": "b"})
    journal.flush()
    segments = len(list((tmp_path / "journal").glob("*.seg")))
    journal.forget("a")
    assert len(list((tmp_path / "journal").glob("*.seg"))) < segments
