"""Failpoints: faults switched on by a file named in CX_FAILPOINTS, off otherwise."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra import failpoints


def test_lines_name_a_failpoint_and_its_errno_and_anything_else_is_skipped() -> None:
    text = "journal.write=ENOSPC\n# a comment\njournal.fsync = EIO\nnonsense\nx=NOT_AN_ERRNO\n"
    assert failpoints.parse(text) == {"journal.write": errno.ENOSPC, "journal.fsync": errno.EIO}


def test_a_process_started_with_the_variable_fails_the_named_operation(tmp_path: Path) -> None:
    switches = tmp_path / "failpoints"
    switches.write_text("journal.write=ENOSPC\n")
    program = (
        "import errno, os, tempfile\n"
        "from infra.journal import DISK\n"
        "fd, _ = tempfile.mkstemp()\n"
        "try:\n"
        "    DISK.write(fd, b'x')\n"
        "except OSError as e:\n"
        "    print(errno.errorcode[e.errno])\n"
        "DISK.fsync(fd)\n"
        "print('fsync ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program],
        env={**os.environ, failpoints.ENV: str(switches)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.split() == ["ENOSPC", "fsync", "ok"]


def test_without_the_variable_no_failpoint_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    switches = tmp_path / "failpoints"
    switches.write_text("journal.write=ENOSPC\n")
    monkeypatch.setenv(failpoints.ENV, str(switches))
    with pytest.raises(OSError):
        failpoints.check("journal.write")
    monkeypatch.delenv(failpoints.ENV)
    failpoints.check("journal.write")  # the file still says so, but nobody points at it
