"""Structured logging for the engine, set up from the ``logging`` section of config.yaml.

``configure_logging`` makes structlog write one JSON object a line (``format: json``) or a
readable line for people (``format: console``). Every line carries its ``level``, an ISO-8601
UTC ``timestamp``, ``logger_name`` (the name given to ``get_logger`` or to
``structlog.get_logger``), the ``pid`` of the process that wrote it and ``conversation_id``
(null when the line is about no conversation), so that ``jq 'select(.conversation_id == "c-1")'``
over the log of every process tells one conversation's story.

Lines go to ``logging.file`` (appended) or to standard error. The file is watched like
``logging.handlers.WatchedFileHandler`` does: before each line, a file renamed or removed
(logrotate) is opened again at its path, in every process, and the process's standard output
and error follow it when they were the old file; :func:`reopen` does it at once (the daemon
calls it on SIGHUP or SIGUSR1).

Levels: ``logging.level`` is the starting level; a levels file (``LoggingSettings.levels``,
JSON ``{"level": "debug", "loggers": {"cx.router": "debug"}}``, written by ``cx log-level``)
changes it at run time for every process that logs to it: each looks at the file at most
every :data:`LEVELS_CHECK_S` seconds, a logger's level being that of the longest dotted prefix
of its name listed (``cx`` covers ``cx.router``), else the file's ``level``, else the
configured one. A process that sees a change logs ``log levels changed`` once.

``get_logger`` returns a lazy logger: it reads the configuration when it logs, not when it is
created, so a module-level ``log = get_logger(__name__)`` follows a later ``configure_logging``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any, TextIO, cast

import structlog
from structlog.typing import FilteringBoundLogger, Processor

from infra.config import LoggingSettings

LEVELS: Mapping[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_METHOD_LEVELS: Mapping[str, int] = {
    **LEVELS,
    "warn": logging.WARNING,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
}
#: How often, at most, a process looks at the levels file.
LEVELS_CHECK_S = 1.0
_STANDARD_STREAMS = (1, 2)
#: Marks the line announcing new levels, written whatever they are.
_ALWAYS = "_always"


def _identity(stat: os.stat_result) -> tuple[int, int]:
    return (stat.st_dev, stat.st_ino)


class _LogFile:
    """A log file appended to line by line, opened again when its path no longer names it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stream = self._open()

    def _open(self) -> TextIO:
        stream = self.path.open("a", buffering=1, encoding="utf-8")
        self._opened = _identity(os.fstat(stream.fileno()))
        return stream

    def _moved(self) -> bool:
        try:
            return _identity(os.stat(self.path)) != self._opened
        except OSError:
            return True

    def _reopen(self) -> None:
        old, was = self._stream, self._opened
        self._stream = self._open()
        for fd in _STANDARD_STREAMS:  # stray output (tracebacks) follows the log
            try:
                if _identity(os.fstat(fd)) == was:
                    os.dup2(self._stream.fileno(), fd)
            except OSError:
                continue
        old.close()

    def reopen(self) -> None:
        with self._lock:
            self._reopen()

    def write_line(self, line: str) -> None:
        with self._lock:
            if self._moved():
                self._reopen()
            self._stream.write(line + "\n")


