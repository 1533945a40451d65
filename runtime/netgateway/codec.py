"""Frames of the network gateway protocol (docs/PROTOCOL.md).

A frame is a 4-byte big-endian unsigned length followed by that many bytes of one msgpack
value. Requests are maps ``{op, args, id}``; answers are ``{id, ok: true, result}`` or
``{id, ok: false, error: {type, message}}``; pushed events are ``{push, conversation_id, event}``;
a connection closed for its bounds last gets ``{disconnect, message, resume}``.

Decoding is strict: UTF-8 strings (``raw=False``), string (or binary) map keys only
(``strict_map_key=True``), every length bounded by the frame's size, no ext types (msgpack's
timestamp included). Anything else is a :class:`ProtocolError` naming the problem.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Final

import msgpack

from domain.errors import WIRE_KINDS, CxError, ErrorKind

__all__ = [
    "DISCONNECT_REASONS",
    "ERROR_TYPES",
    "HEADER",
    "MAX_ID_CHARS",
    "ProtocolError",
    "PushFrame",
    "Request",
    "answer",
    "decode",
    "disconnect",
    "encode",
    "failure",
    "parse_request",
    "push",
]

#: The length prefix of every frame.
HEADER: Final = struct.Struct(">I")
#: The largest body a length prefix can announce.
MAX_BODY: Final = 2**32 - 1
#: Request ids are integers (any msgpack int) or strings of at most this many characters.
MAX_ID_CHARS: Final = 128
#: Every ``error.type`` an answer may carry (the values of these kinds).
ERROR_TYPES: Final = WIRE_KINDS

#: Every ``disconnect`` reason of the last frame of a connection closed for its bounds.
DISCONNECT_REASONS: Final = ("slow_reader", "gateway_full")

RequestId = int | str | None


class ProtocolError(CxError):
    """A frame or request the gateway refuses by its own checks. They refuse with several
    kinds (``bad_frame``, ``bad_argument``, ``auth``, ...): ``kind``, one of
    :data:`ERROR_TYPES`, is given per refusal."""

    def __init__(self, kind: ErrorKind, message: str, request_id: RequestId = None) -> None:
        assert kind in ERROR_TYPES, kind
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.request_id = request_id


@dataclass(frozen=True, slots=True)
class Request:
    id: int | str
    op: str
    args: dict[str, Any]


def _no_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"msgpack ext type {code} is not accepted")


def decode(body: bytes) -> Any:
    """The msgpack value of one frame body, decoded strictly; ProtocolError(bad_msgpack)."""
    size = len(body)
    try:
        return msgpack.unpackb(
            body,
            raw=False,
            strict_map_key=True,
            use_list=True,
            max_str_len=size,
            max_bin_len=size,
            max_array_len=size,
            max_map_len=size // 2,
            max_ext_len=0,
            ext_hook=_no_ext,
        )
    except msgpack.ExtraData:
        problem = "extra bytes after the msgpack value (a frame holds exactly one value)"
    except msgpack.StackError:
        problem = "msgpack value nested too deeply"
    except msgpack.FormatError:
        problem = "invalid msgpack type byte"
    except UnicodeDecodeError:
        problem = "a msgpack string is not valid UTF-8"
    except (ValueError, TypeError) as error:
        text = str(error) or type(error).__name__
        if "incomplete input" in text:
            problem = "truncated msgpack value (the frame ends inside it)"
        else:
            problem = f"not valid msgpack: {text}"
    raise ProtocolError(ErrorKind.BAD_MSGPACK, f"{problem}; frame of {size} bytes")


def encode(value: Any) -> bytes:
    """One frame: the length prefix and ``value`` packed (TypeError/ValueError if not plain)."""
    body: bytes = msgpack.packb(value, use_bin_type=True)
    if len(body) > MAX_BODY:
        raise ValueError(f"a frame body of {len(body)} bytes cannot be length-prefixed")
    return HEADER.pack(len(body)) + body


def answer(request_id: RequestId, result: Any) -> bytes:
    return encode({"id": request_id, "ok": True, "result": result})


def failure(request_id: RequestId, kind: ErrorKind, message: str) -> bytes:
    """An error answer: ``error.type`` is the kind's value (docs/PROTOCOL.md, "Errors")."""
    assert kind in ERROR_TYPES, kind
    error = {"type": kind.value, "message": message}
    return encode({"id": request_id, "ok": False, "error": error})


