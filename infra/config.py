"""Settings of the engine: ``config.yaml`` read, checked and turned into frozen dataclasses.

``load_config`` takes a YAML file, a dict of the same shape, or nothing (the built-in defaults
alone; ``./config.yaml`` is never read by accident), merges it over the defaults (nested
mappings key by key; lists and scalars replace) and validates the result strictly in one pass
before any settings object is built. Every mistake is the operator's and is reported as a
``ConfigError`` that names the file and the dotted key path, e.g.::

    config.yaml: timers.agent_sal: unknown key (did you mean timers.agent_sla?)
    config.yaml: timers.agent_sla.thresholds[1].percent: expected an integer from 1 to 99 ...

The table ``_SCHEMA`` below is the single source of truth: it holds every key with its default
value and its check. ``DEFAULTS`` is derived from it, and the shipped ``config.yaml`` repeats
it for operators (a test keeps the two equal).

Relative paths (storage, log file) resolve against the current working directory at load time
and are returned absolute; no directory is created here.
"""

from __future__ import annotations

import copy
import copyreg
import difflib
import ipaddress
import math
import os
import reprlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath
from types import MappingProxyType
from typing import Any, TypeAlias

from domain.enums import Channel, ThresholdAction
from domain.policy import Threshold
from infra.yamlfile import YamlProblem, read_yaml

SYSTEM_BASES = ("simpleSystemBase", "multiprocTCPBase", "multiprocQueueBase", "multiprocUDPBase")
FSYNC_POLICIES = ("always", "interval", "never")
LOG_FORMATS = ("json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error")
CHANNEL_TYPES: tuple[str, ...] = tuple(channel.value for channel in Channel)
THRESHOLD_ACTIONS: tuple[str, ...] = tuple(action.value for action in ThresholdAction)


