"""Scenario knobs beyond the people's behaviour, read and checked: the ``report`` section (what
the planner's figures cover), a patience of ``never``, and engine timers switched off.

``report: {interval, service_level, warm_up, window: {start, end}}``; each mistake is an
:class:`~infra.config.checks.InvalidValue` naming its dotted key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from infra.config.checks import MAX_SECONDS as CONFIG_MAX_SECONDS
from infra.config.checks import InvalidValue, expected, key_path
from runtime.simulation.model import Distribution, ReportWindow
from runtime.simulation.scenario_values import (
    distribution,
    mapping_of,
    parse_duration,
    positive_duration,
)

__all__ = ["TIMERS_OFF", "flag", "patience_of", "report_of", "timers_off"]

_REPORT_KEYS = ("interval", "service_level", "warm_up", "window")
MAX_INTERVALS = 2_000  # a minute each over a day and more


def _thresholds(value: Any, path: str) -> tuple[float, ...]:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise expected(path, "a duration or a non-empty list of durations", value)
    seconds = [parse_duration(item, f"{path}[{i}]") for i, item in enumerate(items)]
    return tuple(sorted(set(seconds)))


def report_of(value: Any, path: str, duration: float, total: float) -> ReportWindow:
    """The ``report`` section of a run of ``duration`` seconds of arrivals, ``total`` in all."""
    mapping = mapping_of(value, path, _REPORT_KEYS)
    interval = (
        positive_duration(mapping["interval"], key_path(path, "interval"))
        if "interval" in mapping
        else ReportWindow().interval
    )
    levels = (
        _thresholds(mapping["service_level"], key_path(path, "service_level"))
        if "service_level" in mapping
        else ReportWindow().service_levels
    )
    warm_up = parse_duration(mapping.get("warm_up", 0), key_path(path, "warm_up"))
    window_path = key_path(path, "window")
    window = mapping_of(mapping.get("window"), window_path, ("start", "end"))
    start = parse_duration(window.get("start", 0), key_path(window_path, "start"))
    end = (
        None
        if window.get("end") is None
        else parse_duration(window["end"], key_path(window_path, "end"))
    )
    first = max(start, warm_up)
    if end is not None and end > total:
        raise InvalidValue(
            key_path(window_path, "end"), f"must be within the run (duration + drain = {total:g}s)"
        )
    if first >= (duration if end is None else end):
        where = key_path(path, "warm_up") if warm_up >= start else key_path(window_path, "start")
        raise InvalidValue(where, "leaves nothing to measure: must end before the window does")
    stretch = (duration if end is None else end) - first
    if stretch / interval > MAX_INTERVALS:
        raise InvalidValue(
            key_path(path, "interval"),
            f"gives {stretch / interval:.0f} intervals; at most {MAX_INTERVALS}: choose a longer one",
        )
    return ReportWindow(interval, levels, warm_up, start, end)


def patience_of(value: Any, path: str) -> Distribution | None:
    """``customers.patience``: a distribution, or ``never`` (the customer waits for ever)."""
    if value == "never":
        return None
    try:
        return distribution(value, path)
    except InvalidValue as invalid:
        raise InvalidValue(invalid.key, f"{invalid.problem}; or never") from None


#: The engine timers a scenario may switch off with null: the agent request's time to live,
#: the agent SLA and the customer's inactivity.
TIMERS_OFF = (
    ("routing", "request_ttl_seconds"),
    ("timers", "agent_sla", "seconds"),
    ("timers", "customer_inactivity", "seconds"),
)


def timers_off(config: Mapping[str, Any]) -> dict[str, Any]:
    """The engine configuration with each timer of :data:`TIMERS_OFF` given as null set to the
    longest the configuration allows: it outlasts any run (runs last at most
    ``MAX_SECONDS`` of the scenario), so the timer starts but never expires."""
    result = dict(config)
    for *sections, key in TIMERS_OFF:
        parent: Any = result
        for section in sections:
            child = parent.get(section) if isinstance(parent, Mapping) else None
            if not isinstance(child, Mapping):
                break
            parent[section] = child = dict(child)
            parent = child
        else:
            if key in parent and parent[key] is None:
                parent[key] = CONFIG_MAX_SECONDS
    return result


def flag(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise expected(path, "true or false", value)
    return value
