"""Storage faults for the chaos run: a full disk, a failing fsync, a locked archive.

Each strike holds its fault for a few seconds while the load goes on, lifts it, and measures
how long until the engine acknowledges again (a customer message on the monkey's own probe
conversation, or a new customer for the archive). What the workers were refused meanwhile
(``unavailable``) they retry, and the final check of the archive holds as for the kills:
every acknowledged message stored once, nothing refused stored.

- ``disk``: the journal lives on a small tmpfs of its own (mounted for the run: root only);
  the monkey fills it with a file until writes fail with ENOSPC, then deletes the file;
- ``fsync``: the ``journal.fsync`` failpoint (``infra.failpoints``) fails every journal
  fsync with EIO;
- ``archive``: another connection holds ``BEGIN EXCLUSIVE`` on the SQLite archive.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from infra import failpoints
from runtime.gateway import Gateway, GatewayError

FAULTS = ("disk", "fsync", "archive")
JOURNAL_MOUNT_MB = 64
RECOVERY_LIMIT_S = 30.0


@contextlib.contextmanager
def journal_mount(directory: Path, wanted: bool) -> Iterator[str | None]:
    """A small tmpfs at ``directory`` for the ``disk`` fault (None if not wanted); unmounted on
    the way out, whatever happened. Raises SystemExit when it cannot be mounted."""
    if not wanted:
        yield None
        return
    directory.mkdir(parents=True, exist_ok=True)
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={JOURNAL_MOUNT_MB}m", "tmpfs", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mount.returncode != 0:
        raise SystemExit(
            f"the disk fault needs a tmpfs for the journal (root): {mount.stderr.strip()}"
        )
    try:
        yield str(directory)
    finally:
        for _ in range(50):  # a process may still hold a file there for a moment
            if subprocess.run(["umount", str(directory)], check=False).returncode == 0:
                break
            time.sleep(0.1)


@contextlib.contextmanager
def failpoints_file(directory: Path) -> Iterator[Path]:
    """The failpoints file of this run, named in the environment the engine inherits while the
    run lasts (the variable is put back as it was afterwards)."""
    path = directory / "failpoints"
    path.write_text("")
    before = os.environ.get(failpoints.ENV)
    os.environ[failpoints.ENV] = str(path)
    try:
        yield path
    finally:
        if before is None:
            os.environ.pop(failpoints.ENV, None)
        else:
            os.environ[failpoints.ENV] = before


@dataclass
class Faults:
    gw: Gateway
    journal: Path
    archive: Path
    switches: Path
    hold_s: float = 3.0
    probes: int = 0
    _probe: tuple[str, str] | None = field(default=None)  # (session, conversation)

    def strike(self, fault: str) -> tuple[float | None, str]:
        """Hold ``fault`` for :attr:`hold_s`, lift it; (seconds from lifting until the engine
        acknowledges again or None, a note)."""
        note = ""
        if fault == "disk":
            note = self._fill_disk()
        elif fault == "fsync":
            self.switches.write_text("journal.fsync=EIO\n")
            time.sleep(self.hold_s)
            self.switches.write_text("")
        elif fault == "archive":
            note = self._lock_archive()
        lifted = time.monotonic()
        if self._acknowledges_again(fault):
            return round(time.monotonic() - lifted, 3), note
        return None, note or f"nothing acknowledged {RECOVERY_LIMIT_S:g} s after the fault ended"

    def _fill_disk(self) -> str:
        filler = self.journal / "filler"
        written = 0
        chunk = bytes(1024 * 1024)
        try:
            with filler.open("wb") as file:
                while True:
                    file.write(chunk)
                    file.flush()
                    written += len(chunk)
        except OSError as error:
            if error.errno != errno.ENOSPC:
                raise
        try:
            time.sleep(self.hold_s)
        finally:
            filler.unlink(missing_ok=True)
        return f"filled with {written // (1024 * 1024)} MB"

    def _lock_archive(self) -> str:
        connection = sqlite3.connect(self.archive, timeout=5, isolation_level=None)
        try:
            connection.execute("BEGIN EXCLUSIVE")
            time.sleep(self.hold_s)
            connection.execute("ROLLBACK")
        finally:
            connection.close()
        return "locked"

    def _acknowledges_again(self, fault: str) -> bool:
        deadline = time.monotonic() + RECOVERY_LIMIT_S
        while time.monotonic() < deadline:
            self.probes += 1
            try:
                if fault == "archive" or self._probe is None:
                    ref = self.gw.start_session(f"chaos-probe-{self.probes}", "WEB", "probe")
                    if self._probe is None:
                        self._probe = (ref.channel_session_id, ref.conversation_id)
                    if fault == "archive":
                        return True
                session, _ = self._probe
                self.gw.customer_message(session, "probe", message_id=f"probe-{self.probes}")
                return True
            except GatewayError:
                time.sleep(0.05)
        return False
