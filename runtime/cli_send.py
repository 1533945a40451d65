"""``cx send``: one Gateway operation from the command line, its result printed as JSON.

The operations are the Gateway's public methods (less those that belong to a connection that
stays open); their arguments are checked against the method's signature before connecting.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from typing import Any

from domain.errors import CxError, ErrorKind
from runtime import control
from runtime.gateway import Gateway
from runtime.netgateway.ops import OPS as NETWORK_OPS
from runtime.netgateway.ops import SERVER_OPS, SUBSCRIPTION_OPS

__all__ = ["OPS", "UsageError", "bind_op", "ops_help", "send_command"]

class UsageError(CxError):
    """A command line the command cannot use (beyond what argparse checks)."""

    kind = ErrorKind.BAD_ARGUMENT


def _gateway_ops() -> dict[str, inspect.Signature]:
    """``cx send`` operations, with their Gateway method's signatures: the network gateway's
    operations except those the server answers itself and push subscriptions, which belong to
    a connection that stays open (``cx gateway``): a one-shot ``cx send`` would leave the
    engine pushing to an endpoint that is gone."""
    return {
        name: inspect.signature(getattr(Gateway, name))
        for name in sorted(NETWORK_OPS)
        if name not in SERVER_OPS | SUBSCRIPTION_OPS
    }


OPS = _gateway_ops()


def send_command(config: str, op: str, raw: list[str], json_args: str | None) -> int:
    call = bind_op(op, raw, json_args)
    with control.connect(config) as gw:
        result = getattr(gw, op)(*call.args[1:], **call.kwargs)
    print(json.dumps(_plain(result), indent=2, ensure_ascii=False))
    return 0


def bind_op(op: str, raw: list[str], json_args: str | None) -> inspect.BoundArguments:
    """Check the arguments of ``op`` before connecting (the gateway's ``self`` left as None).

    Positional arguments are strings where the parameter is one, else JSON values when they
    parse as JSON (numbers, true, false, null, lists, objects) and strings otherwise.
    """
    signature = OPS[op]
    parameters = [
        parameter
        for parameter in list(signature.parameters.values())[1:]
        if parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    ]
    if len(raw) > len(parameters):
        raise UsageError(f"{op} takes at most {len(parameters)} arguments: {_op_usage(op)}")
    args = [_convert(parameter, text) for parameter, text in zip(parameters, raw, strict=False)]
    kwargs: Any = {}
    if json_args is not None:
        try:
            kwargs = json.loads(json_args)
        except ValueError as error:
            raise UsageError(f"--json-args is not JSON: {error}") from None
        if not isinstance(kwargs, dict):
            raise UsageError("--json-args must be a JSON object of arguments by name")
    try:
        return signature.bind(None, *args, **kwargs)
    except TypeError as error:
        raise UsageError(f"{op}: {error}; usage: {_op_usage(op)}") from None


def _convert(parameter: inspect.Parameter, text: str) -> Any:
    if parameter.annotation in ("str", "str | None"):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def _op_usage(op: str) -> str:
    words = [op]
    for parameter in list(OPS[op].parameters.values())[1:]:
        if parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD:
            name = parameter.name.upper()
            words.append(name if parameter.default is inspect.Parameter.empty else f"[{name}]")
        elif parameter.kind is inspect.Parameter.KEYWORD_ONLY:
            words.append(f"[{parameter.name}]")
    return " ".join(words)


def ops_help() -> str:
    lines = [
        "operations (arguments in [brackets] are optional; lowercase ones go in --json-args):",
        *(f"  {_op_usage(op)}" for op in sorted(OPS)),
        "",
        "The result is printed as JSON. Examples:",
        "  cx send start_session cust-1 WEB visitor-1",
        '  cx send customer_message CS_ID "hello"',
        "  cx send agent_login alice --json-args '{\"max_conversations\": 2}'",
        "  cx send conversation CONV_ID",
        "  cx send transfer alice CONV_ID --json-args '{\"queue\": \"billing\", \"note\": \"refund\"}'",
        "  cx send create_room TEAM '[\"alice\", \"bob\"]'",
    ]
    return "\n".join(lines)
