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
              recover, shift: {start, end}, breaks: {every, length},
              transfer: {share, queue}, consult: {share, queue, transfer}}]
    config: {timers: ..., routing: ..., bot: ..., ...}
    report: {interval, service_level, warm_up, window: {start, end}}
    common_random_numbers
    faults: [{kind, at, window, host | router | for | share}]  (runtime.simulation.scenario_faults)
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from infra.config import CHANNEL_TYPES, ConfigError, Settings, load_config
from infra.config.checks import InvalidValue, describe_value, expected, is_number, key_path
from infra.yamlfile import YamlProblem, read_yaml
from runtime.simulation.model import (
    AgentGroup,
    Arrivals,
    Customers,
    Distribution,
    IntRange,
    Scenario,
)
from runtime.simulation.scenario_faults import faults_of
from runtime.simulation.scenario_knobs import flag, patience_of, report_of, timers_off
from runtime.simulation.scenario_values import (
    distribution,
    int_range,
    integer,
    mapping_of,
    parse_duration,
    positive_duration,
    probability,
    short_name,
    weighted,
)

__all__ = ["ScenarioError", "load_scenario", "read_document"]

#: Sections of the engine configuration a scenario may not set: the simulator owns them.
SIMULATOR_OWNED = ("storage",)


class ScenarioError(ConfigError):
    """A scenario the user must fix: names the file, the dotted key path and the problem."""

    def __reduce__(self) -> tuple[type[ScenarioError], tuple[str, str, str]]:
        return (ScenarioError, (self.source, self.key, self.problem))


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
    "report",
    "common_random_numbers",
    "faults",
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
    "handling_time",
    "transfer",
    "consult",
)


def _resolution(value: Any) -> float:
    seconds = parse_duration(value, "resolution")
    if not 0.001 <= seconds <= 60 or abs(seconds * 1000 - round(seconds * 1000)) > 1e-6:
        raise expected("resolution", "a whole number of ms from 1ms to 60s", value)
    return seconds


def _arrivals(value: Any, path: str) -> Arrivals:
    mapping = mapping_of(value, path, ("per_hour", "profile", "limit"))
    if ("per_hour" in mapping) == ("profile" in mapping):
        raise InvalidValue(path, "give exactly one of per_hour (a constant rate) or profile")
    limit = mapping.get("limit")
    if limit is not None:
        limit = integer(limit, key_path(path, "limit"), 1)
    if "per_hour" in mapping:
        rate = mapping["per_hour"]
        if not is_number(rate) or rate < 0:
            raise expected(key_path(path, "per_hour"), "a number of customers per hour >= 0", rate)
        return Arrivals(((0.0, float(rate)),), limit)
    steps = mapping["profile"]
    profile_path = key_path(path, "profile")
    if not isinstance(steps, list) or not steps:
        raise expected(profile_path, "a non-empty list of {at, per_hour}", steps)
    profile: list[tuple[float, float]] = []
    for index, step in enumerate(steps):
        step_path = f"{profile_path}[{index}]"
        entry = mapping_of(step, step_path, ("at", "per_hour"))
        for key in ("at", "per_hour"):
            if key not in entry:
                raise InvalidValue(key_path(step_path, key), "missing")
        at = parse_duration(entry["at"], key_path(step_path, "at"))
        rate = entry["per_hour"]
        if not is_number(rate) or rate < 0:
            raise expected(key_path(step_path, "per_hour"), "a number >= 0", rate)
        if profile and at <= profile[-1][0]:
            raise InvalidValue(
                key_path(step_path, "at"), "steps must be in increasing order of `at`"
            )
        if not profile and at != 0:
            raise InvalidValue(key_path(step_path, "at"), "the first step must be at 0")
        profile.append((at, float(rate)))
    return Arrivals(tuple(profile), limit)


