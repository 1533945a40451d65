"""The schema of ``config.yaml``: every key with its default value and its check.

``SCHEMA`` is the single source of truth: ``DEFAULTS`` is derived from it, and the shipped
``config.yaml`` repeats it for operators (a test keeps the two equal). ``validate`` checks a
whole merged document against it in one pass.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from domain.enums import Channel, ThresholdAction
from infra.config.checks import (
    Check,
    InvalidValue,
    as_mapping,
    boolean,
    choice,
    class_path,
    conninfo,
    duration,
    exact_keys,
    expected,
    file_path,
    host_port,
    integer,
    ip_address,
    is_int,
    key_path,
    non_empty,
    optional,
    record,
    sequence,
    suggest_key,
    text,
)
from infra.config.webhooks import webhooks

SYSTEM_BASES = ("simpleSystemBase", "multiprocTCPBase", "multiprocQueueBase", "multiprocUDPBase")
FSYNC_POLICIES = ("always", "interval", "never")
LOG_FORMATS = ("json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error")
CHANNEL_TYPES: tuple[str, ...] = tuple(channel.value for channel in Channel)
THRESHOLD_ACTIONS: tuple[str, ...] = tuple(action.value for action in ThresholdAction)
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


#: The shortest key the web gateway signs its tokens with (HS256 wants 32 bytes or more).
MIN_TOKEN_KEY_CHARS = 32


def _token_key(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise InvalidValue(path, f"expected a string, got {type(value).__name__}")
    if len(value) < MIN_TOKEN_KEY_CHARS:
        raise InvalidValue(
            path, f"a key of {len(value)} characters is too short: use at least"
            f" {MIN_TOKEN_KEY_CHARS} random characters (e.g. openssl rand -hex 32)",
        )  # fmt: skip
    return value


def _token(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise InvalidValue(path, f"expected a string, got {type(value).__name__}")
    problem = token_problem(value)
    if problem is not None:
        raise InvalidValue(path, problem)
    return value


def _keywords(value: Any, path: str) -> tuple[str, ...]:
    items = sequence(value, path, "a list of words")
    return tuple(non_empty(item, f"{path}[{index}]") for index, item in enumerate(items))


def _percent(value: Any, path: str) -> int:
    if not is_int(value) or not 0 < value < 100:
        raise expected(path, "an integer from 1 to 99 (100 is always the expiry)", value)
    return int(value)


_THRESHOLD_FIELDS: Mapping[str, Check] = {
    "percent": _percent,
    "action": choice(THRESHOLD_ACTIONS),
}


def _thresholds(value: Any, path: str) -> list[dict[str, Any]]:
    """A list of ``{percent, action}``, returned sorted by percent; a percent appears once."""
    items = sequence(value, path, "a list of {percent, action}")
    clean: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        threshold = record(item, f"{path}[{index}]", _THRESHOLD_FIELDS)
        if any(seen["percent"] == threshold["percent"] for seen in clean):
            raise InvalidValue(
                f"{path}[{index}].percent", f"duplicate percent {threshold['percent']}"
            )
        clean.append(threshold)
    return sorted(clean, key=lambda threshold: int(threshold["percent"]))


def _channel_durations(value: Any, path: str) -> dict[str, float]:
    mapping = as_mapping(value, path, "a mapping of channel type to seconds")
    clean: dict[str, float] = {}
    for channel, seconds in mapping.items():
        if channel not in CHANNEL_TYPES:
            hint = suggest_key(channel, CHANNEL_TYPES, path)
            raise InvalidValue(
                key_path(path, channel),
                f"unknown channel type{hint}; expected one of {', '.join(CHANNEL_TYPES)}",
            )
        clean[channel] = duration(seconds, key_path(path, channel))
    return clean


_QUEUE_FIELDS: Mapping[str, Check] = {
    "agent_sla_seconds": optional(duration),
    "priority": integer(),
}
_QUEUE_DEFAULTS: Mapping[str, Any] = {"agent_sla_seconds": None, "priority": 0}


def _queues(value: Any, path: str) -> dict[str, dict[str, Any]]:
    mapping = as_mapping(value, path, "a mapping of queue name to queue settings")
    clean: dict[str, dict[str, Any]] = {}
    for name, entry in mapping.items():
        queue_path = key_path(path, name)
        if not isinstance(name, str) or not name.strip():
            raise InvalidValue(queue_path, "a queue name must be a non-empty string")
        overrides = as_mapping({} if entry is None else entry, queue_path)
        clean[name] = record({**_QUEUE_DEFAULTS, **overrides}, queue_path, _QUEUE_FIELDS)
    return clean


_NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def _node_name(value: Any, path: str) -> str:
    """A node's name: 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or
    digit (a host name fits)."""
    if not isinstance(value, str) or not _NODE_NAME.fullmatch(value):
        raise expected(path, "a node name of letters, digits, '.', '_' or '-' (1-63)", value)
    return value


# --------------------------------------------------------------------------------------------
# The schema: every key with its default and its check.


@dataclass(frozen=True, slots=True)
class _Key:
    default: Any
    check: Check


_Spec: TypeAlias = "_Key | Mapping[str, _Spec]"

SCHEMA: Mapping[str, _Spec] = {
    "system": {
        "base": _Key("multiprocTCPBase", choice(SYSTEM_BASES)),
        "admin_port": _Key(1900, integer(1, 65535)),
        "bind": _Key("127.0.0.1", ip_address),
        "allow_wide_bind": _Key(False, boolean),
        "convention_address": _Key(None, optional(host_port)),
        "node": _Key(None, optional(_node_name)),
        "offers_hosts": _Key(True, boolean),
        "weight": _Key(1, integer(1, 1000)),
        "offers_agent_hosts": _Key(True, boolean),
        "offers_archivists": _Key(True, boolean),
        "heartbeat_ms": _Key(500, integer(10, 60000)),
        "suspect_after": _Key(3, integer(1, 1000)),
        "dead_after": _Key(6, integer(2, 1000)),
        "restart_limit": _Key(5, integer(1, 1000)),
        "restart_window_seconds": _Key(120, integer(1, 86400)),
    },
    "placement": {
        "routers": _Key(1, integer(1, 1024)),
        "per_host": _Key(10000, integer(1)),
        "hosts": _Key(1, integer(1)),
        "agent_hosts": _Key(1, integer(1, 1024)),
        "archivists": _Key(2, integer(1, 64)),
        "room_desks": _Key(1, integer(1, 64)),
        "restore_hosts": _Key(2, integer(1, 64)),
    },
    "storage": {
        "archive": _Key("data/archive.sqlite3", file_path),
        "journal": _Key("data/journal", file_path),
        "fsync": _Key("interval", choice(FSYNC_POLICIES)),
        "fsync_interval_ms": _Key(50, integer(1)),
        "salvage_journal": _Key(False, boolean),
        "postgres": _Key(None, optional(conninfo)),
        "retention_days": _Key(None, optional(integer(1))),
        "memory": _Key(False, boolean),
    },
    "bot": {
        "enabled": _Key(True, boolean),
        "welcome": _Key("Hello! I am the virtual assistant. How can I help you today?", text),
        "agent_keywords": _Key(["agent", "human"], _keywords),
        "answer": _Key("Thanks for your message. Type 'agent' to talk to a person.", text),
        "hold_notice": _Key("An agent has put the conversation on hold.", text),
        "resume_notice": _Key("The agent is back.", text),
        "no_agent_notice": _Key(
            "Sorry, no agent is available right now. Please try again later.", text
        ),
        "class_path": _Key(None, optional(class_path)),
    },
    "timers": {
        "agent_sla": {
            "seconds": _Key(60, duration),
            "thresholds": _Key([], _thresholds),
        },
        "customer_inactivity": {
            "seconds": _Key(300, duration),
            "channels": _Key({}, _channel_durations),
            "thresholds": _Key([], _thresholds),
        },
        "wrap_up": {
            "enabled": _Key(False, boolean),
            "seconds": _Key(60, duration),
        },
        "hold": {
            "max_seconds": _Key(600, duration),
        },
    },
    "routing": {
        "auto_accept": _Key(True, boolean),
        "accept_timeout_seconds": _Key(30, duration),
        "request_ttl_seconds": _Key(120, duration),
        "queues": _Key({}, _queues),
        "default_queue": _Key("default", non_empty),
        "position_interval_seconds": _Key(None, optional(duration)),
        "sticky_agent_seconds": _Key(None, optional(duration)),
    },
    "gateway": {
        "listen": _Key("127.0.0.1:7700", host_port),
        "token": _Key(None, optional(_token)),
        "max_frame_bytes": _Key(1048576, integer(64)),
        "auth_timeout_seconds": _Key(10, duration),
        "max_connections": _Key(256, integer(1)),
        "max_unauthenticated": _Key(64, integer(1)),
        "max_unauthenticated_per_peer": _Key(8, integer(1)),
        "max_connections_per_peer": _Key(64, integer(1)),
        "inflight_bytes": _Key(4194304, integer(1024)),
        "total_inflight_bytes": _Key(67108864, integer(1024)),
        "outbound_bytes": _Key(16777216, integer(1024)),
        "total_outbound_bytes": _Key(268435456, integer(1024)),
    },
    "metrics": {
        "bind": _Key("127.0.0.1", ip_address),
        "port": _Key(None, optional(integer(1, 65535))),
        "service_level_seconds": _Key(20, duration),
        "ready_timeout_seconds": _Key(2, duration),
    },
    "web": {
        "listen": _Key("127.0.0.1:7800", host_port),
        "token_key": _Key(None, optional(_token_key)),
        "token_ttl_seconds": _Key(3600, integer(1)),
        "max_body_bytes": _Key(65536, integer(64)),
        "tls_certfile": _Key(None, optional(file_path)),
        "tls_keyfile": _Key(None, optional(file_path)),
    },
    "logging": {
        "format": _Key("json", choice(LOG_FORMATS)),
        "level": _Key("info", choice(LOG_LEVELS, fold_case=True)),
        "file": _Key(None, optional(file_path)),
    },
    "webhooks": _Key([], webhooks),
}


def defaults_of(spec: Mapping[str, _Spec] | None = None) -> dict[str, Any]:
    """A fresh copy of the defaults of ``spec`` (the whole schema when None)."""
    return {
        key: copy.deepcopy(node.default) if isinstance(node, _Key) else defaults_of(node)
        for key, node in (SCHEMA if spec is None else spec).items()
    }


#: The built-in defaults as a nested dict of plain YAML values (deep-copy before changing it).
DEFAULTS: Mapping[str, Any] = defaults_of()


def _validate_node(value: Any, path: str, spec: _Spec) -> Any:
    if isinstance(spec, _Key):
        return spec.check(value, path)
    mapping = exact_keys(value, path, spec, "a mapping" if path else "a mapping of sections")
    return {key: _validate_node(mapping[key], key_path(path, key), spec[key]) for key in spec}


def _check_bind(system: Mapping[str, Any]) -> None:
    if system["allow_wide_bind"] or ipaddress.ip_address(system["bind"]).is_loopback:
        return
    raise InvalidValue(
        "system.bind",
        f"{system['bind']} is not a loopback address. Thespian's admin port accepts pickled "
        "Python objects without authentication (anyone who reaches it can run code): set "
        "system.allow_wide_bind: true only on a trusted private network",
    )


def _check_detector(system: Mapping[str, Any]) -> None:
    if system["suspect_after"] >= system["dead_after"]:
        raise InvalidValue(
            "system.dead_after",
            f"must be greater than system.suspect_after ({system['suspect_after']}), got"
            f" {system['dead_after']}: a node is suspected before it is declared dead",
        )


def validate(merged: Mapping[Any, Any]) -> dict[str, Any]:
    """The whole configuration checked and normalised into plain values (nothing built yet)."""
    clean: dict[str, Any] = _validate_node(merged, "", SCHEMA)
    _check_bind(clean["system"])
    _check_detector(clean["system"])
    return clean
