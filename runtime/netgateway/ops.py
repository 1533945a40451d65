"""The operations of the network gateway: the public :class:`~runtime.gateway.Gateway` methods
(all but ``advance``, which is for the embedded virtual clock, and the connection's own
``close``, ``pushed`` and ``drain``), plus ``auth`` and ``ping``.

Each operation names its arguments exactly as the Gateway method's parameters (a test checks
the table against the signatures) with the msgpack type each accepts. Arguments are checked here
before the request reaches the engine: an unknown or missing argument, or a value of the wrong
type, is a ``bad_argument`` error naming it. Ranges, lengths and enum values are the Gateway's
own checks (also ``bad_argument``).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from runtime.gateway import (
    BadArgumentError,
    GatewayError,
    IllegalTransitionError,
    UnavailableError,
    UnknownIdError,
)
from runtime.netgateway.codec import ProtocolError, msgpack_type_name

__all__ = [
    "NOT_OFFERED",
    "OPS",
    "SERVER_OPS",
    "SUBSCRIPTION_OPS",
    "Kind",
    "OpSpec",
    "Param",
    "check_args",
    "error_type",
    "plain_result",
]


class Kind(enum.Enum):
    """The msgpack type an argument accepts."""

    STR = "a string"
    INT = "an integer"
    NUMBER = "a number"
    MAP = "a map with string keys"
    STR_LIST = "an array of strings"
    SCALAR = "a string, number, boolean or nil"


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    kind: Kind
    required: bool = True
    nullable: bool = False  # nil is accepted (and means the Gateway's default, None)


@dataclass(frozen=True, slots=True)
class OpSpec:
    name: str
    params: tuple[Param, ...]
    result: str  # for the documentation

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


def _op(name: str, *params: Param, result: str = "nil") -> OpSpec:
    return OpSpec(name, params, result)


_S = Kind.STR
_CONV = Param("conversation_id", _S)
_AGENT = Param("agent_id", _S)
_SESSION = Param("channel_session_id", _S)

OPS: Final[dict[str, OpSpec]] = {
    spec.name: spec
    for spec in (
        _op("auth", Param("token", _S), result="{protocol, max_frame_bytes}"),
        _op("ping", result='"pong"'),
        _op(
            "start_session",
            Param("customer_id", _S),
            Param("channel", _S),
            Param("identifier", _S),
            Param("room_id", _S, required=False, nullable=True),
            Param("data", Kind.MAP, required=False, nullable=True),
            result="{conversation_id, channel_session_id, room_id}",
        ),
        _op(
            "customer_message",
            _SESSION,
            Param("text", _S),
            Param("message_id", _S, required=False, nullable=True),
        ),
        _op("end_session", _SESSION, Param("reason", _S, required=False)),
        _op("request_agent", _CONV, Param("queue", _S, required=False)),
        _op(
            "agent_login",
            _AGENT,
            Param("queues", Kind.STR_LIST, required=False),
            Param("max_conversations", Kind.INT, required=False),
        ),
        _op("agent_ready", _AGENT),
        _op("agent_not_ready", _AGENT),
        _op("agent_logout", _AGENT),
        _op("agent_join", _AGENT, _CONV, Param("role", _S, required=False)),
        _op("agent_message", _AGENT, _CONV, Param("text", _S)),
        _op("hold", _AGENT, _CONV, Param("seconds", Kind.NUMBER)),
        _op("resume", _AGENT, _CONV),
        _op("agent_leave", _AGENT, _CONV, Param("reason", _S, required=False)),
        _op(
            "apply_wrap_up",
            _AGENT,
            _CONV,
            Param("codes", Kind.STR_LIST),
            Param("note", _S, required=False),
        ),
        _op("set_data", _CONV, Param("key", _S), Param("value", Kind.SCALAR, nullable=True)),
        _op("end_conversation", _CONV, Param("by", _S, required=False)),
        _op("add_activity", _CONV, Param("name", _S), Param("data", Kind.MAP)),
        _op("conversation", _CONV, result="snapshot map"),
        _op(
            "events",
            _CONV,
            Param("after_seq", Kind.INT, required=False),
            result="array of event maps",
        ),
        _op("history", Param("room_id", _S), result="array of snapshot maps, each with events"),
        _op("status", result="{conversations, agents, queues}"),
        _op(
            "subscribe_session",
            _SESSION,
            Param("after_seq", Kind.INT, required=False),
            result="the conversation's current seq",
        ),
        _op("subscribe_agent", _AGENT),
        _op("unsubscribe", Param("subscription", _S)),
    )
}

#: Answered by the server itself, never by the engine.
SERVER_OPS: Final = frozenset({"auth", "ping"})
#: Executed by the worker with the connection's subscription table.
SUBSCRIPTION_OPS: Final = frozenset({"subscribe_session", "subscribe_agent", "unsubscribe"})
#: Public Gateway members that are not operations, and why.
NOT_OFFERED: Final[Mapping[str, str]] = {
    "advance": "the virtual clock of an embedded engine",
    "close": "the gateway's own connection to the engine",
    "drain": "embedded engines only",
    "pushed": "pushed events come as push frames",
    "pipeline": "a connection pipelines by sending requests without waiting for answers",
    "connect": "a constructor",
    "embedded": "a constructor",
}

_MAX_DEPTH = 64


def _string_keys(value: Any, depth: int = 0) -> bool:
    """Every map inside ``value`` has string keys (bounded depth)."""
    if depth > _MAX_DEPTH:
        return False
    if isinstance(value, dict):
        return all(isinstance(k, str) and _string_keys(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return all(_string_keys(v, depth + 1) for v in value)
    return True


def _accepts(kind: Kind, value: Any) -> bool:
    if kind is Kind.STR:
        return isinstance(value, str)
    if kind is Kind.INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is Kind.NUMBER:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is Kind.MAP:
        return isinstance(value, dict) and _string_keys(value)
    if kind is Kind.STR_LIST:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return value is None or isinstance(value, str | int | float | bool)


def check_args(
    spec: OpSpec, args: Mapping[Any, Any], request_id: int | str | None
) -> dict[str, Any]:
    """``args`` checked against ``spec``: every name known, every required one present, each
    value of its type. Raises ProtocolError(bad_argument) naming the first problem."""

    def refuse(problem: str) -> ProtocolError:
        return ProtocolError("bad_argument", f"{spec.name}: {problem}", request_id)

    names = ", ".join(p.name for p in spec.params) or "none"
    for key in args:
        if not isinstance(key, str):
            raise refuse(f"argument names must be strings, got {msgpack_type_name(key)}")
        if spec.param(key) is None:
            raise refuse(f"unknown argument {key[:64]!r} (arguments: {names})")
    checked: dict[str, Any] = {}
    for param in spec.params:
        if param.name not in args:
            if param.required:
                raise refuse(f"missing argument {param.name!r} (arguments: {names})")
            continue
        value = args[param.name]
        if value is None and param.nullable:
            checked[param.name] = None
            continue
        if not _accepts(param.kind, value):
            nil = " or nil" if param.nullable and param.kind is not Kind.SCALAR else ""
            raise refuse(
                f"argument {param.name!r} must be {param.kind.value}{nil}, got {msgpack_type_name(value)}"
            )
        checked[param.name] = value
    return checked


def error_type(error: GatewayError) -> str:
    """The protocol error type of a Gateway refusal."""
    if isinstance(error, UnknownIdError):
        return "unknown_id"
    if isinstance(error, IllegalTransitionError):
        return "illegal_transition"
    if isinstance(error, BadArgumentError):
        return "bad_argument"
    if isinstance(error, UnavailableError):
        return "unavailable"
    return "internal"


def plain_result(value: Any) -> Any:
    """A Gateway result as plain msgpack data (a SessionRef becomes a map)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value
