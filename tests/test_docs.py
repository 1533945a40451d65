"""The repository's docs stand alone: what they link to is in the repository, and neither they
nor the code cite documents kept elsewhere."""

from __future__ import annotations

import re
from pathlib import Path

from domain.events import EventName

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SOURCES = [
    path
    for package in ("domain", "infra", "actors", "runtime", "tests", "bench")
    for path in sorted((ROOT / package).rglob("*.py"))
    if path != Path(__file__).resolve()
]
#: Documents that are not part of the repository (names split so that this file holds none).
OUTSIDE = re.compile(
    r"\bDESIGN\b|" + "DESIGN" + r"\.md|" + "THESPIAN" + "_NOTES|" + "MULTINODE" + "_NOTES"
)
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)\s]*)?\)")


def test_every_relative_link_in_the_docs_names_a_file_of_the_repository() -> None:
    broken = [
        f"{doc.relative_to(ROOT)}: {target}"
        for doc in DOCS
        for target in LINK.findall(doc.read_text())
        if "://" not in target and not (doc.parent / target).exists()
    ]
    assert broken == []


def test_no_doc_or_source_cites_a_document_kept_outside_the_repository() -> None:
    citing = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in [*DOCS, ROOT / "config.yaml", *SOURCES]
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert citing == []


def test_the_event_catalogue_has_a_row_for_every_event_name() -> None:
    catalogue = (ROOT / "docs" / "EVENTS.md").read_text()
    missing = [name.value for name in EventName if f"\n| {name.value} |" not in catalogue]
    assert missing == []
