"""Checks of a gateway call's arguments: each refusal is a BadArgumentError naming the value."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any, TypeVar

import msgpack

from domain.enums import Channel, EndedBy, Role, SessionEndReason, UnsubscribeReason
from domain.limits import MAX_NAME, MAX_PAYLOAD_BYTES, MAX_TEXT
from runtime.gateway_types import BadArgumentError

#: The roles an agent may join a conversation in.
JOIN_ROLES = frozenset({Role.PRIMARY, Role.ASSISTANT, Role.SILENT_MONITOR, Role.WHISPER})


@functools.cache  # a handful of class names, on every call's path
def snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


#: Control characters (C0, DEL, C1): never part of an id or a name, and U+0000 cannot be
#: stored in PostgreSQL's text columns at all.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def text(what: str, value: object, *, limit: int = MAX_NAME) -> None:
    """An id or a name: a non-empty string of at most ``limit`` characters, none of them a
    control character."""
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise BadArgumentError(
            f"{what} must be a non-empty string of at most {limit} characters, got {value!r:.80}"
        )
    if _CONTROL.search(value):
        raise BadArgumentError(f"{what} must not contain control characters, got {value!r:.80}")


def message_text(value: object) -> None:
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise BadArgumentError(f"text must be a string of at most {MAX_TEXT} characters")


def after_seq(what: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadArgumentError(f"{what}: after_seq must be an int >= 0")


_E = TypeVar("_E", Channel, SessionEndReason, Role, UnsubscribeReason, EndedBy)


def enum(kind: type[_E], what: str, value: object, *, allowed: frozenset[Any] | None = None) -> _E:
    options = allowed if allowed is not None else frozenset(kind)
    try:
        member = kind(str(value).upper()) if isinstance(value, str) else None
    except ValueError:
        member = None
    if member is None or member not in options:
        names = ", ".join(sorted(str(o) for o in options))
        raise BadArgumentError(f"{what} must be one of {names}, got {value!r:.80}")
    return member


def payload(what: str, data: Mapping[str, Any] | None) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, Mapping) or not all(isinstance(k, str) for k in data):
        raise BadArgumentError(f"{what} must be a mapping with string keys")
    try:
        packed = msgpack.packb(dict(data), use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as error:
        raise BadArgumentError(f"{what} holds a value that is not plain data: {error}") from None
    if len(packed) > MAX_PAYLOAD_BYTES:
        raise BadArgumentError(f"{what} is larger than {MAX_PAYLOAD_BYTES} bytes")
    unpacked: dict[str, Any] = msgpack.unpackb(packed, raw=False)  # a plain copy, detached
    return unpacked