class _Stderr:
    """Standard error as it is when a line is written (pytest and daemons replace it)."""

    def write_line(self, line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    def reopen(self) -> None:
        return


class _LineLogger:
    """structlog's end of the chain: writes each rendered line, and knows its own name."""

    def __init__(self, sink: _LogFile | _Stderr, name: str) -> None:
        self.sink = sink
        self.name = name

    def msg(self, message: str) -> None:
        self.sink.write_line(message)

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


class _Levels:
    """The level of each logger: the configured one, changed at run time by the levels file."""

    def __init__(self) -> None:
        self.reset("info", None)

    def reset(self, level: str, path: Path | None) -> None:
        """Start from ``level``, with the levels file at ``path`` read now."""
        self.configured = LEVELS[level]
        self.path = path
        self.base = self.configured
        self.loggers: dict[str, int] = {}
        self._seen: tuple[int, int, int] | None = None
        self._due = 0.0
        self.level_of("")  # what the file says holds from the first line
        self.changed = False

    def level_of(self, name: str) -> int:
        if self.path is not None and time.monotonic() >= self._due:
            self._refresh()
        best, level = -1, self.base
        for prefix, value in self.loggers.items():
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best:
                best, level = len(prefix), value
        return level

    def _refresh(self) -> None:
        assert self.path is not None
        self._due = time.monotonic() + LEVELS_CHECK_S
        try:
            stat = os.stat(self.path)
        except OSError:
            seen = None
        else:
            seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if seen == self._seen:
            return
        self._seen = seen
        self.base, self.loggers = self.configured, {}
        if seen is not None:
            try:
                document = json.loads(self.path.read_text(encoding="utf-8"))
                self.base = LEVELS.get(document.get("level"), self.configured)
                loggers = document.get("loggers") or {}
                self.loggers = {str(k): LEVELS[v] for k, v in loggers.items() if v in LEVELS}
            except (OSError, ValueError, AttributeError):
                pass  # a half-written or foreign file changes nothing
        self.changed = True

    def describe(self) -> dict[str, Any]:
        names = {value: name for name, value in LEVELS.items()}
        return {
            "default_level": names[self.base],
            "loggers": {name: names[value] for name, value in sorted(self.loggers.items())},
        }


_sinks: dict[Path, _LogFile] = {}
_levels = _Levels()


def _sink(file: Path | None) -> _LogFile | _Stderr:
    if file is None:
        return _Stderr()
    sink = _sinks.get(file)
    if sink is None:
        sink = _sinks[file] = _LogFile(file)
    return sink


def _filter(logger: Any, method: str, event: MutableMapping[str, Any]) -> Any:
    """Drops what the level of its logger hides (first: a dropped line costs nothing more)."""
    name = event.get("logger_name") or getattr(logger, "name", "") or "cx"
    if event.pop(_ALWAYS, False):
        pass
    elif _METHOD_LEVELS.get(method, logging.ERROR) < _levels.level_of(name):
        raise structlog.DropEvent
    if _levels.changed:  # (the line below comes through here again, with changed unset)
        _levels.changed = False
        _log.info("log levels changed", **{_ALWAYS: True, **_levels.describe()})
    event["logger_name"] = name
    return event


def _context(logger: Any, method: str, event: MutableMapping[str, Any]) -> Any:
    """Adds ``pid`` and ``conversation_id`` (null when the line is about none)."""
    event.setdefault("pid", os.getpid())
    event.setdefault("conversation_id", None)
    return event


def _processors(console: bool) -> list[Processor]:
    processors: list[Processor] = [
        _filter,
        structlog.contextvars.merge_contextvars,
        _context,
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
    _levels.reset(settings.level, settings.levels)
    sink = _sink(settings.file)
    structlog.configure(
        processors=_processors(force_console or settings.format == "console"),
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        logger_factory=lambda *args: _LineLogger(sink, str(args[0]) if args else ""),
        cache_logger_on_first_use=False,
    )


class _ToStructlog(logging.Handler):
    """Hands a standard-library record (a library's own logging) to structlog: same format,
    same file, with the library's logger name."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = logging.getLevelName(record.levelno).lower()
            get_logger(record.name).log(LEVELS.get(level, logging.ERROR), record.getMessage())
        except Exception:
            self.handleError(record)


def route_stdlib(name: str, level: str = "warning") -> None:
    """Lines of the standard-library logger ``name`` (and those under it) from ``level`` go
    through structlog, like the engine's own, instead of the library's own format."""
    library = logging.getLogger(name)
    library.handlers = [_ToStructlog()]
    library.setLevel(LEVELS[level])
    library.propagate = False


def shape(message: Any, depth: int = 3) -> str:
    """What a message is, for a log line, without its values (they may hold a customer's words
    or a token): ``Batch[Deliver[Apply[CustomerMessage]]]``."""
    name = type(message).__name__
    if depth <= 0:
        return name
    inner = [getattr(message, field, None) for field in ("payload", "command", "items")]
    parts: list[str] = []
    for value in inner:
        if isinstance(value, list | tuple):
            kinds = sorted({shape(item, depth - 1) for item in value})
            parts.append(f"{len(value)} x " + "|".join(kinds[:3]) if value else "0")
        elif value is not None:
            parts.append(shape(value, depth - 1))
    return f"{name}[{', '.join(parts)}]" if parts else name


def enabled(name: str, level: str) -> bool:
    """Whether logger ``name`` writes lines of ``level`` now: lets a caller that logs often
    skip building a line that would be dropped."""
    return LEVELS[level] >= _levels.level_of(name)


def reopen() -> None:
    """Open every log file of this process again at its path (after logrotate renamed it)."""
    for sink in list(_sinks.values()):
        sink.reopen()


def get_logger(name: str, **bound: Any) -> FilteringBoundLogger:
    """A logger whose events carry ``logger_name=name`` and the ``bound`` key/values."""
    # ("logger" itself is a reserved argument of structlog.get_logger.)
    return cast(FilteringBoundLogger, structlog.get_logger(name, **{"logger_name": name, **bound}))


_log = get_logger("infra.logs")
