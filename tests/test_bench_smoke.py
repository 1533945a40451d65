"""The benchmarks' smallest cases run, so that their code cannot rot (no timing asserted)."""

from __future__ import annotations

from bench import journal


def test_journal_benchmark_smallest_case_runs(capsys: object) -> None:
    assert journal.main(["--runs", "1", "--events", "300", "--conversations", "50"]) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "journal: microseconds per event" in out and "raw sqlite" in out
