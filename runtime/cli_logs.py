"""``cx log-level LEVEL [--logger NAME]``: change the log level of a running engine.

It writes the engine's levels file (``cx.levels.json`` beside the pid file: runtime.pidfile),
which every process of the engine (the daemon and each actor process) reads at most a second
later (infra.logs); each says ``log levels changed`` in the log once it applies it. Without
``--logger`` it sets the level of every logger; with it, of that logger and those under it
(``cx`` covers ``cx.router``). The change lasts until the engine stops: a start begins at
``logging.level`` again.
"""

from __future__ import annotations

import json
import os

from infra.config import load_config
from infra.logs import LEVELS, LEVELS_CHECK_S
from runtime.control import NotRunningError
from runtime.pidfile import RunFiles, running_record

#: The levels ``cx log-level`` takes.
CHOICES = tuple(LEVELS)


def set_level(path: os.PathLike[str] | str, level: str, logger: str | None) -> dict[str, object]:
    """Write ``level`` (for ``logger``, or the whole engine) into the levels file at ``path``,
    keeping what it said of other loggers; the new document."""
    try:
        with open(path, encoding="utf-8") as current:
            document = json.load(current)
        if not isinstance(document, dict):
            document = {}
    except (OSError, ValueError):
        document = {}
    if logger is None:
        document["level"] = level
    else:
        document["loggers"] = {**(document.get("loggers") or {}), logger: level}
    temporary = f"{os.fspath(path)}.{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as out:
        json.dump(document, out)
    os.replace(temporary, path)
    return document


def log_level_command(config: str, level: str, logger: str | None) -> int:
    """``cx log-level``: NotRunningError when no engine runs for ``config``."""
    settings = load_config(config)
    record = running_record(settings)
    if record is None:
        raise NotRunningError(f"not running (no live pid file at {RunFiles.of(settings).pid})")
    set_level(RunFiles.of(settings).levels, level, logger)
    which = f"logger {logger}" if logger else "every logger"
    print(
        f"cx log-level: {level} for {which} of the engine (pid {record.pid}); every process "
        f"applies it within {LEVELS_CHECK_S:g} s"
    )
    return 0