class PushFrame(bytes):
    """A pushed event's frame; it also says which subscription, conversation and seq it
    carries, so that the server knows each connection's resume point without decoding it."""

    subscription: str
    conversation_id: str
    seq: int | None


def push(subscription: str, conversation_id: str, event: Any, final: bool = False) -> PushFrame:
    body = {"push": subscription, "conversation_id": conversation_id, "event": event}
    if final:  # the subscription's last event of this conversation (it is CLOSED)
        body["final"] = True
    frame = PushFrame(encode(body))
    frame.subscription = subscription
    frame.conversation_id = conversation_id
    seq = event.get("seq") if isinstance(event, dict) else None
    frame.seq = seq if isinstance(seq, int) and not isinstance(seq, bool) else None
    return frame


def disconnect(reason: str, message: str, resume: list[dict[str, Any]]) -> bytes:
    """The last frame of a connection the gateway closes because of its bounds: ``reason``
    (one of :data:`DISCONNECT_REASONS`), what happened, and where each subscription resumes
    (the last seq sent per subscription and conversation)."""
    assert reason in DISCONNECT_REASONS, reason
    return encode({"disconnect": reason, "message": message, "resume": resume})


def msgpack_type_name(value: Any) -> str:
    """A decoded value's type as the protocol speaks of it (for error messages)."""
    names = {
        type(None): "nil",
        bool: "a boolean",
        int: "an integer",
        float: "a float",
        str: "a string",
        bytes: "binary",
        list: "an array",
        dict: "a map",
    }
    return names.get(type(value), type(value).__name__)


def request_id_of(value: Any) -> RequestId:
    """The frame's ``id`` if it is a usable one (to echo in an error), else None."""
    if isinstance(value, dict):
        candidate = value.get("id")
        if _valid_id(candidate):
            return candidate
    return None


def _valid_id(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, str) and 0 < len(value) <= MAX_ID_CHARS)


def parse_request(value: Any) -> Request:
    """A decoded frame as a request ``{op, args, id}``, or ProtocolError(bad_frame)."""
    if not isinstance(value, dict):
        raise ProtocolError(
            ErrorKind.BAD_FRAME,
            f"a request must be a map {{op, args, id}}, got {msgpack_type_name(value)}",
        )
    request_id = request_id_of(value)
    for key in value:
        if key not in ("op", "args", "id"):
            shown = repr(key)[:80]
            raise ProtocolError(
                ErrorKind.BAD_FRAME,
                f"unknown field {shown} in the request (fields: op, args, id)",
                request_id,
            )
    if "id" not in value:
        raise ProtocolError(ErrorKind.BAD_FRAME, "the request has no id", None)
    if request_id is None:
        raise ProtocolError(
            ErrorKind.BAD_FRAME,
            f"id must be an integer or a string of 1 to {MAX_ID_CHARS} characters,"
            f" got {msgpack_type_name(value['id'])}",
        )
    op = value.get("op")
    if not isinstance(op, str):
        what = "no op" if "op" not in value else f"op is {msgpack_type_name(op)}, not a string"
        raise ProtocolError(ErrorKind.BAD_FRAME, f"the request has {what}", request_id)
    args = value.get("args", {})
    if not isinstance(args, dict):
        raise ProtocolError(
            ErrorKind.BAD_ARGUMENT,
            f"args of {op[:64]!r} must be a map, got {msgpack_type_name(args)}",
            request_id,
        )
    return Request(request_id, op, args)
