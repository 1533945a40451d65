"""Fuzzing the network gateway's frame decoder.

Random and malformed frame bodies go through what the server does with a body (``decode``, then
``parse_request`` and ``check_args``): each only ever returns a value or raises ``ProtocolError``
of a documented type with a bounded message, within a time bound (``bench.fuzz``'s oracle). A
live server is then fed random byte streams: it never fails, answers only with protocol frames,
closes a connection that keeps sending garbage, and keeps serving everyone else.

The long run is ``python -m bench.fuzz`` (docs/RELIABILITY.md).
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.fuzz import check_frame_body
from domain.errors import ErrorKind
from runtime.netgateway import ERROR_TYPES, Limits, NetGateway, serve
from runtime.netgateway.codec import ProtocolError, decode, encode
from tests.conftest import MakeGateway
from tests.fuzz_support import EXAMPLES, FUZZ, STRATEGIES, held

TOKEN = "fuzz-token-0123456789abcdef"


@FUZZ
@given(STRATEGIES["codec"])
def test_a_frame_body_decodes_or_is_a_documented_protocol_error(body: bytes) -> None:
    assert held(lambda: check_frame_body(body)) in (*ERROR_TYPES, "request")


@FUZZ
@given(STRATEGIES["values"])
def test_what_the_gateway_encodes_it_decodes_to_the_same(value: Any) -> None:
    frame = encode(value)
    (length,) = struct.unpack(">I", frame[:4])
    assert length == len(frame) - 4
    decoded = decode(frame[4:])
    # NaN is not equal to itself: compare the encodings.
    assert msgpack.packb(decoded, use_bin_type=True) == frame[4:]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\xdd\xff\xff\xff\xff",  # an array of 4 G items in 5 bytes
        b"\xdf\xff\xff\xff\xff",
        b"\xdb\xff\xff\xff\xff" + b"x" * 10,
        b"\x91" * 100_000,  # nested 100,000 deep
        b"\x81\xa1a" * 50_000,
        b"\xd6\xff\x00\x00\x00\x00",  # msgpack timestamp
        b"\xc7\x00\x05",  # an empty ext
    ],
    ids=["empty", "array32", "map32", "str32", "deep-array", "deep-map", "timestamp", "ext0"],
)
def test_hostile_bodies_are_bad_msgpack_at_once(body: bytes) -> None:
    started = time.monotonic()
    with pytest.raises(ProtocolError) as raised:
        decode(body)
    assert raised.value.kind is ErrorKind.BAD_MSGPACK
    assert time.monotonic() - started < 1.0


# ------------------------------------------------------------------------------ a live server


@pytest.fixture
def fuzz_server(make_gateway: MakeGateway) -> Iterator[NetGateway]:
    server = serve(
        lambda: make_gateway(seed=3),
        "127.0.0.1:0",
        TOKEN,
        4096,
        limits=Limits(consecutive_errors=16, frame_timeout_s=0.5, auth_timeout_s=2.0),
    )
    yield server
    server.close()


def _frames(data: bytes) -> Iterator[dict[str, Any]]:
    while len(data) >= 4:
        (length,) = struct.unpack(">I", data[:4])
        if len(data) < 4 + length:
            return
        value = msgpack.unpackb(data[4 : 4 + length], raw=False)
        assert isinstance(value, dict)
        yield value
        data = data[4 + length :]


def _exchange(port: int, chunks: list[bytes], *, authenticate: bool) -> list[dict[str, Any]]:
    """Send ``chunks`` (after auth if asked), half-close, read every answer until the server
    closes or goes quiet; the answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=5.0) as sock:
        if authenticate:
            sock.sendall(encode({"op": "auth", "args": {"token": TOKEN}, "id": 0}))
        try:
            for chunk in chunks:
                sock.sendall(chunk)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # closed by the server while we were sending: allowed
        received = b""
        sock.settimeout(3.0)
        while True:
            try:
                data = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not data:
                break
            received += data
    return list(_frames(received))


garbage_chunks = st.lists(
    st.one_of(
        st.binary(max_size=64),
        STRATEGIES["codec"].map(lambda body: struct.pack(">I", len(body)) + body),
    ),
    min_size=1,
    max_size=24,
)


@settings(
    FUZZ,
    max_examples=max(EXAMPLES // 10, 20),
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,  # one server for every example, on purpose
    ],
)
@given(chunks=garbage_chunks, authenticate=st.booleans())
def test_a_live_server_answers_garbage_with_protocol_errors_and_keeps_serving(
    fuzz_server: NetGateway, chunks: list[bytes], authenticate: bool
) -> None:
    answers = _exchange(fuzz_server.port, chunks, authenticate=authenticate)
    failures = 0
    for answer in answers:
        assert set(answer) in ({"id", "ok", "result"}, {"id", "ok", "error"}), answer
        if answer["ok"] is False:
            failures += 1
            assert answer["error"]["type"] in ERROR_TYPES
            assert len(answer["error"]["message"]) <= 600
    if not authenticate:
        # Nothing but auth errors before authenticating, and at most three of them.
        assert all(a["error"]["type"] == "auth" for a in answers if not a["ok"]), answers
        assert failures <= 3
    # Everyone else is still served.
    with socket.create_connection(("127.0.0.1", fuzz_server.port), timeout=5.0) as sock:
        sock.sendall(encode({"op": "auth", "args": {"token": TOKEN}, "id": 1}))
        sock.sendall(encode({"op": "ping", "id": 2}))
        data = b""
        while len(list(_frames(data))) < 2:
            data += sock.recv(65536)
        assert list(_frames(data))[1] == {"id": 2, "ok": True, "result": "pong"}
    deadline = time.monotonic() + 5.0
    while fuzz_server.connections > 0:  # every connection is let go of
        assert time.monotonic() < deadline, f"{fuzz_server.connections} connections stay open"
        time.sleep(0.01)


def test_a_stream_of_garbage_frames_is_closed_after_16_errors(fuzz_server: NetGateway) -> None:
    bodies = [b"\xc1", b"\x93\x01\x02", msgpack.packb({"op": "nope", "id": 1}), b"\xa3abc"] * 25
    answers = _exchange(
        fuzz_server.port, [struct.pack(">I", len(b)) + b for b in bodies], authenticate=True
    )
    errors = [a for a in answers if a["ok"] is False]
    assert len(errors) == 16, errors
    assert "closing after 16 consecutive errors" in errors[-1]["error"]["message"]
    assert fuzz_server.stats["closed_for_errors"] >= 1
