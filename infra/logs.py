"""Structured logging for the engine, set up from the ``logging`` section of config.yaml.

``configure_logging`` makes structlog write one JSON object a line (``format: json``) or a
readable line for people (``format: console``), each with its level and an ISO-8601 UTC
timestamp, drops events below the configured level, and writes to ``logging.file`` (appended,
line-buffered) or to standard error. It may be called again to reconfigure.

``get_logger`` returns a lazy logger: it reads the configuration when it logs, not when it is
created, so a module-level ``log = get_logger(__name__)`` follows a later ``configure_logging``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, TextIO, cast

import structlog
from structlog.typing import FilteringBoundLogger, Processor

from infra.config import LoggingSettings

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

# Log files opened so far, by path. They stay open: a logger bound earlier may still hold
# one, and reconfiguring with the same file reuses it instead of opening it again.
_open_files: dict[Path, TextIO] = {}


def _output(file: Path | None) -> TextIO:
    if file is None:
        return sys.stderr
    stream = _open_files.get(file)
    if stream is None or stream.closed:
        stream = file.open("a", buffering=1, encoding="utf-8")
        _open_files[file] = stream
    return stream


def _processors(console: bool) -> list[Processor]:
    processors: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    if console:
        processors.append(structlog.dev.ConsoleRenderer(colors=False))
    else:
        processors += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    return processors


def configure_logging(settings: LoggingSettings, *, force_console: bool = False) -> None:
    """Set up structlog from ``settings``; ``force_console`` picks the readable format anyway."""
    structlog.configure(
        processors=_processors(force_console or settings.format == "console"),
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[settings.level]),
        logger_factory=structlog.PrintLoggerFactory(file=_output(settings.file)),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str, **bound: Any) -> FilteringBoundLogger:
    """A logger whose events carry ``logger_name=name`` and the ``bound`` key/values."""
    # ("logger" itself is a reserved argument of structlog.get_logger.)
    return cast(FilteringBoundLogger, structlog.get_logger(name, **{"logger_name": name, **bound}))
