"""What a sweep varies and what it looks for: ``KEY=FROM:TO:STEP`` (or ``KEY=A,B,C``) and a
target such as ``sl(20s)>=0.8``, read and checked; every mistake names the key it is about.

Keys are dotted paths into the scenario (``agents[0].count``,
``config.timers.agent_sla.seconds``, ``customers.patience.mean``), or one of the shorthands:

* ``agents``: the agent count of the scenario's only agent group;
* ``arrivals``: ``arrivals.per_hour`` (a constant rate);
* ``handling_time``: the mean of every agent group's ``handling_time``.

Each variant is the scenario's document with the value set, checked as a scenario is.

``--find KEY`` looks for the smallest or the largest value meeting the target
(:func:`parse_find`): the one in the direction that makes the target easier, known from the key
and the target's figure, or given as ``min:KEY`` or ``max:KEY``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from domain.errors import CxError, ErrorKind
from infra.config.checks import InvalidValue
from runtime.simulation.scenario_values import parse_duration

__all__ = [
    "SHORTHANDS",
    "Find",
    "SweepError",
    "Target",
    "parse_find",
    "parse_sweep",
    "parse_target",
    "with_value",
]

SHORTHANDS = ("agents", "arrivals", "handling_time")
_MAX_VARIANTS = 256


class SweepError(CxError, ValueError):
    """A sweep or target specification the user must fix; ``key`` names what is wrong."""

    kind = ErrorKind.BAD_ARGUMENT

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


def _number(text: str, key: str) -> float | int:
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return parse_duration(text, key)
    except InvalidValue:
        raise SweepError(key, f"expected a number or a duration, got {text!r}") from None


def parse_sweep(spec: str) -> tuple[str, list[float | int]]:
    """``KEY=FROM:TO:STEP`` (TO included) or ``KEY=A,B,C``: the key and its values in order."""
    key, sep, values = spec.partition("=")
    key = key.strip()
    if not sep or not key or not values.strip():
        raise SweepError(key or spec, "expected KEY=FROM:TO:STEP or KEY=A,B,C")
    if ":" in values:
        parts = values.split(":")
        if len(parts) != 3:
            raise SweepError(key, f"expected FROM:TO:STEP, got {values!r}")
        low, high, step = (_number(part, key) for part in parts)
        if step <= 0 or high < low:
            raise SweepError(key, f"expected FROM <= TO and STEP > 0, got {values!r}")
        count = int((high - low) / step + 1e-9) + 1
        if count > _MAX_VARIANTS:
            raise SweepError(key, f"{count} variants; at most {_MAX_VARIANTS}")
        found = [low + index * step for index in range(count)]
        return key, [round(v, 9) if isinstance(v, float) else v for v in found]
    found = [_number(part, key) for part in values.split(",")]
    if len(set(found)) != len(found):
        raise SweepError(key, f"a value is given twice in {values!r}")
    return key, found


def _paths(document: Mapping[str, Any], key: str) -> list[str]:
    """The dotted paths a key sets in the document (shorthands expanded)."""
    agents = document.get("agents")
    groups = agents if isinstance(agents, list) else []
    if key == "agents":
        if len(groups) != 1:
            raise SweepError(
                key, f"the scenario has {len(groups)} agent groups: sweep agents[N].count"
            )
        return ["agents[0].count"]
    if key == "arrivals":
        arrivals = document.get("arrivals")
        if not isinstance(arrivals, Mapping) or "per_hour" not in arrivals:
            raise SweepError(
                key, "the arrivals follow a profile: sweep arrivals.profile[N].per_hour"
            )
        return ["arrivals.per_hour"]
    if key == "handling_time":
        paths = []
        for index, group in enumerate(groups):
            handling = group.get("handling_time") if isinstance(group, Mapping) else None
            if handling is None:
                raise SweepError(key, f"agents[{index}] has no handling_time to vary")
            mean = isinstance(handling, Mapping)
            paths.append(f"agents[{index}].handling_time" + (".mean" if mean else ""))
        if not paths:
            raise SweepError(key, "the scenario has no agents")
        return paths
    return [key]


_STEP = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)")


def _set(document: dict[str, Any], path: str, key: str, value: Any) -> None:
    steps: list[str | int] = []
    for part in path.split("."):
        match = _STEP.fullmatch(part)
        if match is None:
            raise SweepError(key, f"not a scenario key: {path!r}")
        steps.append(match.group(1))
        steps += [int(index) for index in re.findall(r"\[(\d+)\]", match.group(2))]
    node: Any = document
    name = ""
    for position, step in enumerate(steps[:-1]):
        following = steps[position + 1]
        if isinstance(step, int):
            if not isinstance(node, list) or step >= len(node):
                raise SweepError(key, f"the scenario has no {name}[{step}]")
            node = node[step]
            continue
        name = step
        if not isinstance(node, dict):
            raise SweepError(key, f"not a scenario key: {path!r}")
        if node.get(step) is None:
            if isinstance(following, int):
                raise SweepError(key, f"the scenario has no {step!r} list")
            node[step] = {}
        node = node[step]
    last = steps[-1]
    if isinstance(last, int) or not isinstance(node, dict):
        raise SweepError(key, f"not a scenario key: {path!r}")
    node[last] = value


def with_value(document: Mapping[str, Any], key: str, value: Any) -> dict[str, Any]:
    """A copy of the scenario document with ``key`` (a path or a shorthand) set to ``value``."""
    variant = copy.deepcopy(dict(document))
    for path in _paths(variant, key):
        _set(variant, path, key, value)
    return variant


_FIGURES = {
    "abandonment": "abandonment_rate",
    "asa": "asa_seconds",
    "p_wait": "p_wait",
    "occupancy": "occupancy",
}
_OPERATORS = (">=", "<=", ">", "<")
_TARGET = re.compile(r"\s*([a-z_]+)(?:\(([^)]*)\))?\s*(>=|<=|>|<)\s*([0-9.]+)(%?)\s*")


@dataclass(frozen=True, slots=True)
class Target:
    """A figure and the bound it must meet: ``sl(20s)>=0.8``, ``abandonment<0.05``."""

    text: str
    figure: str  # the key in the planner's figures
    threshold: float | None  # seconds, for the service level
    operator: str
    bound: float

    def value(self, figures: Mapping[str, Any]) -> float | None:
        if self.threshold is not None:
            found = figures.get("service_level", {}).get(f"{self.threshold:g}s")
            return None if found is None else float(found)
        found = figures.get(self.figure)
        return None if found is None else float(found)

    def met(self, figures: Mapping[str, Any]) -> bool:
        value = self.value(figures)
        if value is None:
            return False
        bound = self.bound
        return {
            ">=": value >= bound,
            "<=": value <= bound,
            ">": value > bound,
            "<": value < bound,
        }[self.operator]


def parse_target(text: str) -> Target:
    """``FIGURE OP NUMBER``: FIGURE is ``sl(T)``, ``abandonment``, ``asa``, ``p_wait`` or
    ``occupancy``; OP one of ``>= <= > <``; NUMBER a fraction, or a percentage with ``%``."""
    known = "sl(T), " + ", ".join(_FIGURES)
    match = _TARGET.fullmatch(text)
    if match is None:
        raise SweepError("target", f"expected FIGURE OP NUMBER such as sl(20s)>=0.8, got {text!r}")
    name, argument, operator, number, percent = match.groups()
    bound = float(number) / (100 if percent else 1)
    if name == "sl":
        if not argument:
            raise SweepError("target", "sl needs its threshold: sl(20s)")
        try:
            threshold = parse_duration(argument, "target")
        except InvalidValue:
            raise SweepError("target", f"sl({argument}): not a duration") from None
        return Target(text.strip(), "service_level", threshold, operator, bound)
    if name not in _FIGURES or argument is not None:
        raise SweepError("target", f"unknown figure {name!r}; known: {known}")
    return Target(text.strip(), _FIGURES[name], None, operator, bound)


#: How a larger value changes the load on the agents: +1 more load (more contacts, longer
#: ones), -1 less (more agents, more conversations each, more left to the bot). A key not
#: named here (a dotted key such as ``customers.patience.mean``) counts as +1.
_LOAD = {"agents": -1, "arrivals": 1, "handling_time": 1, "customers.bot_resolves": -1}
_LIGHTER = re.compile(r"agents\[\d+\]\.(count|max_conversations)")
#: How each figure moves when the load rises.
_RISES_WITH_LOAD = {
    "service_level": -1,
    "abandonment_rate": 1,
    "asa_seconds": 1,
    "p_wait": 1,
    "occupancy": 1,
}
_DIRECTIONS = {"min": False, "max": True}


@dataclass(frozen=True, slots=True)
class Find:
    """What ``--find`` looks for: the swept key's smallest value meeting the target (every
    larger value meeting it too), or its largest (every smaller one meeting it too)."""

    key: str
    largest: bool

    @property
    def word(self) -> str:
        return "largest" if self.largest else "smallest"


def _load(key: str) -> int:
    if _LIGHTER.fullmatch(key):
        return -1
    return _LOAD.get(key, 1)


def parse_find(text: str, target: Target) -> Find:
    """``KEY``, ``min:KEY`` or ``max:KEY``. Without a direction, the largest value is looked
    for where a larger one makes the target harder to meet (``arrivals``, ``handling_time``,
    dotted keys), the smallest where it makes it easier (``agents``, ``agents[N].count``); a
    target that load helps to meet (``occupancy>=0.8``) turns the direction round."""
    word, sep, key = text.strip().rpartition(":")
    key = key.strip()
    if not key:
        raise SweepError("--find", f"expected KEY, min:KEY or max:KEY, got {text!r}")
    if sep:
        word = word.strip()
        if word not in _DIRECTIONS:
            raise SweepError(
                key, f"unknown direction {word!r} in --find {text}: expected min:{key} or max:{key}"
            )
        return Find(key, _DIRECTIONS[word])
    wants_high = 1 if target.operator in (">=", ">") else -1
    harder = _load(key) * _RISES_WITH_LOAD[target.figure] * wants_high < 0
    return Find(key, harder)