def _customers(value: Any, path: str, default_queue: str) -> Customers:
    mapping = mapping_of(value, path, _CUSTOMER_KEYS)

    def get(key: str, default: Any, check: Callable[[Any, str], Any]) -> Any:
        return check(mapping[key], key_path(path, key)) if key in mapping else default

    return Customers(
        bot_resolves=get("bot_resolves", 0.5, probability),
        messages_to_bot=get("messages_to_bot", IntRange(1, 2), lambda v, p: int_range(v, p, 0)),
        exchanges=get("exchanges", IntRange(2, 5), lambda v, p: int_range(v, p, 1)),
        think_time=get("think_time", Distribution("exponential", 20.0), distribution),
        patience=get("patience", Distribution("exponential", 180.0), patience_of),
        retry_after_no_agent=get("retry_after_no_agent", 0.3, probability),
        silent_leave=get("silent_leave", 0.1, probability),
        queues=get("queues", ((default_queue, 1.0),), lambda v, p: weighted(v, p, None, "queue")),
    )


def _agent_group(value: Any, path: str, index: int, default_queue: str) -> AgentGroup:
    mapping = mapping_of(value, path, _AGENT_KEYS)
    if "count" not in mapping:
        raise InvalidValue(key_path(path, "count"), "missing")

    def get(key: str, default: Any, check: Callable[[Any, str], Any]) -> Any:
        return check(mapping[key], key_path(path, key)) if key in mapping else default

    name = get("name", f"agent{index + 1}", short_name)
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise expected(key_path(path, "name"), "letters, digits, '.', '_' or '-'", name)
    queues_value = mapping.get("queues", [default_queue])
    queues_path = key_path(path, "queues")
    if not isinstance(queues_value, list) or not queues_value:
        raise expected(queues_path, "a non-empty list of queue names", queues_value)
    queues = tuple(short_name(q, f"{queues_path}[{i}]") for i, q in enumerate(queues_value))
    hold = mapping_of(
        mapping.get("hold"), key_path(path, "hold"), ("probability", "seconds", "duration")
    )
    hold_path = key_path(path, "hold")
    wrap = mapping_of(mapping.get("wrap_up"), key_path(path, "wrap_up"), ("time", "forget"))
    wrap_path = key_path(path, "wrap_up")
    shift = mapping_of(mapping.get("shift"), key_path(path, "shift"), ("start", "end"))
    shift_path = key_path(path, "shift")
    breaks = mapping_of(mapping.get("breaks"), key_path(path, "breaks"), ("every", "length"))
    breaks_path = key_path(path, "breaks")
    if breaks and ("every" not in breaks or "length" not in breaks):
        missing = "every" if "every" not in breaks else "length"
        raise InvalidValue(key_path(breaks_path, missing), "missing")
    shift_start = parse_duration(shift.get("start", 0), key_path(shift_path, "start"))
    shift_end = (
        None
        if shift.get("end") is None
        else parse_duration(shift["end"], key_path(shift_path, "end"))
    )
    if shift_end is not None and shift_end <= shift_start:
        raise InvalidValue(key_path(shift_path, "end"), "must be later than shift.start")
    return AgentGroup(
        name=name,
        count=integer(mapping["count"], key_path(path, "count"), 0, 100_000),
        queues=queues,
        max_conversations=get("max_conversations", 1, lambda v, p: integer(v, p, 1, 100)),
        reply_time=get("reply_time", Distribution("exponential", 20.0), distribution),
        accept_time=get("accept_time", Distribution("fixed", 3.0), distribution),
        leave_after=get("leave_after", Distribution("exponential", 10.0), distribution),
        ends_chat=get("ends_chat", 0.0, probability),
        hold_probability=(
            probability(hold["probability"], key_path(hold_path, "probability"))
            if "probability" in hold
            else 0.0
        ),
        hold_seconds=(
            distribution(hold["seconds"], key_path(hold_path, "seconds"))
            if "seconds" in hold
            else Distribution("fixed", 120.0)
        ),
        hold_duration=(
            distribution(hold["duration"], key_path(hold_path, "duration"))
            if "duration" in hold
            else Distribution("exponential", 60.0)
        ),
        wrap_up_time=(
            distribution(wrap["time"], key_path(wrap_path, "time"))
            if "time" in wrap
            else Distribution("exponential", 20.0)
        ),
        wrap_up_forget=(
            probability(wrap["forget"], key_path(wrap_path, "forget")) if "forget" in wrap else 0.0
        ),
        recover=get("recover", Distribution("fixed", 15.0), distribution),
        shift_start=shift_start,
        shift_end=shift_end,
        break_every=(
            positive_duration(breaks["every"], key_path(breaks_path, "every")) if breaks else None
        ),
        break_length=(
            positive_duration(breaks["length"], key_path(breaks_path, "length")) if breaks else 0.0
        ),
        handling_time=get("handling_time", None, distribution),
        **_handovers(mapping, path, default_queue),
    )


