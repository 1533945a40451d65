"""Which settings a running engine may take without a restart, and what a reload changes.

A reload compares the configuration read again with the one the engine runs on, key by key,
each named as config.yaml spells it (``bot.welcome``, ``timers.agent_sla.seconds``,
``routing.queues.vip.priority``...). Only the sections in
:data:`RELOADABLE` may differ: the bot's texts and keywords, the timers and their thresholds,
routing and its queues. Every other key (storage, placement, system, gateway, logging, and any
section added later) is fixed for the life of the engine: a reload in which one differs is
refused as a whole, naming it, and changes nothing. The keys that the start of the engine
decides rather than the file (:data:`SET_AT_START`: where ``cx start`` sends the log, and in
which format; the levels file of ``cx log-level``; ``--salvage-journal``) are neither compared
nor changed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from infra.config import Settings
from infra.config.schema import SCHEMA

__all__ = ["RELOADABLE", "SET_AT_START", "Changes", "changes_of", "config_key", "reloaded"]

#: The top-level sections a reload may change.
RELOADABLE: Final = frozenset({"bot", "timers", "routing"})
#: Keys the start of the engine sets (runtime.daemon, cx start --salvage-journal), not the file
#: (``logging.levels``: where ``cx log-level`` writes the levels, beside the pid file).
SET_AT_START: Final = frozenset(
    {"logging.file", "logging.format", "logging.levels", "storage.salvage_journal"}
)
#: Not a setting: where the settings were read from.
_NOT_COMPARED: Final = frozenset({"source"})


@dataclass(frozen=True, slots=True)
class Changes:
    """The keys that differ, in order: those a reload may change, and those it may not."""

    reloadable: tuple[str, ...]
    fixed: tuple[str, ...]

    def refusal(self) -> str | None:
        """Why the reload is refused (naming every fixed key that differs), or None."""
        if not self.fixed:
            return None
        return (
            f"cannot be reloaded: {', '.join(self.fixed)} (a restart applies it);"
            f" only {', '.join(sorted(RELOADABLE))} can change at run time; nothing was changed"
        )


def changes_of(current: Settings, new: Settings) -> Changes:
    """Every key whose value differs between ``current`` and ``new``, sorted into the two."""
    reloadable: list[str] = []
    fixed: list[str] = []
    for field in dataclasses.fields(current):
        if field.name in _NOT_COMPARED:
            continue
        found = [
            config_key(key)
            for key in _differences(getattr(current, field.name), getattr(new, field.name), field.name)
            if key not in SET_AT_START
        ]
        (reloadable if field.name in RELOADABLE else fixed).extend(found)
    return Changes(tuple(reloadable), tuple(fixed))


def config_key(path: str) -> str:
    """A settings path as config.yaml spells it: ``timers.agent_sla_seconds`` is the key
    ``timers.agent_sla.seconds`` (the settings flatten the groups of the timers)."""
    section, _, rest = path.partition(".")
    node = SCHEMA.get(section)
    name, _, tail = rest.partition(".")
    if not isinstance(node, Mapping) or not name or name in node:
        return path
    for group, spec in node.items():
        key = name.removeprefix(f"{group}_")
        if isinstance(spec, Mapping) and key != name and key in spec:
            return ".".join(part for part in (section, group, key, tail) if part)
    return path


def reloaded(current: Settings, new: Settings) -> Settings:
    """``current`` with the reloadable sections of ``new``: nothing else ever changes."""
    return dataclasses.replace(current, **{name: getattr(new, name) for name in RELOADABLE})


def _differences(old: Any, new: Any, key: str) -> Iterator[str]:
    if old == new:
        return
    if dataclasses.is_dataclass(old) and type(old) is type(new):
        for field in dataclasses.fields(old):
            yield from _differences(
                getattr(old, field.name), getattr(new, field.name), f"{key}.{field.name}"
            )
    elif isinstance(old, Mapping) and isinstance(new, Mapping):
        for name in sorted({*old, *new}, key=str):
            yield from _differences(old.get(name), new.get(name), f"{key}.{name}")
    else:
        yield key
