"""Scenario files: what a simulation run drives through the engine, read and checked strictly.

A scenario is YAML (or a dict of the same shape). Every key is checked with its dotted path, and
a mistake is a :class:`ScenarioError` (a :class:`~infra.config.ConfigError`) naming the file,
the path and the problem, e.g.::

    scenarios/web.yaml: agents[0].reply_tme: unknown key (did you mean agents[0].reply_time?)
    scenarios/web.yaml: customers.patience.mean: expected a duration ..., got string 'long'

Durations are seconds (a number) or a string such as ``"90s"``, ``"15m"``, ``"8h"`` or
``"1h30m"``. Distributions of durations are a duration (fixed), ``{mean: D}`` (exponential), or
``{dist: exponential|uniform|lognormal|fixed, ...}`` with an optional ``max`` cap. The ``config``
section is the engine's configuration (same shape as config.yaml) merged over the built-in
defaults and checked by :func:`infra.config.load_config`; ``storage`` belongs to the simulator.

The shape (every key but ``seed``, ``duration`` and ``arrivals`` is optional)::

    name, description, seed, duration, drain
    arrivals: {per_hour | profile: [{at, per_hour}], limit}
    channels: {WEB: weight, WHATSAPP: weight, ...}
    second_channel: probability
    customers: {bot_resolves, messages_to_bot, exchanges, think_time, patience,
                retry_after_no_agent, silent_leave, queues}
    bot: {closes}
    agents: [{name, count, queues, max_conversations, reply_time, accept_time, leave_after,
              ends_chat, hold: {probability, seconds, duration}, wrap_up: {time, forget},
              recover, shift: {start, end}, breaks: {every, length}}]
    config: {timers: ..., routing: ..., bot: ..., ...}
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from domain.errors import CxError, ErrorKind
from infra.config import (
    CHANNEL_TYPES,
    ConfigError,
    Settings,
    describe_value,
    key_path,
    load_config,
    suggest_key,
)
from infra.yamlfile import YamlProblem, read_yaml

__all__ = [
    "AgentGroup",
    "Arrivals",
    "Customers",
    "Distribution",
    "IntRange",
    "Scenario",
    "ScenarioError",
    "load_scenario",
    "parse_duration",
]

#: Sections of the engine configuration a scenario may not set: the simulator owns them.
SIMULATOR_OWNED = ("storage",)
MAX_SECONDS = 400 * 86400  # a bound that keeps virtual times and heaps sane


class ScenarioError(ConfigError):
    """A scenario the user must fix: names the file, the dotted key path and the problem."""

    def __reduce__(self) -> tuple[type[ScenarioError], tuple[str, str, str]]:
        return (ScenarioError, (self.source, self.key, self.problem))


class _Invalid(CxError):
    kind = ErrorKind.BAD_ARGUMENT

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(key, problem)
        self.key = key
        self.problem = problem


# ------------------------------------------------------------------------------ values


@dataclass(frozen=True, slots=True)
class Distribution:
    """A distribution of durations in seconds; ``draw`` takes the run's one generator."""

    kind: str  # fixed, exponential, uniform, lognormal
    a: float  # fixed: value; exponential: mean; uniform: min; lognormal: mean
    b: float = 0.0  # uniform: max; lognormal: sd
    cap: float | None = None

    def draw(self, rng: Any) -> float:
        kind = self.kind
        if kind == "exponential":
            value = rng.expovariate(1.0 / self.a) if self.a > 0 else 0.0
        elif kind == "fixed":
            value = self.a
        elif kind == "uniform":
            value = rng.uniform(self.a, self.b)
        else:  # lognormal from its mean and standard deviation
            sigma2 = math.log(1.0 + (self.b / self.a) ** 2)
            value = rng.lognormvariate(math.log(self.a) - sigma2 / 2.0, math.sqrt(sigma2))
        if self.cap is not None and value > self.cap:
            value = self.cap
        return value

    def draw_ms(self, rng: Any) -> int:
        return round(self.draw(rng) * 1000)

    @property
    def mean(self) -> float:
        if self.kind == "uniform":
            return (self.a + self.b) / 2
        return self.a


