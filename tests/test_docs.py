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


def test_the_readmes_test_command_is_the_one_ci_runs() -> None:
    """README.md gives `bash .ci/run` as the one command that sets up and runs the tests, and
    names the test command it ends with: that command is the last one .ci/run runs."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "```sh\nbash .ci/run\n```" in readme
    named = re.search(r"The test command itself, .*?: `([^`]+)`\.", readme, re.DOTALL)
    assert named is not None
    commands = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert commands[-1] == named.group(1)


def test_the_quick_start_installs_what_the_test_command_needs() -> None:
    """The quick start's install line installs the `test` extra, so the README's test command
    works after it, and runs `cx` from the virtualenv it made."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quick = re.search(r"```sh\n(python3 -m venv \.venv && [^\n]+)\n```", readme)
    assert quick is not None
    line = quick.group(1)
    assert re.search(r"pip install [^&]*-e '\.\[[^\]]*\btest\b[^\]]*\]'", line), line
    assert ".venv/bin/cx " in line
