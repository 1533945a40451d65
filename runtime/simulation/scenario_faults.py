"""The ``faults:`` section of a scenario, read and checked strictly.

A list; each item names its ``kind`` and the keys that kind takes::

    faults:
      - {kind: host_crash, at: 10m, host: 0}          # a conversation host, by index
      - {kind: host_crash, at: random, window: {start: 5m, end: 20m}, host: random}
      - {kind: agent_host_crash, at: 15m}              # host: random by default
      - {kind: router_restart, at: 12m, router: 0}
      - {kind: archive_refuses, at: 20m, for: 5m}      # archive writes fail meanwhile
      - {kind: duplicate_deliveries, share: 0.1}       # a tenth of customer messages twice

``at`` is a duration or ``random`` (the default): a time drawn from the faults' own random
stream within ``window`` (by default the whole stretch of arrivals). ``host`` and ``router``
are an index or ``random`` (the default). A mistake names its path, e.g.
``faults[1].at: expected a duration ...``.
"""

from __future__ import annotations

from typing import Any

from infra.config.checks import InvalidValue, describe_value, expected, key_path
from runtime.simulation.model import FAULT_KINDS, Fault
from runtime.simulation.scenario_values import (
    hint,
    integer,
    mapping_of,
    parse_duration,
    positive_duration,
    probability,
)

__all__ = ["faults_of"]

_TIMED = ("kind", "at", "window")
_KEYS: dict[str, tuple[str, ...]] = {
    "host_crash": (*_TIMED, "host"),
    "agent_host_crash": (*_TIMED, "host"),
    "router_restart": (*_TIMED, "router"),
    "archive_refuses": (*_TIMED, "for"),
    "duplicate_deliveries": ("kind", "share"),
}
_TARGET = {"host_crash": "host", "agent_host_crash": "host", "router_restart": "router"}
RANDOM = "random"


def faults_of(value: Any, path: str, duration: float, total: float) -> tuple[Fault, ...]:
    """The checked faults of ``faults:`` (``value``) in a run of ``duration`` seconds of
    arrivals and ``total`` seconds in all."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise expected(path, "a list of faults such as {kind: host_crash, at: 10m}", value)
    return tuple(_fault(item, f"{path}[{i}]", duration, total) for i, item in enumerate(value))


def _fault(value: Any, path: str, duration: float, total: float) -> Fault:
    if not isinstance(value, dict):
        raise expected(path, "a mapping such as {kind: host_crash, at: 10m}", value)
    kind = value.get("kind")
    if kind is None:
        raise InvalidValue(key_path(path, "kind"), "missing")
    if kind not in FAULT_KINDS:
        raise InvalidValue(
            key_path(path, "kind"),
            f"expected one of: {', '.join(FAULT_KINDS)}; got {describe_value(kind)}"
            + (hint(kind, FAULT_KINDS, path) if isinstance(kind, str) else ""),
        )
    mapping = mapping_of(value, path, _KEYS[kind])
    if kind == "duplicate_deliveries":
        if "share" not in mapping:
            raise InvalidValue(key_path(path, "share"), "missing")
        return Fault(kind, share=probability(mapping["share"], key_path(path, "share")))
    at = _at(mapping.get("at", RANDOM), key_path(path, "at"), total)
    window = _window(mapping.get("window"), key_path(path, "window"), at, duration, total)
    target = None
    if kind in _TARGET:
        name = _TARGET[kind]
        chosen = mapping.get(name, RANDOM)
        if chosen != RANDOM:
            target = integer(chosen, key_path(path, name), 0, 1023)
    lasts = 0.0
    if kind == "archive_refuses":
        if "for" not in mapping:
            raise InvalidValue(key_path(path, "for"), "missing")
        lasts = positive_duration(mapping["for"], key_path(path, "for"))
        latest = window[1] if at is None else at
        if (duration if latest is None else latest) + lasts >= total:
            raise InvalidValue(
                key_path(path, "for"),
                f"the archive must take writes again before the run ends ({total:g} s):"
                " lengthen drain or shorten the fault",
            )
    return Fault(kind, at=at, window=window, target=target, lasts=lasts)


def _at(value: Any, path: str, total: float) -> float | None:
    if value == RANDOM:
        return None
    try:
        seconds = parse_duration(value, path)
    except InvalidValue:
        raise expected(
            path, 'a duration (seconds, or a string such as "90s", "15m") or "random"', value
        ) from None
    if seconds >= total:
        raise InvalidValue(path, f"must be before the end of the run ({total:g} s)")
    return seconds


def _window(
    value: Any, path: str, at: float | None, duration: float, total: float
) -> tuple[float, float | None]:
    if value is None:
        return (0.0, None)
    if at is not None:
        raise InvalidValue(path, "only with `at: random` (a fixed `at` needs no window)")
    mapping = mapping_of(value, path, ("start", "end"))
    start = parse_duration(mapping.get("start", 0), key_path(path, "start"))
    end = None if "end" not in mapping else parse_duration(mapping["end"], key_path(path, "end"))
    if (duration if end is None else end) <= start:
        raise InvalidValue(key_path(path, "end"), "must be later than window.start")
    if end is not None and end >= total:
        raise InvalidValue(
            key_path(path, "end"), f"must be before the end of the run ({total:g} s)"
        )
    return (start, end)