def _handovers(mapping: Mapping[str, Any], path: str, default_queue: str) -> dict[str, Any]:
    """``transfer: {share, queue}`` and ``consult: {share, queue, transfer}`` of a group."""
    found: dict[str, Any] = {}
    for key, extra in (("transfer", ()), ("consult", ("transfer",))):
        section_path = key_path(path, key)
        section = mapping_of(mapping.get(key), section_path, ("share", "queue", *extra))
        if not section:
            continue
        if "share" not in section:
            raise InvalidValue(key_path(section_path, "share"), "missing")
        found[f"{key}_share"] = probability(section["share"], key_path(section_path, "share"))
        queue = section.get("queue", default_queue)
        found[f"{key}_queue"] = short_name(queue, key_path(section_path, "queue"))
        if "transfer" in section:
            share = probability(section["transfer"], key_path(section_path, "transfer"))
            found["consult_transfer"] = share
    return found


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
    top = mapping_of(document, "", _TOP)
    for key in ("seed", "duration", "arrivals"):
        if key not in top:
            raise InvalidValue(key, "missing")
    config = mapping_of(top.get("config"), "config", None) if top.get("config") is not None else {}
    config = timers_off(config)
    settings = _engine_settings(config, source)
    default_queue = settings.routing.default_queue
    agents_value = top.get("agents", [])
    if not isinstance(agents_value, list):
        raise expected("agents", "a list of agent groups", agents_value)
    groups = tuple(
        _agent_group(group, f"agents[{i}]", i, default_queue)
        for i, group in enumerate(agents_value)
    )
    names = [group.name for group in groups]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise InvalidValue(f"agents[{i}].name", f"duplicate agent group name {name!r}")
    bot = mapping_of(top.get("bot"), "bot", ("closes",))
    seed = top["seed"]
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
        raise expected("seed", "an integer from 0 to 2**63-1", seed)
    description = top.get("description", "")
    if not isinstance(description, str):
        raise expected("description", "a string", description)
    duration = positive_duration(top["duration"], "duration")
    drain = parse_duration(top.get("drain", 0), "drain")
    channels = (
        weighted(top["channels"], "channels", CHANNEL_TYPES, "channel")
        if "channels" in top
        else (("WEB", 1.0),)
    )
    return Scenario(
        name=short_name(top["name"], "name") if "name" in top else default_name,
        description=description,
        source=source,
        seed=seed,
        duration=duration,
        drain=drain,
        resolution=_resolution(top.get("resolution", 0.001)),
        arrivals=_arrivals(top["arrivals"], "arrivals"),
        channels=channels,
        second_channel=(
            probability(top["second_channel"], "second_channel") if "second_channel" in top else 0.0
        ),
        customers=_customers(top.get("customers"), "customers", default_queue),
        bot_closes=probability(bot["closes"], "bot.closes") if "closes" in bot else 0.0,
        agents=groups,
        config=config,
        settings=settings,
        report=report_of(top.get("report"), "report", duration, duration + drain),
        common_random_numbers=flag(
            top.get("common_random_numbers", False), "common_random_numbers"
        ),
        faults=faults_of(top.get("faults"), "faults", duration, duration + drain),
    )


# ------------------------------------------------------------------------------ loading


def read_document(path: str) -> Mapping[Any, Any]:
    """The YAML document of a scenario file, unchecked; a ScenarioError if it is not a mapping."""
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
        document = read_document(name)
        default_name = Path(name).stem
    else:
        raise TypeError(f"load_scenario() takes a path, a mapping or a Scenario, not {source!r}")
    try:
        return _build(document, name, default_name)
    except InvalidValue as invalid:
        raise ScenarioError(name, invalid.key, invalid.problem) from None
