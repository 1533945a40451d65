"""The web gateway's errors and their HTTP statuses, mapped in one place.

Every error a request can meet has a *type*: the engine's :class:`~domain.errors.ErrorKind`
value for the ``GatewayError`` tree (as on the TCP protocol), or one of the web gateway's own
(:class:`WebError`). :data:`STATUS` gives each its HTTP status; :func:`error_body` the JSON
body ``{"error": {"type", "message"}}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from domain.errors import CxError, ErrorKind

__all__ = ["STATUS", "WebError", "error_body", "status_of", "type_of"]


class WebError(CxError):
    """A request the web gateway itself refuses; ``type`` is a key of :data:`STATUS` (the
    kind, for the engine's error tree, is ``bad_argument``: what the caller sent)."""

    kind = ErrorKind.BAD_ARGUMENT

    def __init__(self, type_: str, message: str) -> None:
        super().__init__(message)
        self.type = type_


#: HTTP status by error type.
STATUS: Final[Mapping[str, int]] = {
    "bad_json": 400,
    "body_too_large": 400,
    ErrorKind.BAD_ARGUMENT.value: 400,
    ErrorKind.AUTH.value: 401,
    "forbidden": 403,
    ErrorKind.UNKNOWN_OP.value: 404,
    ErrorKind.UNKNOWN_ID.value: 404,
    ErrorKind.ILLEGAL_TRANSITION.value: 409,
    ErrorKind.INTERNAL.value: 500,
    ErrorKind.UNAVAILABLE.value: 503,
}


def type_of(error: BaseException) -> str:
    if isinstance(error, WebError):
        return error.type
    if isinstance(error, CxError) and error.kind.value in STATUS:
        return error.kind.value
    return ErrorKind.INTERNAL.value


def status_of(error: BaseException) -> int:
    return STATUS[type_of(error)]


def error_body(error: BaseException) -> dict[str, Any]:
    message = str(error) if type_of(error) != ErrorKind.INTERNAL.value else "internal error (logged)"
    return {"error": {"type": type_of(error), "message": message}}
