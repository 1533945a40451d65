"""The operations of the network gateway: the public :class:`~runtime.gateway.Gateway` methods
(all but ``advance``, which is for the embedded virtual clock, and the connection's own
``close``, ``pushed`` and ``drain``), plus ``auth`` and ``ping``.

The table is read off the Gateway: each operation's arguments are its method's parameters, in
order, required where the parameter has no default, each of the msgpack type its annotation
maps to in ``WIRE_TYPES`` (a parameter of a type not there stops the import, naming it).
Results are described in docs/PROTOCOL.md. Arguments are checked here
before the request reaches the engine: an unknown or missing argument, or a value of the wrong
type, is a ``bad_argument`` error naming it. Ranges, lengths and enum values are the Gateway's
own checks (also ``bad_argument``).
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from domain.errors import ErrorKind
from runtime.gateway import Gateway
from runtime.netgateway.codec import ProtocolError, msgpack_type_name

__all__ = [
    "NOT_OFFERED",
    "OPS",
    "SERVER_OPS",
    "SUBSCRIPTION_OPS",
    "WIRE_TYPES",
    "Kind",
    "OpSpec",
    "Param",
    "check_args",
    "op_spec_of",
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

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


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
#: The msgpack type (and whether nil is accepted) of each parameter type the Gateway's
#: operations declare, by the annotation as written.
WIRE_TYPES: Final[Mapping[str, tuple[Kind, bool]]] = {
    "str": (Kind.STR, False),
    "str | None": (Kind.STR, True),
    "int": (Kind.INT, False),
    "float": (Kind.NUMBER, False),
    "Mapping[str, Any]": (Kind.MAP, False),
    "Mapping[str, Any] | None": (Kind.MAP, True),
    "Iterable[str]": (Kind.STR_LIST, False),
    "str | int | float | bool | None": (Kind.SCALAR, True),
}


def op_spec_of(name: str, method: Any) -> OpSpec:
    """The operation ``name`` of a Gateway method: its parameters after ``self``."""
    params = []
    for parameter in list(inspect.signature(method).parameters.values())[1:]:  # after self
        annotation = parameter.annotation
        written = (
            annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)
        )
        wire = WIRE_TYPES.get(written)
        if wire is None:
            raise TypeError(
                f"Gateway.{name}: parameter {parameter.name!r} is a {written!r},"
                " which has no msgpack type in runtime.netgateway.ops.WIRE_TYPES"
            )
        required = parameter.default is inspect.Parameter.empty
        params.append(Param(parameter.name, wire[0], required, wire[1]))
    return OpSpec(name, tuple(params))


def _ops() -> dict[str, OpSpec]:
    """``auth`` and ``ping``, then every public Gateway method not in NOT_OFFERED."""
    ops = [OpSpec("auth", (Param("token", Kind.STR),)), OpSpec("ping", ())]
    ops += [
        op_spec_of(name, method)
        for name, method in inspect.getmembers(Gateway, inspect.isfunction)
        if not name.startswith("_") and name not in NOT_OFFERED
    ]
    return {spec.name: spec for spec in ops}


OPS: Final[dict[str, OpSpec]] = _ops()

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
        return ProtocolError(ErrorKind.BAD_ARGUMENT, f"{spec.name}: {problem}", request_id)

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


def plain_result(value: Any) -> Any:
    """A Gateway result as plain msgpack data (a SessionRef becomes a map)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value
