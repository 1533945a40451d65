"""Failpoints: storage faults a drill switches on in a running engine, to watch it cope.

They are off unless the environment variable ``CX_FAILPOINTS`` names a file (every actor
process inherits it from the process that starts the engine). That file holds one failpoint a line,
``NAME=ERRNO`` (``journal.write=ENOSPC``, ``journal.fsync=EIO``); a missing or empty file means
no fault. It is read again at most every :data:`REREAD_S`, so a drill turns a fault on and
off by rewriting it. Each named operation raises ``OSError(ERRNO)`` while its line is there.

Failpoints the engine has:

- ``journal.write``: a conversation host's journal write (as a full disk would);
- ``journal.fsync``: a conversation host's journal fsync (as a failing device would).
"""

from __future__ import annotations

import errno
import os
import time

ENV = "CX_FAILPOINTS"
REREAD_S = 0.1


class _Switches:
    """What the file said when it was last read."""

    def __init__(self) -> None:
        self.path: str | None = None
        self.active: dict[str, int] = {}
        self.read_at = float("-inf")

    def current(self, path: str) -> dict[str, int]:
        now = time.monotonic()
        if path != self.path or now - self.read_at >= REREAD_S:
            self.path, self.read_at = path, now
            self.active = parse(_read(path))
        return self.active


_switches = _Switches()


def check(name: str) -> None:
    """Raise the configured ``OSError`` if failpoint ``name`` is on; free when disabled."""
    path = os.environ.get(ENV)  # looked up each time: a forked process may have been given it
    if not path:
        return
    code = _switches.current(path).get(name)
    if code is not None:
        raise OSError(code, f"{os.strerror(code)} (failpoint {name})")


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as file:
            return file.read(64 * 1024)
    except OSError:
        return ""


def parse(text: str) -> dict[str, int]:
    """``NAME=ERRNO`` lines; anything else (blank lines, comments, unknown codes) is skipped."""
    active: dict[str, int] = {}
    for line in text.splitlines():
        name, _, code = line.strip().partition("=")
        number = getattr(errno, code.strip(), None)
        if name.strip() and isinstance(number, int):
            active[name.strip()] = number
    return active