@dataclass(frozen=True, slots=True)
class IntRange:
    low: int
    high: int

    def draw(self, rng: Any) -> int:
        return self.low if self.low == self.high else int(rng.randint(self.low, self.high))


@dataclass(frozen=True, slots=True)
class Arrivals:
    #: piecewise-constant rate: (from second, customers per hour), sorted, the first at 0
    profile: tuple[tuple[float, float], ...]
    limit: int | None

    def rate_at(self, second: float) -> float:
        rate = 0.0
        for start, per_hour in self.profile:
            if start > second:
                break
            rate = per_hour
        return rate


@dataclass(frozen=True, slots=True)
class Customers:
    bot_resolves: float
    messages_to_bot: IntRange
    exchanges: IntRange
    think_time: Distribution
    patience: Distribution
    retry_after_no_agent: float
    silent_leave: float
    queues: tuple[tuple[str, float], ...]  # (queue, weight), in the file's order


@dataclass(frozen=True, slots=True)
class AgentGroup:
    name: str
    count: int
    queues: tuple[str, ...]
    max_conversations: int
    reply_time: Distribution
    accept_time: Distribution
    leave_after: Distribution
    ends_chat: float
    hold_probability: float
    hold_seconds: Distribution  # what the agent asks for (capped at timers.hold.max_seconds)
    hold_duration: Distribution  # how long it actually stays away
    wrap_up_time: Distribution
    wrap_up_forget: float  # lets the wrap-up timer expire instead of applying
    recover: Distribution  # back to READY after the engine made it NOT_READY
    shift_start: float
    shift_end: float | None
    break_every: float | None
    break_length: float


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    source: str
    seed: int
    duration: float  # seconds of arrivals
    drain: float  # seconds after the arrivals stop
    resolution: float  # seconds: customers and agents act on this grid (engine timers do not)
    arrivals: Arrivals
    channels: tuple[tuple[str, float], ...]
    second_channel: float
    customers: Customers
    bot_closes: float
    agents: tuple[AgentGroup, ...]
    config: Mapping[str, Any] = field(default_factory=dict)
    settings: Settings | None = None  # the engine settings the config gives (storage aside)

    @property
    def total_seconds(self) -> float:
        return self.duration + self.drain

    @property
    def agent_count(self) -> int:
        return sum(group.count for group in self.agents)

    def with_overrides(
        self, *, seed: int | None = None, duration: float | None = None, drain: float | None = None
    ) -> Scenario:
        """The same scenario with another seed, duration or drain (tests, the command line)."""
        return replace(
            self,
            seed=self.seed if seed is None else seed,
            duration=self.duration if duration is None else duration,
            drain=self.drain if drain is None else drain,
        )


# ------------------------------------------------------------------------------ helpers


def _expected(path: str, what: str, value: Any) -> _Invalid:
    return _Invalid(path, f"expected {what}, got {describe_value(value)}")


def _mapping(value: Any, path: str, known: Sequence[str] | None = None) -> Mapping[str, Any]:
    if value is None and known is not None:
        return {}
    if not isinstance(value, Mapping):
        raise _expected(path, "a mapping", value)
    if known is not None:
        for key in value:
            if key not in known:
                raise _Invalid(key_path(path, key), "unknown key" + _hint(key, known, path))
    return value


def _hint(word: object, known: Sequence[str], parent: str) -> str:
    return suggest_key(word, known, parent) or f" (known keys: {', '.join(known)})"


def _is_number(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, float) and math.isfinite(value)
    )


_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|d|h|m|s)")


