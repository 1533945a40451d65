"""Request bodies: strict JSON, bounded in size, checked against the operation's arguments.

A body is read only up to ``max_bytes`` (a ``Content-Length`` above it is refused before
anything is read); it must be UTF-8 JSON holding one object, with no key twice, no ``NaN`` or
``Infinity``, nested at most 32 deep. Every refusal is a :class:`WebError` (HTTP 400) whose
message names what was wrong. The object's members are then the operation's arguments, checked
as the TCP protocol checks them (``runtime.netgateway.ops.check_args``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, Final

from runtime.web.errors import WebError

__all__ = ["MAX_DEPTH", "decode_json", "read_body"]

MAX_DEPTH: Final = 32


def _bad(message: str) -> WebError:
    return WebError("bad_json", message)


async def read_body(
    chunks: AsyncIterator[bytes], declared: str | None, max_bytes: int
) -> bytes:
    """The body, refused (``body_too_large``) as soon as it is known to exceed ``max_bytes``."""
    if declared is not None:
        if not declared.isdigit():
            raise _bad(f"Content-Length must be a number of bytes, got {declared[:32]!r}")
        if int(declared) > max_bytes:
            raise WebError(
                "body_too_large",
                f"the body is {int(declared)} bytes; at most {max_bytes} are accepted",
            )
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > max_bytes:
            raise WebError(
                "body_too_large", f"the body is over {max_bytes} bytes, the most accepted"
            )
    return bytes(body)


def _no_twice(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _bad(f"key {key[:64]!r} appears twice in one object")
        found[key] = value
    return found


def _no_constant(name: str) -> Any:
    raise _bad(f"{name} is not JSON")


def _depth(value: Any) -> int:
    """How deep ``value`` nests (iterative: a deep document cannot exhaust the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level > MAX_DEPTH:
                return level
            stack.extend((v, level + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def decode_json(body: bytes) -> dict[str, Any]:
    """The JSON object in ``body`` (an empty body is an empty object)."""
    if not body.strip():
        return {}
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _bad(f"the body is not UTF-8 (byte {error.start})") from None
    try:
        value = json.loads(text, object_pairs_hook=_no_twice, parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        raise _bad(f"the body is not JSON: {error.msg} at line {error.lineno} column {error.colno}") from None
    except RecursionError:
        raise _bad(f"the body nests more than {MAX_DEPTH} levels deep") from None
    if not isinstance(value, dict):
        raise _bad(f"the body must be a JSON object of arguments, got a {type(value).__name__}")
    if _depth(value) > MAX_DEPTH:
        raise _bad(f"the body nests more than {MAX_DEPTH} levels deep")
    return value