def _read_only(mapping: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    return MappingProxyType(mapping)


# Settings travel to actor processes inside messages (pickled): teach pickle the read-only
# mappings the settings use; they are rebuilt by ``_read_only`` on the other side.
copyreg.pickle(MappingProxyType, lambda proxy: (_read_only, (dict(proxy),)))


class ConfigError(Exception):
    """A configuration the operator must fix: names the source, the key path and the problem."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        super().__init__(f"{source}: {key}: {problem}")
        self.source = source
        self.key = key
        self.problem = problem

    def __reduce__(self) -> tuple[type[ConfigError], tuple[str, str, str]]:
        # Keeps the error picklable (it may cross a Thespian process boundary).
        return (ConfigError, (self.source, self.key, self.problem))


# --------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True, slots=True)
class SystemSettings:
    base: str
    admin_port: int
    bind: str
    allow_wide_bind: bool
    convention_address: str | None
    restart_limit: int
    restart_window_seconds: int


@dataclass(frozen=True, slots=True)
class PlacementSettings:
    per_host: int
    hosts: int


@dataclass(frozen=True, slots=True)
class StorageSettings:
    archive: Path
    journal: Path
    fsync: str
    fsync_interval_ms: int
    salvage_journal: bool


@dataclass(frozen=True, slots=True)
class BotSettings:
    enabled: bool
    welcome: str
    agent_keywords: tuple[str, ...]
    answer: str
    hold_notice: str
    resume_notice: str
    no_agent_notice: str
    class_path: str | None


@dataclass(frozen=True, slots=True)
class TimerSettings:
    agent_sla_seconds: float
    agent_sla_thresholds: tuple[Threshold, ...]
    customer_inactivity_seconds: float
    customer_inactivity_channels: Mapping[str, float]
    customer_inactivity_thresholds: tuple[Threshold, ...]
    wrap_up_enabled: bool
    wrap_up_seconds: float
    hold_max_seconds: float


@dataclass(frozen=True, slots=True)
class QueueSettings:
    agent_sla_seconds: float | None
    priority: int


@dataclass(frozen=True, slots=True)
class RoutingSettings:
    auto_accept: bool
    accept_timeout_seconds: float
    request_ttl_seconds: float
    queues: Mapping[str, QueueSettings]
    default_queue: str


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    listen: str
    token: str | None
    max_frame_bytes: int
    auth_timeout_seconds: float
    max_connections: int
    max_unauthenticated: int
    max_unauthenticated_per_peer: int
    max_connections_per_peer: int
    inflight_bytes: int
    total_inflight_bytes: int
    outbound_bytes: int
    total_outbound_bytes: int


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    format: str
    level: str
    file: Path | None


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything ``config.yaml`` says; ``source``: the file name, ``<dict>`` or ``<defaults>``."""

    system: SystemSettings
    placement: PlacementSettings
    storage: StorageSettings
    bot: BotSettings
    timers: TimerSettings
    routing: RoutingSettings
    gateway: GatewaySettings
    logging: LoggingSettings
    source: str

    def queue_sla_seconds(self, queue: str) -> float:
        """Agent SLA duration for agents routed from ``queue`` (queue override, else default)."""
        settings = self.routing.queues.get(queue)
        if settings is not None and settings.agent_sla_seconds is not None:
            return settings.agent_sla_seconds
        return self.timers.agent_sla_seconds

    def queue_priority(self, queue: str) -> int:
        """Priority of ``queue`` (higher is served first); unconfigured queues have 0."""
        settings = self.routing.queues.get(queue)
        return 0 if settings is None else settings.priority

    def inactivity_seconds(self, channel: str) -> float:
        """Customer inactivity duration on ``channel`` (per channel override, else default)."""
        channels = self.timers.customer_inactivity_channels
        return channels.get(channel, self.timers.customer_inactivity_seconds)


# --------------------------------------------------------------------------------------------
# Checks: each takes the raw value and its key path; returns the clean value or raises.


class _InvalidError(Exception):
    """A check failed; ``load_config`` turns it into a ConfigError that names the source."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(key, problem)
        self.key = key
        self.problem = problem


_Check: TypeAlias = Callable[[Any, str], Any]


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxstring, _SHORT.maxother = 3, 4, 4, 50, 50


# What errors about a YAML file say of its values and keys (config.yaml here, and scenario
# files in runtime.simulation.scenario).


def show_value(value: object) -> str:
    """A short ``repr``: bounded in depth and width before it is built, so that a huge or
    deeply nested value (YAML aliases make both cheap to write) costs nothing to show."""
    try:
        text = _SHORT.repr(value)
    except (ValueError, RecursionError):  # an int too long to print, a pathological object
        return f"<{type(value).__name__} too large to show>"
    return text if len(text) <= 60 else text[:57] + "..."


def _plain(key: object) -> str:
    """A key as it reads in a path; numbers, null and empty or padded strings are quoted."""
    if isinstance(key, str) and key != "" and key.strip() == key:
        return key
    return show_value(key)


def key_path(path: str, key: object) -> str:
    """``path.key``, the key shown as it reads (quoted when it is not a plain name)."""
    return f"{path}.{_plain(key)}" if path else _plain(key)


def describe_value(value: Any) -> str:
    """What a value is, for "expected X, got <this>": its kind and a short repr."""
    if value is None:
        return "null"
    names = {bool: "boolean", int: "integer", float: "number", str: "string"}
    name = names.get(type(value))
    if name is None:
        name = "mapping" if isinstance(value, Mapping) else type(value).__name__
    return f"{name} {show_value(value)}"


def _expected(path: str, what: str, value: Any) -> _InvalidError:
    return _InvalidError(path, f"expected {what}, got {describe_value(value)}")


def suggest_key(word: object, known: Iterable[str], parent: str = "") -> str:
    """`` (did you mean parent.key?)`` for a near miss of a known name, else ``""``."""
    if not isinstance(word, str):
        return ""
    candidates = list(known)
    folded = {candidate.lower(): candidate for candidate in candidates}
    match = folded.get(word.lower())
    if match is None:
        close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
        match = close[0] if close else None
    return "" if match is None else f" (did you mean {key_path(parent, match)}?)"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return _is_int(value) or (isinstance(value, float) and math.isfinite(value))


def _boolean(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise _expected(path, "true or false", value)
    return value


def _integer(minimum: int | None = None, maximum: int | None = None) -> _Check:
    if minimum is not None and maximum is not None:
        what = f"an integer from {minimum} to {maximum}"
    elif minimum is not None:
        what = f"an integer >= {minimum}"
    else:
        what = "an integer"

    def check(value: Any, path: str) -> int:
        if not _is_int(value):
            raise _expected(path, what, value)
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise _expected(path, what, value)
        return int(value)

    return check


_MAX_SECONDS = 1_000_000_000  # about 31 years: a bound that keeps arithmetic on durations safe


def _duration(value: Any, path: str) -> float:
    if not _is_number(value) or not 0 < value <= _MAX_SECONDS:
        raise _expected(path, f"a number of seconds > 0 (at most {_MAX_SECONDS})", value)
    return float(value)


def _text(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise _expected(path, "a string", value)
    return value


def _name(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _expected(path, "a non-empty string", value)
    return value


#: The shortest gateway token accepted (``gateway.token`` or the environment variable).
MIN_TOKEN_CHARS = 16


def token_problem(token: str) -> str | None:
    """Why ``token`` cannot be the network gateway's token, or None. Never shows the token."""
    if not token.strip():
        return "the token is empty"
    if len(token) < MIN_TOKEN_CHARS:
        return (
            f"a token of {len(token)} characters is too short: use at least {MIN_TOKEN_CHARS}"
            " random characters (e.g. openssl rand -hex 32)"
        )
    return None


def _token(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise _InvalidError(path, f"expected a string, got {type(value).__name__}")
    problem = token_problem(value)
    if problem is not None:
        raise _InvalidError(path, problem)
    return value


def _optional(check: _Check) -> _Check:
    def optional(value: Any, path: str) -> Any:
        return None if value is None else check(value, path)

    return optional


def _choice(options: tuple[str, ...], *, fold_case: bool = False) -> _Check:
    def check(value: Any, path: str) -> str:
        given = value.lower() if fold_case and isinstance(value, str) else value
        if given not in options:
            hint = suggest_key(value, options)
            problem = f"expected one of: {', '.join(options)}; got {describe_value(value)}{hint}"
            raise _InvalidError(path, problem)
        return str(given)

    return check


def _path(value: Any, path: str) -> Path:
    if not isinstance(value, str | PurePath) or not str(value):
        raise _expected(path, "a file system path", value)
    try:
        location = Path(value).expanduser()
    except RuntimeError as error:  # "~someone" without such a user
        raise _InvalidError(path, f"cannot expand {str(value)!r}: {error}") from None
    return location if location.is_absolute() else Path.cwd() / location


def _ip_address(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise _expected(path, "an IP address such as 127.0.0.1", value)
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise _expected(path, "an IP address such as 127.0.0.1", value) from None


def _host_port(value: Any, path: str) -> str:
    """``host:port`` with a port from 0 to 65535 (IPv6 hosts in brackets: ``[::1]:7700``)."""
    what = 'an address "host:port" with a port from 0 to 65535'
    if not isinstance(value, str):
        raise _expected(path, what, value)
    host, _, port = value.rpartition(":")
    bare_host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if (
        not bare_host
        or (":" in bare_host and bare_host == host)
        or not (port.isascii() and port.isdigit() and len(port) <= 5)
        or int(port) > 65535
    ):
        raise _expected(path, what, value)
    return value


def _class_path(value: Any, path: str) -> str:
    what = 'a class path "package.module:ClassName"'
    if not isinstance(value, str):
        raise _expected(path, what, value)
    module, _, name = value.partition(":")
    if not name.isidentifier() or not all(part.isidentifier() for part in module.split(".")):
        raise _expected(path, what, value)
    return value


def _sequence(value: Any, path: str, what: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise _expected(path, what, value)
    return list(value)


def _mapping(value: Any, path: str, what: str = "a mapping") -> Mapping[Any, Any]:
    if not isinstance(value, Mapping):
        raise _expected(path, what, value)
    return value


def _refuse_unknown(mapping: Mapping[Any, Any], known: Iterable[str], path: str) -> None:
    names = list(known)
    for key in mapping:
        if key not in names:
            hint = suggest_key(key, names, path) or f" (known keys: {', '.join(names)})"
            raise _InvalidError(key_path(path, key), "unknown key" + hint)


def _exact_keys(value: Any, path: str, known: Mapping[str, Any], what: str) -> Mapping[Any, Any]:
    """``value`` as a mapping that has every key of ``known`` and no other."""
    mapping = _mapping(value, path, what)
    _refuse_unknown(mapping, known, path)
    for key in known:
        if key not in mapping:
            raise _InvalidError(key_path(path, key), "missing")
    return mapping


def _record(value: Any, path: str, fields: Mapping[str, _Check]) -> dict[str, Any]:
    """A mapping with exactly the keys of ``fields``, each checked."""
    mapping = _exact_keys(value, path, fields, f"a mapping with keys {', '.join(fields)}")
    return {key: check(mapping[key], key_path(path, key)) for key, check in fields.items()}


def _keywords(value: Any, path: str) -> tuple[str, ...]:
    items = _sequence(value, path, "a list of words")
    return tuple(_name(item, f"{path}[{index}]") for index, item in enumerate(items))


def _percent(value: Any, path: str) -> int:
    if not _is_int(value) or not 0 < value < 100:
        raise _expected(path, "an integer from 1 to 99 (100 is always the expiry)", value)
    return int(value)


_THRESHOLD_FIELDS: Mapping[str, _Check] = {
    "percent": _percent,
    "action": _choice(THRESHOLD_ACTIONS),
}


def _thresholds(value: Any, path: str) -> list[dict[str, Any]]:
    """A list of ``{percent, action}``, returned sorted by percent; a percent appears once."""
    items = _sequence(value, path, "a list of {percent, action}")
    clean: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        threshold = _record(item, f"{path}[{index}]", _THRESHOLD_FIELDS)
        if any(seen["percent"] == threshold["percent"] for seen in clean):
            raise _InvalidError(
                f"{path}[{index}].percent", f"duplicate percent {threshold['percent']}"
            )
        clean.append(threshold)
    return sorted(clean, key=lambda threshold: int(threshold["percent"]))


def _channel_durations(value: Any, path: str) -> dict[str, float]:
    mapping = _mapping(value, path, "a mapping of channel type to seconds")
    clean: dict[str, float] = {}
    for channel, seconds in mapping.items():
        if channel not in CHANNEL_TYPES:
            hint = suggest_key(channel, CHANNEL_TYPES, path)
            raise _InvalidError(
                key_path(path, channel),
                f"unknown channel type{hint}; expected one of {', '.join(CHANNEL_TYPES)}",
            )
        clean[channel] = _duration(seconds, key_path(path, channel))
    return clean


_QUEUE_FIELDS: Mapping[str, _Check] = {
    "agent_sla_seconds": _optional(_duration),
    "priority": _integer(),
}
_QUEUE_DEFAULTS: Mapping[str, Any] = {"agent_sla_seconds": None, "priority": 0}


def _queues(value: Any, path: str) -> dict[str, dict[str, Any]]:
    mapping = _mapping(value, path, "a mapping of queue name to queue settings")
    clean: dict[str, dict[str, Any]] = {}
    for name, entry in mapping.items():
        queue_path = key_path(path, name)
        if not isinstance(name, str) or not name.strip():
            raise _InvalidError(queue_path, "a queue name must be a non-empty string")
        overrides = _mapping({} if entry is None else entry, queue_path)
        clean[name] = _record({**_QUEUE_DEFAULTS, **overrides}, queue_path, _QUEUE_FIELDS)
    return clean


# --------------------------------------------------------------------------------------------
# The schema: every key with its default and its check.


@dataclass(frozen=True, slots=True)
class _Key:
    default: Any
    check: _Check


_Spec: TypeAlias = "_Key | Mapping[str, _Spec]"

_SCHEMA: Mapping[str, _Spec] = {
    "system": {
        "base": _Key("multiprocTCPBase", _choice(SYSTEM_BASES)),
        "admin_port": _Key(1900, _integer(1, 65535)),
        "bind": _Key("127.0.0.1", _ip_address),
        "allow_wide_bind": _Key(False, _boolean),
        "convention_address": _Key(None, _optional(_name)),
        "restart_limit": _Key(5, _integer(1, 1000)),
        "restart_window_seconds": _Key(120, _integer(1, 86400)),
    },
    "placement": {
        "per_host": _Key(10000, _integer(1)),
        "hosts": _Key(1, _integer(1)),
    },
    "storage": {
        "archive": _Key("data/archive.sqlite3", _path),
        "journal": _Key("data/journal", _path),
        "fsync": _Key("interval", _choice(FSYNC_POLICIES)),
        "fsync_interval_ms": _Key(50, _integer(1)),
        "salvage_journal": _Key(False, _boolean),
    },
    "bot": {
        "enabled": _Key(True, _boolean),
        "welcome": _Key("Hello! I am the virtual assistant. How can I help you today?", _text),
        "agent_keywords": _Key(["agent", "human"], _keywords),
        "answer": _Key("Thanks for your message. Type 'agent' to talk to a person.", _text),
        "hold_notice": _Key("An agent has put the conversation on hold.", _text),
        "resume_notice": _Key("The agent is back.", _text),
        "no_agent_notice": _Key(
            "Sorry, no agent is available right now. Please try again later.", _text
        ),
        "class_path": _Key(None, _optional(_class_path)),
    },
    "timers": {
        "agent_sla": {
            "seconds": _Key(60, _duration),
            "thresholds": _Key([], _thresholds),
        },
        "customer_inactivity": {
            "seconds": _Key(300, _duration),
            "channels": _Key({}, _channel_durations),
            "thresholds": _Key([], _thresholds),
        },
        "wrap_up": {
            "enabled": _Key(False, _boolean),
            "seconds": _Key(60, _duration),
        },
        "hold": {
            "max_seconds": _Key(600, _duration),
        },
    },
    "routing": {
        "auto_accept": _Key(True, _boolean),
        "accept_timeout_seconds": _Key(30, _duration),
        "request_ttl_seconds": _Key(120, _duration),
        "queues": _Key({}, _queues),
        "default_queue": _Key("default", _name),
    },
    "gateway": {
        "listen": _Key("127.0.0.1:7700", _host_port),
        "token": _Key(None, _optional(_token)),
        "max_frame_bytes": _Key(1048576, _integer(64)),
        "auth_timeout_seconds": _Key(10, _duration),
        "max_connections": _Key(256, _integer(1)),
        "max_unauthenticated": _Key(64, _integer(1)),
        "max_unauthenticated_per_peer": _Key(8, _integer(1)),
        "max_connections_per_peer": _Key(64, _integer(1)),
        "inflight_bytes": _Key(4194304, _integer(1024)),
        "total_inflight_bytes": _Key(67108864, _integer(1024)),
        "outbound_bytes": _Key(16777216, _integer(1024)),
        "total_outbound_bytes": _Key(268435456, _integer(1024)),
    },
    "logging": {
        "format": _Key("json", _choice(LOG_FORMATS)),
        "level": _Key("info", _choice(LOG_LEVELS, fold_case=True)),
        "file": _Key(None, _optional(_path)),
    },
}


def _defaults_of(spec: Mapping[str, _Spec]) -> dict[str, Any]:
    return {
        key: copy.deepcopy(node.default) if isinstance(node, _Key) else _defaults_of(node)
        for key, node in spec.items()
    }


#: The built-in defaults as a nested dict of plain YAML values (deep-copy before changing it).
DEFAULTS: Mapping[str, Any] = _defaults_of(_SCHEMA)


# --------------------------------------------------------------------------------------------
# Loading: read, merge, validate everything, then build.


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


def _validate_node(value: Any, path: str, spec: _Spec) -> Any:
    if isinstance(spec, _Key):
        return spec.check(value, path)
    mapping = _exact_keys(value, path, spec, "a mapping" if path else "a mapping of sections")
    return {key: _validate_node(mapping[key], key_path(path, key), spec[key]) for key in spec}


def _check_bind(system: Mapping[str, Any]) -> None:
    if system["allow_wide_bind"] or ipaddress.ip_address(system["bind"]).is_loopback:
        return
    raise _InvalidError(
        "system.bind",
        f"{system['bind']} is not a loopback address. Thespian's admin port accepts pickled "
        "Python objects without authentication (anyone who reaches it can run code): set "
        "system.allow_wide_bind: true only on a trusted private network",
    )


def _validate(merged: Mapping[Any, Any]) -> dict[str, Any]:
    """The whole configuration checked and normalised into plain values (nothing built yet)."""
    clean: dict[str, Any] = _validate_node(merged, "", _SCHEMA)
    _check_bind(clean["system"])
    return clean


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
        logging=LoggingSettings(**clean["logging"]),
        source=source,
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


def load_config(
    source: str | os.PathLike[str] | Mapping[str, Any] | None = None,
) -> Settings:
    """Settings from ``source`` merged over the built-in defaults.

    ``None``: the defaults alone. A path: a YAML file. A mapping: the same shape as
    ``config.yaml``. Raises ConfigError, naming the source and the key path, on any mistake.
    """
    overrides: Mapping[Any, Any]
    if source is None:
        name, overrides = "<defaults>", {}
    elif isinstance(source, Mapping):
        name, overrides = "<dict>", source
    elif isinstance(source, str | os.PathLike):
        name = os.fspath(source)
        overrides = _read_file(name)
    else:
        raise TypeError(f"load_config() takes a path, a mapping or None, not {type(source)!r}")
    try:
        clean = _validate(_merge(_defaults_of(_SCHEMA), overrides))
    except _InvalidError as invalid:
        raise ConfigError(name, invalid.key, invalid.problem) from None
    return _build(clean, name)