def parse_duration(value: Any, path: str = "duration") -> float:
    """Seconds from a number or a string like ``"90s"``, ``"15m"``, ``"1h30m"``, ``"1d"``."""
    what = 'a duration (seconds, or a string such as "90s", "15m", "1h30m")'
    if _is_number(value):
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
                    raise _expected(path, what, value) from None
                seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
                position = match.end()
            if position != len(text) or position == 0:
                raise _expected(path, what, value) from None
    else:
        raise _expected(path, what, value)
    if not 0 <= seconds <= MAX_SECONDS:
        raise _expected(path, f"a duration from 0 to {MAX_SECONDS:g} seconds", value)
    return seconds


def _positive_duration(value: Any, path: str) -> float:
    seconds = parse_duration(value, path)
    if seconds <= 0:
        raise _expected(path, "a duration > 0", value)
    return seconds


def _probability(value: Any, path: str) -> float:
    if not _is_number(value) or not 0 <= value <= 1:
        raise _expected(path, "a probability from 0 to 1", value)
    return float(value)


def _integer(value: Any, path: str, low: int, high: int | None = None) -> int:
    what = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise _expected(path, what, value)
    if high is not None and value > high:
        raise _expected(path, what, value)
    return value


def _name(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 64:
        raise _expected(path, "a non-empty string of at most 64 characters", value)
    return value


def _int_range(value: Any, path: str, low: int) -> IntRange:
    if isinstance(value, int) and not isinstance(value, bool):
        number = _integer(value, path, low)
        return IntRange(number, number)
    mapping = _mapping(value, path, ("min", "max"))
    for key in ("min", "max"):
        if key not in mapping:
            raise _Invalid(key_path(path, key), "missing")
    lowest = _integer(mapping["min"], key_path(path, "min"), low)
    highest = _integer(mapping["max"], key_path(path, "max"), low)
    if highest < lowest:
        raise _Invalid(key_path(path, "max"), f"must be >= min ({lowest}), got {highest}")
    return IntRange(lowest, highest)


_DISTRIBUTIONS = {
    "fixed": ("value",),
    "exponential": ("mean",),
    "uniform": ("min", "max"),
    "lognormal": ("mean", "sd"),
}


def _distribution(value: Any, path: str) -> Distribution:
    if not isinstance(value, Mapping):
        if value is None or isinstance(value, bool | list):
            raise _expected(path, "a duration or a distribution such as {mean: 30}", value)
        return Distribution("fixed", parse_duration(value, path))
    kind = value.get("dist", "exponential" if "mean" in value and "sd" not in value else None)
    if kind is None and "mean" in value:
        kind = "lognormal"
    if kind not in _DISTRIBUTIONS:
        if "dist" in value:
            raise _Invalid(
                key_path(path, "dist"),
                f"expected one of: {', '.join(_DISTRIBUTIONS)}; got {describe_value(value['dist'])}",
            )
        raise _Invalid(path, "a distribution needs `mean` (exponential) or `dist`")
    params = _DISTRIBUTIONS[kind]
    _mapping(value, path, ("dist", *params, "max"))
    for key in params:
        if key not in value:
            raise _Invalid(key_path(path, key), "missing")
    numbers = [parse_duration(value[key], key_path(path, key)) for key in params]
    cap = None if value.get("max") is None else parse_duration(value["max"], key_path(path, "max"))
    if kind == "uniform" and numbers[1] < numbers[0]:
        raise _Invalid(
            key_path(path, "max"), f"must be >= min ({numbers[0]:g}), got {numbers[1]:g}"
        )
    if kind == "lognormal" and numbers[0] <= 0:
        raise _expected(key_path(path, "mean"), "a duration > 0", value["mean"])
    if kind == "uniform":
        return Distribution(kind, numbers[0], numbers[1], None)
    return Distribution(kind, numbers[0], numbers[1] if len(numbers) > 1 else 0.0, cap)


def _weights(
    value: Any, path: str, allowed: Sequence[str] | None, what: str
) -> tuple[tuple[str, float], ...]:
    mapping = _mapping(value, path)
    if not mapping:
        raise _Invalid(path, f"expected at least one {what} with a weight")
    weights: list[tuple[str, float]] = []
    for key, weight in mapping.items():
        where = key_path(path, key)
        if allowed is not None and key not in allowed:
            suggestion = _hint(key, list(allowed), path)
            raise _Invalid(where, f"unknown {what}{suggestion}")
        if allowed is None:
            _name(key, where)
        if not _is_number(weight) or weight < 0:
            raise _expected(where, "a weight >= 0", weight)
        weights.append((str(key), float(weight)))
    if sum(w for _, w in weights) <= 0:
        raise _Invalid(path, "the weights must not all be 0")
    return tuple(weights)


# ------------------------------------------------------------------------------ sections

_TOP = (
    "name",
    "description",
    "seed",
    "duration",
    "drain",
    "resolution",
    "arrivals",
    "channels",
    "second_channel",
    "customers",
    "bot",
    "agents",
    "config",
)
_CUSTOMER_KEYS = (
    "bot_resolves",
    "messages_to_bot",
    "exchanges",
    "think_time",
    "patience",
    "retry_after_no_agent",
    "silent_leave",
    "queues",
)
_AGENT_KEYS = (
    "name",
    "count",
    "queues",
    "max_conversations",
    "reply_time",
    "accept_time",
    "leave_after",
    "ends_chat",
    "hold",
    "wrap_up",
    "recover",
    "shift",
    "breaks",
)


def _resolution(value: Any) -> float:
    seconds = parse_duration(value, "resolution")
    if not 0.001 <= seconds <= 60 or abs(seconds * 1000 - round(seconds * 1000)) > 1e-6:
        raise _expected("resolution", "a whole number of ms from 1ms to 60s", value)
    return seconds


def _arrivals(value: Any, path: str) -> Arrivals:
    mapping = _mapping(value, path, ("per_hour", "profile", "limit"))
    if ("per_hour" in mapping) == ("profile" in mapping):
        raise _Invalid(path, "give exactly one of per_hour (a constant rate) or profile")
    limit = mapping.get("limit")
    if limit is not None:
        limit = _integer(limit, key_path(path, "limit"), 1)
    if "per_hour" in mapping:
        rate = mapping["per_hour"]
        if not _is_number(rate) or rate < 0:
            raise _expected(key_path(path, "per_hour"), "a number of customers per hour >= 0", rate)
        return Arrivals(((0.0, float(rate)),), limit)
    steps = mapping["profile"]
    profile_path = key_path(path, "profile")
    if not isinstance(steps, list) or not steps:
        raise _expected(profile_path, "a non-empty list of {at, per_hour}", steps)
    profile: list[tuple[float, float]] = []
    for index, step in enumerate(steps):
        step_path = f"{profile_path}[{index}]"
        entry = _mapping(step, step_path, ("at", "per_hour"))
        for key in ("at", "per_hour"):
            if key not in entry:
                raise _Invalid(key_path(step_path, key), "missing")
        at = parse_duration(entry["at"], key_path(step_path, "at"))
        rate = entry["per_hour"]
        if not _is_number(rate) or rate < 0:
            raise _expected(key_path(step_path, "per_hour"), "a number >= 0", rate)
        if profile and at <= profile[-1][0]:
            raise _Invalid(key_path(step_path, "at"), "steps must be in increasing order of `at`")
        if not profile and at != 0:
            raise _Invalid(key_path(step_path, "at"), "the first step must be at 0")
        profile.append((at, float(rate)))
    return Arrivals(tuple(profile), limit)


def _customers(value: Any, path: str, default_queue: str) -> Customers:
    mapping = _mapping(value, path, _CUSTOMER_KEYS)

    def get(key: str, default: Any, check: Callable[[Any, str], Any]) -> Any:
        return check(mapping[key], key_path(path, key)) if key in mapping else default

    return Customers(
        bot_resolves=get("bot_resolves", 0.5, _probability),
        messages_to_bot=get("messages_to_bot", IntRange(1, 2), lambda v, p: _int_range(v, p, 0)),
        exchanges=get("exchanges", IntRange(2, 5), lambda v, p: _int_range(v, p, 1)),
        think_time=get("think_time", Distribution("exponential", 20.0), _distribution),
        patience=get("patience", Distribution("exponential", 180.0), _distribution),
        retry_after_no_agent=get("retry_after_no_agent", 0.3, _probability),
        silent_leave=get("silent_leave", 0.1, _probability),
        queues=get("queues", ((default_queue, 1.0),), lambda v, p: _weights(v, p, None, "queue")),
    )


def _agent_group(value: Any, path: str, index: int, default_queue: str) -> AgentGroup:
    mapping = _mapping(value, path, _AGENT_KEYS)
    if "count" not in mapping:
        raise _Invalid(key_path(path, "count"), "missing")

    def get(key: str, default: Any, check: Callable[[Any, str], Any]) -> Any:
        return check(mapping[key], key_path(path, key)) if key in mapping else default

    name = get("name", f"agent{index + 1}", _name)
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise _expected(key_path(path, "name"), "letters, digits, '.', '_' or '-'", name)
    queues_value = mapping.get("queues", [default_queue])
    queues_path = key_path(path, "queues")
    if not isinstance(queues_value, list) or not queues_value:
        raise _expected(queues_path, "a non-empty list of queue names", queues_value)
    queues = tuple(_name(q, f"{queues_path}[{i}]") for i, q in enumerate(queues_value))
    hold = _mapping(
        mapping.get("hold"), key_path(path, "hold"), ("probability", "seconds", "duration")
    )
    hold_path = key_path(path, "hold")
    wrap = _mapping(mapping.get("wrap_up"), key_path(path, "wrap_up"), ("time", "forget"))
    wrap_path = key_path(path, "wrap_up")
    shift = _mapping(mapping.get("shift"), key_path(path, "shift"), ("start", "end"))
    shift_path = key_path(path, "shift")
    breaks = _mapping(mapping.get("breaks"), key_path(path, "breaks"), ("every", "length"))
    breaks_path = key_path(path, "breaks")
    if breaks and ("every" not in breaks or "length" not in breaks):
        missing = "every" if "every" not in breaks else "length"
        raise _Invalid(key_path(breaks_path, missing), "missing")
    shift_start = parse_duration(shift.get("start", 0), key_path(shift_path, "start"))
    shift_end = (
        None
        if shift.get("end") is None
        else parse_duration(shift["end"], key_path(shift_path, "end"))
    )
    if shift_end is not None and shift_end <= shift_start:
        raise _Invalid(key_path(shift_path, "end"), "must be later than shift.start")
    return AgentGroup(
        name=name,
        count=_integer(mapping["count"], key_path(path, "count"), 0, 100_000),
        queues=queues,
        max_conversations=get("max_conversations", 1, lambda v, p: _integer(v, p, 1, 100)),
        reply_time=get("reply_time", Distribution("exponential", 20.0), _distribution),
        accept_time=get("accept_time", Distribution("fixed", 3.0), _distribution),
        leave_after=get("leave_after", Distribution("exponential", 10.0), _distribution),
        ends_chat=get("ends_chat", 0.0, _probability),
        hold_probability=(
            _probability(hold["probability"], key_path(hold_path, "probability"))
            if "probability" in hold
            else 0.0
        ),
        hold_seconds=(
            _distribution(hold["seconds"], key_path(hold_path, "seconds"))
            if "seconds" in hold
            else Distribution("fixed", 120.0)
        ),
        hold_duration=(
            _distribution(hold["duration"], key_path(hold_path, "duration"))
            if "duration" in hold
            else Distribution("exponential", 60.0)
        ),
        wrap_up_time=(
            _distribution(wrap["time"], key_path(wrap_path, "time"))
            if "time" in wrap
            else Distribution("exponential", 20.0)
        ),
        wrap_up_forget=(
            _probability(wrap["forget"], key_path(wrap_path, "forget")) if "forget" in wrap else 0.0
        ),
        recover=get("recover", Distribution("fixed", 15.0), _distribution),
        shift_start=shift_start,
        shift_end=shift_end,
        break_every=(
            _positive_duration(breaks["every"], key_path(breaks_path, "every")) if breaks else None
        ),
        break_length=(
            _positive_duration(breaks["length"], key_path(breaks_path, "length")) if breaks else 0.0
        ),
    )


def _engine_settings(config: Mapping[str, Any], source: str) -> Settings:
    for owned in SIMULATOR_OWNED:
        if owned in config:
            raise ScenarioError(
                source,
                f"config.{owned}",
                "set by the simulator (a private directory per run; --archive keeps it)",
            )
    try:
        return load_config(dict(config))
    except ScenarioError:
        raise
    except ConfigError as error:
        problem = error.problem.replace("(did you mean ", "(did you mean config.")
        raise ScenarioError(source, f"config.{error.key}", problem) from None


def _build(document: Mapping[Any, Any], source: str, default_name: str) -> Scenario:
    top = _mapping(document, "", _TOP)
    for key in ("seed", "duration", "arrivals"):
        if key not in top:
            raise _Invalid(key, "missing")
    config = _mapping(top.get("config"), "config", None) if top.get("config") is not None else {}
    settings = _engine_settings(config, source)
    default_queue = settings.routing.default_queue
    agents_value = top.get("agents", [])
    if not isinstance(agents_value, list):
        raise _expected("agents", "a list of agent groups", agents_value)
    groups = tuple(
        _agent_group(group, f"agents[{i}]", i, default_queue)
        for i, group in enumerate(agents_value)
    )
    names = [group.name for group in groups]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise _Invalid(f"agents[{i}].name", f"duplicate agent group name {name!r}")
    bot = _mapping(top.get("bot"), "bot", ("closes",))
    seed = top["seed"]
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
        raise _expected("seed", "an integer from 0 to 2**63-1", seed)
    description = top.get("description", "")
    if not isinstance(description, str):
        raise _expected("description", "a string", description)
    channels = (
        _weights(top["channels"], "channels", CHANNEL_TYPES, "channel")
        if "channels" in top
        else (("WEB", 1.0),)
    )
    return Scenario(
        name=_name(top["name"], "name") if "name" in top else default_name,
        description=description,
        source=source,
        seed=seed,
        duration=_positive_duration(top["duration"], "duration"),
        drain=parse_duration(top.get("drain", 0), "drain"),
        resolution=_resolution(top.get("resolution", 0.001)),
        arrivals=_arrivals(top["arrivals"], "arrivals"),
        channels=channels,
        second_channel=(
            _probability(top["second_channel"], "second_channel")
            if "second_channel" in top
            else 0.0
        ),
        customers=_customers(top.get("customers"), "customers", default_queue),
        bot_closes=_probability(bot["closes"], "bot.closes") if "closes" in bot else 0.0,
        agents=groups,
        config=config,
        settings=settings,
    )


# ------------------------------------------------------------------------------ loading


def _read(path: str) -> Any:
    try:
        document = read_yaml(path)
    except YamlProblem as problem:
        raise ScenarioError(path, problem.key, problem.problem) from None
    if not isinstance(document, Mapping):
        raise ScenarioError(
            path, "<top level>", f"expected a mapping, got {describe_value(document)}"
        )
    return document


def load_scenario(source: str | os.PathLike[str] | Mapping[str, Any] | Scenario) -> Scenario:
    """A checked :class:`Scenario` from a YAML file, a dict of the same shape, or a Scenario."""
    if isinstance(source, Scenario):
        return source
    if isinstance(source, Mapping):
        name, document, default_name = "<dict>", source, "scenario"
    elif isinstance(source, str | os.PathLike):
        name = os.fspath(source)
        document = _read(name)
        default_name = Path(name).stem
    else:
        raise TypeError(f"load_scenario() takes a path, a mapping or a Scenario, not {source!r}")
    try:
        return _build(document, name, default_name)
    except _Invalid as invalid:
        raise ScenarioError(name, invalid.key, invalid.problem) from None
