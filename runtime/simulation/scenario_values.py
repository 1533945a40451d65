"""The values a scenario file holds, read and checked: durations, distributions, ranges, weights.

Each check takes the raw value and its dotted key path and returns the clean value or raises
:class:`~infra.config.checks.InvalidValue`; :func:`runtime.simulation.scenario.load_scenario`
turns that into a :class:`~runtime.simulation.scenario.ScenarioError` naming the file.
Durations are seconds (a number) or a string such as ``"90s"``, ``"15m"``, ``"8h"`` or
``"1h30m"``; distributions of durations are a duration (fixed), ``{mean: D}`` (exponential), or
``{dist: exponential|uniform|lognormal|fixed, ...}`` with an optional ``max`` cap.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from infra.config.checks import (
    InvalidValue,
    describe_value,
    expected,
    is_number,
    key_path,
    suggest_key,
)
from runtime.simulation.model import Distribution, IntRange

MAX_SECONDS = 400 * 86400  # a bound that keeps virtual times and heaps sane


def mapping_of(value: Any, path: str, known: Sequence[str] | None = None) -> Mapping[str, Any]:
    if value is None and known is not None:
        return {}
    if not isinstance(value, Mapping):
        raise expected(path, "a mapping", value)
    if known is not None:
        for key in value:
            if key not in known:
                raise InvalidValue(key_path(path, key), "unknown key" + hint(key, known, path))
    return value


def hint(word: object, known: Sequence[str], parent: str) -> str:
    return suggest_key(word, known, parent) or f" (known keys: {', '.join(known)})"


_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|d|h|m|s)")


def parse_duration(value: Any, path: str = "duration") -> float:
    """Seconds from a number or a string like ``"90s"``, ``"15m"``, ``"1h30m"``, ``"1d"``."""
    what = 'a duration (seconds, or a string such as "90s", "15m", "1h30m")'
    if is_number(value):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip().replace(" ", "")
        try:
            seconds = float(text)
        except ValueError:
            seconds = 0.0
            position = 0
            for match in _DURATION_PART.finditer(text):
                if match.start() != position:
                    raise expected(path, what, value) from None
                seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
                position = match.end()
            if position != len(text) or position == 0:
                raise expected(path, what, value) from None
    else:
        raise expected(path, what, value)
    if not 0 <= seconds <= MAX_SECONDS:
        raise expected(path, f"a duration from 0 to {MAX_SECONDS:g} seconds", value)
    return seconds


def positive_duration(value: Any, path: str) -> float:
    seconds = parse_duration(value, path)
    if seconds <= 0:
        raise expected(path, "a duration > 0", value)
    return seconds


def probability(value: Any, path: str) -> float:
    if not is_number(value) or not 0 <= value <= 1:
        raise expected(path, "a probability from 0 to 1", value)
    return float(value)


def integer(value: Any, path: str, low: int, high: int | None = None) -> int:
    what = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise expected(path, what, value)
    if high is not None and value > high:
        raise expected(path, what, value)
    return value


def short_name(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 64:
        raise expected(path, "a non-empty string of at most 64 characters", value)
    return value


def int_range(value: Any, path: str, low: int) -> IntRange:
    if isinstance(value, int) and not isinstance(value, bool):
        number = integer(value, path, low)
        return IntRange(number, number)
    mapping = mapping_of(value, path, ("min", "max"))
    for key in ("min", "max"):
        if key not in mapping:
            raise InvalidValue(key_path(path, key), "missing")
    lowest = integer(mapping["min"], key_path(path, "min"), low)
    highest = integer(mapping["max"], key_path(path, "max"), low)
    if highest < lowest:
        raise InvalidValue(key_path(path, "max"), f"must be >= min ({lowest}), got {highest}")
    return IntRange(lowest, highest)


_DISTRIBUTIONS = {
    "fixed": ("value",),
    "exponential": ("mean",),
    "uniform": ("min", "max"),
    "lognormal": ("mean", "sd"),
}


def distribution(value: Any, path: str) -> Distribution:
    if not isinstance(value, Mapping):
        if value is None or isinstance(value, bool | list):
            raise expected(path, "a duration or a distribution such as {mean: 30}", value)
        return Distribution("fixed", parse_duration(value, path))
    kind = value.get("dist", "exponential" if "mean" in value and "sd" not in value else None)
    if kind is None and "mean" in value:
        kind = "lognormal"
    if kind not in _DISTRIBUTIONS:
        if "dist" in value:
            raise InvalidValue(
                key_path(path, "dist"),
                f"expected one of: {', '.join(_DISTRIBUTIONS)}; got {describe_value(value['dist'])}",
            )
        raise InvalidValue(path, "a distribution needs `mean` (exponential) or `dist`")
    params = _DISTRIBUTIONS[kind]
    mapping_of(value, path, ("dist", *params, "max"))
    for key in params:
        if key not in value:
            raise InvalidValue(key_path(path, key), "missing")
    numbers = [parse_duration(value[key], key_path(path, key)) for key in params]
    cap = None if value.get("max") is None else parse_duration(value["max"], key_path(path, "max"))
    if kind == "uniform" and numbers[1] < numbers[0]:
        raise InvalidValue(
            key_path(path, "max"), f"must be >= min ({numbers[0]:g}), got {numbers[1]:g}"
        )
    if kind == "lognormal" and numbers[0] <= 0:
        raise expected(key_path(path, "mean"), "a duration > 0", value["mean"])
    if kind == "uniform":
        return Distribution(kind, numbers[0], numbers[1], None)
    return Distribution(kind, numbers[0], numbers[1] if len(numbers) > 1 else 0.0, cap)


def weighted(
    value: Any, path: str, allowed: Sequence[str] | None, what: str
) -> tuple[tuple[str, float], ...]:
    mapping = mapping_of(value, path)
    if not mapping:
        raise InvalidValue(path, f"expected at least one {what} with a weight")
    weights: list[tuple[str, float]] = []
    for key, weight in mapping.items():
        where = key_path(path, key)
        if allowed is not None and key not in allowed:
            suggestion = hint(key, list(allowed), path)
            raise InvalidValue(where, f"unknown {what}{suggestion}")
        if allowed is None:
            short_name(key, where)
        if not is_number(weight) or weight < 0:
            raise expected(where, "a weight >= 0", weight)
        weights.append((str(key), float(weight)))
    if sum(w for _, w in weights) <= 0:
        raise InvalidValue(path, "the weights must not all be 0")
    return tuple(weights)
