"""Loading: read the YAML file, merge it over the defaults, validate everything, then build."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from domain.enums import ThresholdAction
from domain.errors import CxError, ErrorKind
from domain.policy import Threshold
from infra.config.checks import InvalidValue, describe_value
from infra.config.environment import SOURCE as ENVIRONMENT
from infra.config.environment import EnvironmentProblem, overrides_from
from infra.config.schema import defaults_of, validate
from infra.config.settings import (
    BotSettings,
    GatewaySettings,
    LoggingSettings,
    MetricsSettings,
    PlacementSettings,
    QueueSettings,
    RoutingSettings,
    Settings,
    StorageSettings,
    SystemSettings,
    TimerSettings,
    WebSettings,
)
from infra.config.webhooks import webhook_settings
from infra.yamlfile import YamlProblem, read_yaml

#: ``Settings.source`` of settings not read from a file: the defaults alone, or a mapping.
DEFAULTS_SOURCE = "<defaults>"
MAPPING_SOURCE = "<dict>"


class ConfigError(CxError):
    """A configuration the operator must fix: names the source, the key path and the problem."""

    kind = ErrorKind.BAD_ARGUMENT

    def __init__(self, source: str, key: str, problem: str) -> None:
        super().__init__(f"{source}: {key}: {problem}")
        self.source = source
        self.key = key
        self.problem = problem

    def __reduce__(self) -> tuple[type[ConfigError], tuple[str, str, str]]:
        # Keeps the error picklable (it may cross a Thespian process boundary).
        return (ConfigError, (self.source, self.key, self.problem))


def _merge(base: Mapping[Any, Any], override: Mapping[Any, Any]) -> dict[Any, Any]:
    """``override`` over ``base``: mappings merge key by key, anything else replaces.

    A section given as null (``routing:`` with nothing under it) keeps its defaults.
    """
    merged = {key: copy.deepcopy(value) for key, value in base.items()}
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = _merge(current, value)
        elif not (isinstance(current, Mapping) and value is None):
            merged[key] = value
    return merged


def _thresholds_of(items: list[dict[str, Any]]) -> tuple[Threshold, ...]:
    return tuple(Threshold(item["percent"], ThresholdAction(item["action"])) for item in items)


def _build(clean: Mapping[str, Any], source: str) -> Settings:
    timers = clean["timers"]
    routing = clean["routing"]
    queues = {name: QueueSettings(**entry) for name, entry in routing["queues"].items()}
    return Settings(
        system=SystemSettings(**clean["system"]),
        placement=PlacementSettings(**clean["placement"]),
        storage=StorageSettings(**clean["storage"]),
        bot=BotSettings(**clean["bot"]),
        timers=TimerSettings(
            agent_sla_seconds=timers["agent_sla"]["seconds"],
            agent_sla_thresholds=_thresholds_of(timers["agent_sla"]["thresholds"]),
            customer_inactivity_seconds=timers["customer_inactivity"]["seconds"],
            customer_inactivity_channels=MappingProxyType(
                timers["customer_inactivity"]["channels"]
            ),
            customer_inactivity_thresholds=_thresholds_of(
                timers["customer_inactivity"]["thresholds"]
            ),
            wrap_up_enabled=timers["wrap_up"]["enabled"],
            wrap_up_seconds=timers["wrap_up"]["seconds"],
            hold_max_seconds=timers["hold"]["max_seconds"],
        ),
        routing=RoutingSettings(**{**routing, "queues": MappingProxyType(queues)}),
        gateway=GatewaySettings(**clean["gateway"]),
        web=WebSettings(**clean["web"]),
        logging=LoggingSettings(**clean["logging"]),
        metrics=MetricsSettings(**clean["metrics"]),
        source=source,
        webhooks=webhook_settings(clean["webhooks"]),
    )


def _read_file(name: str) -> Mapping[Any, Any]:
    try:
        document = read_yaml(name)
    except YamlProblem as problem:
        raise ConfigError(name, problem.key, problem.problem) from None
    if document is None:  # an empty file (or only comments): all defaults
        return {}
    if not isinstance(document, Mapping):
        raise ConfigError(
            name, "<top level>", f"expected a mapping of sections, got {describe_value(document)}"
        )
    return document


def _anchored(tree: Mapping[str, Any], base: Path) -> dict[str, Any]:
    """``tree`` with every relative path made absolute against ``base``."""
    return {
        key: _anchored(value, base)
        if isinstance(value, Mapping)
        else (base / value if isinstance(value, Path) and not value.is_absolute() else value)
        for key, value in tree.items()
    }


def _from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    try:
        return overrides_from(environ)
    except EnvironmentProblem as problem:
        raise ConfigError(ENVIRONMENT, problem.variable, problem.problem) from None


def load_config(
    source: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Settings from ``source`` merged over the built-in defaults.

    ``None``: the defaults alone. A path: a YAML file. A mapping: the same shape as
    ``config.yaml``. A file or the defaults are then overridden by the ``CX_SECTION__KEY``
    variables of ``environ`` (``os.environ`` when None: :mod:`infra.config.environment`); a
    mapping is complete in itself (``environ`` applies only when given). Relative paths resolve
    against the file's directory (the current directory for a mapping or the defaults). Raises
    ConfigError, naming the source and the key path (or the variable), on any mistake.
    """
    overrides: Mapping[Any, Any]
    base = Path.cwd()
    if source is None:
        name, overrides = DEFAULTS_SOURCE, {}
    elif isinstance(source, Mapping):
        name, overrides = MAPPING_SOURCE, source
    elif isinstance(source, str | os.PathLike):
        name = os.fspath(source)
        overrides = _read_file(name)
        base = Path(os.path.abspath(Path(name).expanduser())).parent
    else:
        raise TypeError(f"load_config() takes a path, a mapping or None, not {type(source)!r}")
    if environ is None and not isinstance(source, Mapping):
        environ = os.environ
    merged = _merge(defaults_of(), overrides)
    if environ is not None:
        merged = _merge(merged, _from_environment(environ))
    try:
        clean = validate(merged)
    except InvalidValue as invalid:
        raise ConfigError(name, invalid.key, invalid.problem) from None
    return _build(_anchored(clean, base), name)
