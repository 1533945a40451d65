"""The README's state diagram is the one generated from the transition table."""

from __future__ import annotations

from pathlib import Path

import pytest

from domain.transitions import TRANSITIONS, mermaid
from runtime.cli import main

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_diagram_is_up_to_date() -> None:
    assert "```mermaid\n" + mermaid() + "\n```" in README.read_text(), (
        "README.md's state diagram is stale: run `cx diagram --update README.md`"
    )


def test_diagram_has_an_edge_for_every_row() -> None:
    diagram = mermaid()
    for row in TRANSITIONS:
        assert f"--> {row.target.value} : {row.trigger.value}" in diagram


def test_diagram_update_rewrites_only_the_block(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("intro\n```mermaid\nstale\n```\noutro\n")
    assert main(["diagram", "--update", str(doc)]) == 0
    assert doc.read_text() == "intro\n```mermaid\n" + mermaid() + "\n```\noutro\n"


def test_the_python_example_runs_and_transfers_the_conversation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # the example's engine keeps its files in the working directory
    example = README.read_text().split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(example, "README.md", "exec"), {})
    state, names = capsys.readouterr().out.splitlines()[-2:]
    assert state == "WRAP_UP"
    assert "'CONVERSATION_TRANSFERRED'" in names
