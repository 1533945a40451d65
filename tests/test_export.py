"""``cx export``: exactly the archived conversations created in the range, as JSON lines or
CSV, on both archive backends; bad times are refused naming the option."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from infra.archive import Archive
from infra.archive_pg import PgArchive
from infra.archive_store import ArchiveStore
from runtime import export
from runtime.cli import main
from tests.test_archive import make_conversation
from tests.webhook_support import whispered

DAY_MS = 86_400_000
#: 2026-12-01T00:00:00Z
DEC_1 = 1_796_083_200_000
#: Creation times: one before the range, three in it (its first instant included), one at its
#: end (excluded), one after.
CREATED = {
    "before": DEC_1 - 1,
    "first": DEC_1,
    "noon": DEC_1 + DAY_MS // 2,
    "late": DEC_1 + DAY_MS - 1,
    "end": DEC_1 + DAY_MS,
    "after": DEC_1 + 2 * DAY_MS,
}
IN_RANGE = ["first", "noon", "late"]


def _fill(archive: ArchiveStore) -> None:
    for name, created_at in CREATED.items():
        record, events = make_conversation(name, created_at=created_at)
        archive.store_conversation(record, events)


@pytest.fixture(params=["sqlite", "postgres"])
def filled(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ArchiveStore]:
    opened: ArchiveStore
    if request.param == "sqlite":
        opened = Archive(tmp_path / "archive.db")
    else:
        opened = PgArchive(request.getfixturevalue("postgres_dsn"))
    with opened:
        _fill(opened)
        yield opened


def test_jsonl_export_holds_exactly_the_conversations_of_the_range(filled: ArchiveStore) -> None:
    out = io.StringIO()
    count = export.export(filled, DEC_1, DEC_1 + DAY_MS, "jsonl", out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert count == 3
    assert [line["id"] for line in lines] == IN_RANGE
    assert [e["seq"] for e in lines[0]["events"]] == [1, 2, 3]
    assert lines[0]["events"][1]["data"]["text"] == "héllo ✓"
    assert lines[0]["created_at"] == "2026-12-01T00:00:00.000Z"


def test_csv_export_holds_exactly_the_conversations_of_the_range(filled: ArchiveStore) -> None:
    out = io.StringIO()
    export.export(filled, DEC_1, DEC_1 + DAY_MS, "csv", out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [row["id"] for row in rows] == IN_RANGE
    assert list(rows[0]) == list(export.CSV_COLUMNS)
    assert rows[1]["events"] == "3"
    assert rows[1]["agents"] == "agent-7"
    assert json.loads(rows[1]["data"])["topic"] == "billing"


def test_export_pages_through_a_range_larger_than_a_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "PAGE", 2)
    with Archive(tmp_path / "archive.db") as archive:
        _fill(archive)
        ids = [r.id for r in export.conversations(archive, 0, DEC_1 + 3 * DAY_MS)]
    assert ids == list(CREATED)


def _config(tmp_path: Path) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"storage": {"archive": str(tmp_path / "archive.db")}}))
    return str(path)


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_cx_export_writes_the_range_to_a_file(tmp_path: Path, fmt: str) -> None:
    with Archive(tmp_path / "archive.db") as archive:
        _fill(archive)
    out = tmp_path / f"out.{fmt}"
    code = main(
        ["export", "--config", _config(tmp_path), "--from", "2026-12-01", "--to",
         "2026-12-02T00:00:00Z", "--format", fmt, "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    text = out.read_text()
    if fmt == "jsonl":
        assert [json.loads(line)["id"] for line in text.splitlines()] == IN_RANGE
    else:
        assert [row["id"] for row in csv.DictReader(io.StringIO(text))] == IN_RANGE


def test_cx_export_refuses_a_bad_time_naming_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Archive(tmp_path / "archive.db") as archive:
        _fill(archive)
    out = tmp_path / "out.jsonl"
    code = main(
        ["export", "--config", _config(tmp_path), "--from", "yesterday", "--to", "2026-12-02",
         "--out", str(out)]
    )  # fmt: skip
    assert code == 2
    assert "--from: 'yesterday'" in capsys.readouterr().err
    assert not out.exists()


def test_cx_export_refuses_an_empty_range(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["export", "--config", _config(tmp_path), "--from", "2026-12-02", "--to", "2026-12-01"]
    )
    assert code == 2
    assert "--to must be later than --from" in capsys.readouterr().err


@pytest.mark.parametrize(("include", "seqs"), [(False, [1, 2, 4]), (True, [1, 2, 3, 4])])
def test_a_whisper_is_exported_only_when_agent_only_events_are_included(
    tmp_path: Path, include: bool, seqs: list[int]
) -> None:
    lines, rows = io.StringIO(), io.StringIO()
    with Archive(tmp_path / "archive.db") as archive:
        archive.store_conversation(*whispered("whispered", DEC_1))
        for fmt, out in (("jsonl", lines), ("csv", rows)):
            export.export(archive, DEC_1, DEC_1 + DAY_MS, fmt, out, include_agent_only=include)
    (line,) = [json.loads(text) for text in lines.getvalue().splitlines()]
    (row,) = csv.DictReader(io.StringIO(rows.getvalue()))
    assert [event["seq"] for event in line["events"]] == seqs
    assert row["events"] == str(len(seqs))


def test_cx_export_writes_whispers_with_include_agent_only_and_not_without(
    tmp_path: Path,
) -> None:
    with Archive(tmp_path / "archive.db") as archive:
        archive.store_conversation(*whispered("whispered", DEC_1))

    def names(*flags: str) -> list[str]:
        out = tmp_path / "out.jsonl"
        code = main(
            ["export", "--config", _config(tmp_path), "--from", "2026-12-01", "--to",
             "2026-12-02", "--out", str(out), *flags]
        )  # fmt: skip
        assert code == 0
        (line,) = out.read_text().splitlines()
        return [event["name"] for event in json.loads(line)["events"]]

    assert "WHISPER_MESSAGE" not in names()
    assert "WHISPER_MESSAGE" in names("--include-agent-only")
