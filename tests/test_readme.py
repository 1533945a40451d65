"""The README's state diagram is the one generated from the transition table."""

from __future__ import annotations

from pathlib import Path

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
