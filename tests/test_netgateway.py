"""The network gateway (docs/PROTOCOL.md) from the outside: a raw TCP client written with only
``socket``, ``struct`` and ``msgpack`` against ``serve(...)`` in front of an embedded engine.

Every read has a socket timeout and every wait a deadline; nothing sleeps.
"""

from __future__ import annotations

import inspect
import itertools
import os
import re
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import msgpack
import pytest

from domain.errors import error_for
from infra.config import ConfigError
from runtime import procs
from runtime.gateway import (
    BadArgumentError,
    Gateway,
    GatewayError,
    IllegalTransitionError,
    UnavailableError,
    UnknownIdError,
)
from runtime.netgateway import OPS, Limits, NetGateway, run_gateway, serve
from runtime.netgateway.ops import NOT_OFFERED, SERVER_OPS, Kind
from tests.conftest import MakeGateway

TOKEN = "test-token-0123456789abcdef"
MAX_FRAME = 64 * 1024
ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------ raw client


class Closed(Exception):
    """The server closed the connection."""


def frame(value: Any) -> bytes:
    return body_frame(msgpack.packb(value, use_bin_type=True))


def body_frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


class RawClient:
    """A client of the protocol with nothing of the project in it."""

    def __init__(self, port: int, *, timeout: float = 5.0, rcvbuf: int | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.pushed: list[dict[str, Any]] = []
        self._ids = itertools.count(1)

    def close(self) -> None:
        self.sock.close()

    def send_bytes(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, op: str, args: Any = None) -> int:
        request_id = next(self._ids)
        message: dict[str, Any] = {"op": op, "id": request_id}
        if args is not None:
            message["args"] = args
        self.send_bytes(frame(message))
        return request_id

    def _exact(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            try:
                chunk = self.sock.recv(size - len(data))
            except ConnectionResetError:
                raise Closed from None
            if not chunk:
                raise Closed
            data += chunk
        return data

    def frame(self) -> dict[str, Any]:
        (length,) = struct.unpack(">I", self._exact(4))
        value = msgpack.unpackb(self._exact(length), raw=False)
        assert isinstance(value, dict)
        return value

    def reply(self) -> dict[str, Any]:
        """The next frame that is not a pushed event (those are kept in ``pushed``)."""
        while True:
            value = self.frame()
            if "push" in value:
                self.pushed.append(value)
            else:
                return value

    def answer(self, request_id: int) -> dict[str, Any]:
        value = self.reply()
        assert value["id"] == request_id, value
        return value

    def call(self, op: str, **args: Any) -> Any:
        value = self.answer(self.request(op, args))
        assert value["ok"] is True, value
        assert set(value) == {"id", "ok", "result"}
        return value["result"]

    def refused(self, op: str, args: Any) -> dict[str, Any]:
        value = self.answer(self.request(op, args))
        assert value["ok"] is False, value
        assert set(value) == {"id", "ok", "error"} and set(value["error"]) == {"type", "message"}
        return cast(dict[str, Any], value["error"])

    def authenticate(self, token: str = TOKEN) -> dict[str, Any]:
        return cast(dict[str, Any], self.call("auth", token=token))

    def pushes_until(self, seq: int) -> list[dict[str, Any]]:
        """Read frames until a pushed event with ``seq`` has arrived; all pushed so far."""
        while not any(p["event"]["seq"] >= seq for p in self.pushed):
            value = self.frame()
            assert "push" in value, value
            self.pushed.append(value)
        return self.pushed

    def wait_closed(self) -> None:
        """Read (and drop) whatever comes until the server closes; fails on the timeout."""
        while True:
            try:
                if not self.sock.recv(65536):
                    return
            except ConnectionResetError:
                return


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture
def start_server(make_gateway: MakeGateway) -> Iterator[Callable[..., NetGateway]]:
    """``start_server(limits=..., **config)``: a network gateway in front of an embedded engine
    built (and used, and closed) on the server's worker thread: the embedded engine's SQLite
    archive belongs to the thread that made it."""
    servers: list[NetGateway] = []

    def start(*, limits: Limits | None = None, **config: Any) -> NetGateway:
        server = serve(
            lambda: make_gateway(seed=1, **config),
            "127.0.0.1:0",
            TOKEN,
            MAX_FRAME,
            limits=limits,
        )
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def server(start_server: Callable[..., NetGateway]) -> NetGateway:
    return start_server()


@pytest.fixture
def client(server: NetGateway) -> Iterator[RawClient]:
    connection = RawClient(server.port)
    connection.authenticate()
    yield connection
    connection.close()


# ------------------------------------------------------------------------------ authentication


def test_auth_is_required_and_failures_are_bounded(server: NetGateway) -> None:
    c = RawClient(server.port)
    # An operation before authenticating: only an auth error.
    error = c.refused("status", {})
    assert error["type"] == "auth" and "authenticate first" in error["message"]
    # A wrong token.
    error = c.refused("auth", {"token": "not-the-token"})
    assert error == {"type": "auth", "message": "wrong token"}
    # No token: the third failure closes the connection.
    error = c.refused("auth", {})
    assert error["type"] == "auth" and "token" in error["message"]
    assert "closing" in error["message"]
    c.wait_closed()
    c.close()

    good = RawClient(server.port)
    assert good.authenticate() == {"protocol": 1, "max_frame_bytes": MAX_FRAME}
    assert good.call("ping") == "pong"
    assert good.call("status")["conversations"] == {}
    good.close()


def test_garbage_before_auth_is_an_auth_error(server: NetGateway) -> None:
    c = RawClient(server.port)
    c.send_bytes(body_frame(b"\xc1"))  # not msgpack
    assert c.reply()["error"]["type"] == "auth"
    c.send_bytes(frame(["not", "a", "map"]))
    assert c.reply()["error"]["type"] == "auth"
    assert c.authenticate()["protocol"] == 1  # two failures: still allowed to try
    c.close()


def test_big_frame_before_auth_closes_without_reading_it(server: NetGateway) -> None:
    c = RawClient(server.port)
    c.send_bytes(struct.pack(">I", 100_000))  # the body never comes
    error = c.reply()["error"]
    assert error["type"] == "auth" and "100000 bytes" in error["message"]
    c.wait_closed()
    c.close()


def test_a_connection_must_authenticate_in_time(start_server: Callable[..., NetGateway]) -> None:
    server = start_server(limits=Limits(auth_timeout_s=0.2))
    c = RawClient(server.port)
    error = c.reply()["error"]
    assert error["type"] == "auth" and "within 0.2 s" in error["message"]
    c.wait_closed()
    c.close()


def test_the_token_can_be_checked_again(client: RawClient) -> None:
    assert client.call("auth", token=TOKEN)["protocol"] == 1
    assert client.refused("auth", {"token": "wrong"})["type"] == "auth"
    assert client.call("ping") == "pong"  # still authenticated


# ------------------------------------------------------------------------------ a conversation


def test_a_conversation_end_to_end(server: NetGateway, client: RawClient) -> None:
    ref = client.call("start_session", customer_id="cust-1", channel="WEB", identifier="vis-1")
    assert set(ref) == {"conversation_id", "channel_session_id", "room_id"}
    conversation_id, session_id = ref["conversation_id"], ref["channel_session_id"]

    seq = client.call("subscribe_session", channel_session_id=session_id)
    assert isinstance(seq, int) and seq >= 1
    client.call("customer_message", channel_session_id=session_id, text="hello", message_id="m-1")
    client.call("customer_message", channel_session_id=session_id, text="hello", message_id="m-1")
    client.call("agent_login", agent_id="alice", queues=["default"], max_conversations=2)

    desk = RawClient(server.port)
    desk.authenticate()
    assert desk.call("subscribe_agent", agent_id="alice") is None
    desk.call("agent_join", agent_id="alice", conversation_id=conversation_id)
    desk.call("agent_message", agent_id="alice", conversation_id=conversation_id, text="Hi!")

    snapshot = client.call("conversation", conversation_id=conversation_id)
    assert snapshot["state"] == "ACTIVE" and snapshot["id"] == conversation_id
    assert [p["id"] for p in snapshot["participants"] if p["type"] == "AGENT"] == ["alice"]
    events = client.call("events", conversation_id=conversation_id)
    names = [e["name"] for e in events]
    assert names.count("CUSTOMER_MESSAGE") == 1 and "AGENT_MESSAGE" in names
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert client.call("events", conversation_id=conversation_id, after_seq=3) == events[3:]

    # The session's subscriber got every event pushed, in order, once, each with its seq.
    pushed = client.pushes_until(events[-1]["seq"])
    assert [p["event"] for p in pushed] == events
    assert {p["push"] for p in pushed} == {f"session:{session_id}"}
    assert {p["conversation_id"] for p in pushed} == {conversation_id}
    assert set(pushed[0]) == {"push", "conversation_id", "event"}

    # The agent's desk got the conversation's events from its join on.
    (message,) = [
        p for p in desk.pushes_until(events[-1]["seq"]) if p["event"]["name"] == "AGENT_MESSAGE"
    ]
    assert message["push"] == "agent:alice" and message["event"]["data"]["text"] == "Hi!"

    status = client.call("status")
    assert status["conversations"] == {"ACTIVE": 1}

    client.call("end_conversation", conversation_id=conversation_id, by="AGENT")
    assert client.call("conversation", conversation_id=conversation_id)["state"] == "CLOSED"
    (archived,) = client.call("history", room_id=ref["room_id"])
    assert archived["id"] == conversation_id and archived["events"][-1]["seq"] > events[-1]["seq"]
    desk.close()


def test_a_reconnecting_client_resumes_after_the_last_seq_it_had(
    server: NetGateway, client: RawClient
) -> None:
    ref = client.call("start_session", customer_id="cust-1", channel="WEB", identifier="vis-1")
    session_id = ref["channel_session_id"]
    seq = client.call("subscribe_session", channel_session_id=session_id)
    had = client.pushes_until(seq)
    client.close()  # gone; the conversation goes on
    other = RawClient(server.port)
    other.authenticate()
    other.call("customer_message", channel_session_id=session_id, text="still there?")

    again = RawClient(server.port)
    again.authenticate()
    now = again.call(
        "subscribe_session", channel_session_id=session_id, after_seq=had[-1]["event"]["seq"]
    )
    replayed = again.pushes_until(now)
    assert [p["event"]["seq"] for p in replayed] == list(range(seq + 1, now + 1))
    assert replayed[0]["event"]["name"] == "CUSTOMER_MESSAGE"
    other.close()
    again.close()


def test_connections_share_a_subscription_without_duplicates(server: NetGateway) -> None:
    first, second = RawClient(server.port), RawClient(server.port)
    first.authenticate()
    second.authenticate()
    ref = first.call("start_session", customer_id="cust-1", channel="SMS", identifier="+1555")
    session_id = ref["channel_session_id"]
    seq = first.call("subscribe_session", channel_session_id=session_id)
    first.pushes_until(seq)
    assert second.call("subscribe_session", channel_session_id=session_id) == seq
    assert [p["event"]["seq"] for p in second.pushes_until(seq)] == list(range(1, seq + 1))

    first.call("customer_message", channel_session_id=session_id, text="one")
    last = len(first.call("events", conversation_id=ref["conversation_id"]))
    for connection in (first, second):
        seqs = [p["event"]["seq"] for p in connection.pushes_until(last)]
        assert seqs == list(range(1, last + 1))  # the replay for `second` did not reach `first`

    assert second.call("unsubscribe", subscription=f"session:{session_id}") is None
    first.call("customer_message", channel_session_id=session_id, text="two")
    second.call("status")  # runs after the message: anything pushed to `second` came before
    assert [p["event"]["seq"] for p in second.pushed][-1] == last
    texts = [p["event"]["data"].get("text") for p in first.pushes_until(last + 1)]
    assert "two" in texts

    error = second.refused("unsubscribe", {"subscription": f"session:{session_id}"})
    assert error["type"] == "unknown_id" and session_id in error["message"]
    error = second.refused("unsubscribe", {"subscription": "bogus"})
    assert error["type"] == "bad_argument" and "session:<id>" in error["message"]
    first.close()
    second.close()


# ------------------------------------------------------------------------------ bad frames

_OVERSIZED = body_frame(b"\x00" * (MAX_FRAME + 1))
_BAD_FRAMES: list[tuple[str, bytes, str, str]] = [
    ("oversized", _OVERSIZED, "frame_too_large", f"{MAX_FRAME + 1} bytes"),
    ("not msgpack", body_frame(b"\xc1"), "bad_msgpack", "invalid msgpack"),
    ("empty", body_frame(b""), "bad_msgpack", "truncated"),
    (
        "truncated value",
        body_frame(msgpack.packb({"op": "ping", "id": 1})[:-2]),
        "bad_msgpack",
        "truncated",
    ),
    (
        "two values",
        body_frame(msgpack.packb({"op": "ping", "id": 1}) * 2),
        "bad_msgpack",
        "extra bytes",
    ),
    ("bad utf-8", body_frame(b"\xa2\xff\xfe"), "bad_msgpack", "UTF-8"),
    ("ext type", body_frame(msgpack.packb(msgpack.Timestamp(1, 0))), "bad_msgpack", "ext"),
    ("int map key", body_frame(msgpack.packb({1: "x"})), "bad_msgpack", "map key"),
    ("not a map", frame(["ping", 1]), "bad_frame", "must be a map"),
    ("no id", frame({"op": "ping"}), "bad_frame", "no id"),
    ("id of a bad type", frame({"op": "ping", "id": [1]}), "bad_frame", "id must be"),
    ("unknown field", frame({"op": "ping", "id": 7, "token": "x"}), "bad_frame", "'token'"),
    ("no op", frame({"id": 7}), "bad_frame", "no op"),
    ("op not a string", frame({"op": 3, "id": 7}), "bad_frame", "op is an integer"),
    ("args not a map", frame({"op": "status", "args": [1], "id": 7}), "bad_argument", "args"),
    (
        "unknown op",
        frame({"op": "advance", "args": {"seconds": 1}, "id": 7}),
        "unknown_op",
        "'advance'",
    ),
    (
        "string where an int is needed",
        frame({"op": "agent_login", "args": {"agent_id": "a", "max_conversations": "3"}, "id": 7}),
        "bad_argument",
        "'max_conversations' must be an integer, got a string",
    ),
    (
        "boolean where an int is needed",
        frame({"op": "events", "args": {"conversation_id": "c", "after_seq": True}, "id": 7}),
        "bad_argument",
        "'after_seq' must be an integer, got a boolean",
    ),
    (
        "list of non-strings",
        frame({"op": "agent_login", "args": {"agent_id": "a", "queues": [1]}, "id": 7}),
        "bad_argument",
        "'queues' must be an array of strings",
    ),
    (
        "missing argument",
        frame({"op": "customer_message", "args": {"channel_session_id": "cs-1"}, "id": 7}),
        "bad_argument",
        "missing argument 'text'",
    ),
    (
        "unknown argument",
        frame({"op": "status", "args": {"verbose": True}, "id": 7}),
        "bad_argument",
        "unknown argument 'verbose'",
    ),
    (
        "unknown id",
        frame({"op": "conversation", "args": {"conversation_id": "conv-nope"}, "id": 7}),
        "unknown_id",
        "conv-nope",
    ),
    (
        "value refused by the engine",
        frame(
            {
                "op": "start_session",
                "args": {"customer_id": "c", "channel": "PIGEON", "identifier": "i"},
                "id": 7,
            }
        ),
        "bad_argument",
        "PIGEON",
    ),
]


@pytest.mark.parametrize(
    ("data", "error_type", "fragment"),
    [case[1:] for case in _BAD_FRAMES],
    ids=[case[0] for case in _BAD_FRAMES],
)
def test_a_bad_frame_gets_its_error_and_the_connection_stays_usable(
    client: RawClient, data: bytes, error_type: str, fragment: str
) -> None:
    client.send_bytes(data)
    reply = client.reply()
    assert reply["ok"] is False and reply["error"]["type"] == error_type, reply
    assert fragment in reply["error"]["message"]
    assert reply["id"] in (None, 7)
    assert client.call("ping") == "pong"
    assert client.call("status")["agents"] is not None


def test_a_refused_operation_is_illegal_transition(client: RawClient) -> None:
    client.call("agent_login", agent_id="alice")
    error = client.refused("agent_login", {"agent_id": "alice"})
    assert error["type"] == "illegal_transition" and "alice" in error["message"]
    assert client.call("agent_ready", agent_id="alice") is None


@pytest.mark.parametrize(
    ("op", "args", "expected"),
    [
        ("resume", {"agent_id": "alice"}, IllegalTransitionError),
        ("hold", {"agent_id": "nobody", "seconds": 10}, UnknownIdError),
        ("hold", {"agent_id": "alice", "seconds": -5}, BadArgumentError),
    ],
)
def test_a_domain_refusal_over_tcp_maps_back_to_the_class_the_gateway_raises(
    client: RawClient, op: str, args: dict[str, Any], expected: type[GatewayError]
) -> None:
    client.call("agent_login", agent_id="alice")
    client.call("agent_ready", agent_id="alice")
    ref = client.call("start_session", customer_id="c1", channel="WEB", identifier="c1-web")
    cid = ref["conversation_id"]
    client.call("request_agent", conversation_id=cid)
    error = client.refused(op, {**args, "conversation_id": cid})
    refusal = error_for(error["type"], error["message"])
    assert type(refusal) is expected and refusal.kind == error["type"]
    assert f"refused on conversation {cid} in state ACTIVE:" in str(refusal)


def test_a_frame_in_pieces_is_read_when_complete(client: RawClient) -> None:
    data = frame({"op": "ping", "id": "split"})
    client.send_bytes(data[:2])  # half a length prefix
    client.sock.settimeout(0.2)
    with pytest.raises(TimeoutError):
        client.frame()  # nothing to answer yet
    client.send_bytes(data[2:7])
    with pytest.raises(TimeoutError):
        client.frame()
    client.sock.settimeout(5.0)
    client.send_bytes(data[7:])
    assert client.reply() == {"id": "split", "ok": True, "result": "pong"}


def test_a_frame_too_large_to_skip_closes_the_connection(
    start_server: Callable[..., NetGateway],
) -> None:
    server = start_server(limits=Limits(skip_limit_bytes=MAX_FRAME * 2))
    c = RawClient(server.port)
    c.authenticate()
    c.send_bytes(struct.pack(">I", MAX_FRAME * 2 + 1))
    error = c.reply()["error"]
    assert error["type"] == "frame_too_large" and "closing" in error["message"]
    c.wait_closed()
    c.close()


def test_consecutive_errors_close_the_connection(start_server: Callable[..., NetGateway]) -> None:
    server = start_server(limits=Limits(consecutive_errors=4))
    c = RawClient(server.port)
    c.authenticate()
    for _ in range(3):
        c.send_bytes(body_frame(b"\xc1"))
        assert c.reply()["error"]["type"] == "bad_msgpack"
    assert c.call("ping") == "pong"  # a good frame resets the count
    for _ in range(3):
        c.send_bytes(frame({"op": "nope", "id": 1}))
        assert "closing" not in c.reply()["error"]["message"]
    c.send_bytes(frame({"op": "nope", "id": 1}))
    last = c.reply()["error"]
    assert last["type"] == "unknown_op" and "closing after 4 consecutive errors" in last["message"]
    c.wait_closed()
    c.close()
    assert server.stats["closed_for_errors"] == 1


# ------------------------------------------------------------------------------ slow clients


def test_a_client_that_does_not_read_is_dropped_and_blocks_nobody(
    start_server: Callable[..., NetGateway],
) -> None:
    server = start_server(limits=Limits(outbound_frames=8, outbound_bytes=256 * 1024))
    other = RawClient(server.port)
    other.authenticate()
    ref = other.call("start_session", customer_id="c", channel="WEB", identifier="v")
    big = "x" * 60_000
    other.call("customer_message", channel_session_id=ref["channel_session_id"], text=big)

    sleeper = RawClient(server.port, rcvbuf=4096, timeout=0.5)
    sleeper.authenticate()
    request = frame({"op": "events", "args": {"conversation_id": ref["conversation_id"]}, "id": 1})
    deadline = time.monotonic() + 15.0
    while server.stats["slow_clients"] == 0:
        assert time.monotonic() < deadline, "the client that does not read was never dropped"
        try:
            sleeper.send_bytes(request)  # ~60 KB of answer each, never read
        except TimeoutError:
            pass  # its requests pause while too many are pending: the others go on
        except OSError:
            break  # dropped
        assert other.call("ping") == "pong"
        assert other.call("status")["conversations"] == {"CREATED": 1}
    events = other.call("events", conversation_id=ref["conversation_id"])
    assert big in [e["data"].get("text") for e in events]
    sleeper.sock.settimeout(5.0)
    with pytest.raises((Closed, OSError)):
        while True:
            sleeper.frame()
    sleeper.close()
    other.close()


def _flood_until(server: NetGateway, sender: RawClient, session_id: str, stat: str) -> int:
    """Customer messages of 8 KB from ``sender`` until ``server.stats[stat]`` counts one;
    how many were sent."""
    text = "y" * 8000
    deadline = time.monotonic() + 60.0
    sent = 0
    while not server.stats[stat]:
        assert time.monotonic() < deadline, server.stats
        sender.call("customer_message", channel_session_id=session_id, text=text)
        sent += 1
    return sent


def _until_closed(client: RawClient) -> list[dict[str, Any]]:
    frames = []
    with pytest.raises(Closed):
        while True:
            frames.append(client.frame())
    return frames


def test_a_subscriber_that_does_not_read_is_disconnected_with_its_resume_point(
    start_server: Callable[..., NetGateway],
) -> None:
    limits = Limits(outbound_bytes=64 * 1024)
    server = start_server(limits=limits)
    other = RawClient(server.port)
    other.authenticate()
    ref = other.call("start_session", customer_id="c", channel="WEB", identifier="v")
    session_id, conversation_id = ref["channel_session_id"], ref["conversation_id"]
    sleeper = RawClient(server.port, rcvbuf=32 * 1024, timeout=10.0)
    sleeper.authenticate()
    sleeper.call("subscribe_session", channel_session_id=session_id)

    _flood_until(server, other, session_id, "slow_clients")  # the sleeper reads nothing

    frames = sleeper.pushed + _until_closed(sleeper)
    sleeper.close()
    last = frames.pop()
    pushed = [f["event"]["seq"] for f in frames]
    assert all("push" in f for f in frames)
    assert pushed == list(range(1, len(pushed) + 1))  # in order, none missing up to the end
    assert last["disconnect"] == "slow_reader" and "does not read" in last["message"]
    subscription = f"session:{session_id}"
    assert last["resume"] == [
        {"subscription": subscription, "conversation_id": conversation_id, "seq": pushed[-1]}
    ]
    assert server.stats["peak_connection_outbound_bytes"] <= limits.outbound_bytes
    # What was queued for it was dropped, and is had again from the resume point (a
    # subscription with after_seq, or events as here).
    rest = other.call("events", conversation_id=conversation_id, after_seq=pushed[-1])
    assert rest and [e["seq"] for e in rest] == list(range(pushed[-1] + 1, rest[-1]["seq"] + 1))
    other.close()


def test_when_every_outbound_queue_together_is_full_the_fullest_is_disconnected(
    start_server: Callable[..., NetGateway],
) -> None:
    limits = Limits(outbound_bytes=1024 * 1024, total_outbound_bytes=96 * 1024)
    server = start_server(limits=limits)
    other = RawClient(server.port)
    other.authenticate()
    ref = other.call("start_session", customer_id="c", channel="WEB", identifier="v")
    session_id = ref["channel_session_id"]
    sleepers = [RawClient(server.port, rcvbuf=32 * 1024, timeout=10.0) for _ in range(2)]
    for sleeper in sleepers:
        sleeper.authenticate()
        sleeper.call("subscribe_session", channel_session_id=session_id)

    _flood_until(server, other, session_id, "gateway_full")

    assert server.stats["peak_outbound_bytes"] <= limits.total_outbound_bytes
    assert server.stats["slow_clients"] == 0  # each queue was within its own bound
    other.close()
    ends = []
    for sleeper in sleepers:
        sleeper.sock.settimeout(2.0)
        try:
            ends.append(_until_closed(sleeper)[-1])
        except TimeoutError:
            ends.append({})  # the one still connected
        sleeper.close()
    disconnected = [end for end in ends if "disconnect" in end]
    assert len(disconnected) >= 1 and disconnected[0]["disconnect"] == "gateway_full"
    assert "gateway.total_outbound_bytes" in disconnected[0]["message"]


class BlockedEngine:
    """A Gateway whose ``conversation`` waits until the test opens the gate."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.calls = 0

    def conversation(self, conversation_id: str) -> dict[str, Any]:
        self.gate.wait(30.0)
        self.calls += 1
        return {"state": "ACTIVE"}

    def pushed(self, timeout: float = 0.0) -> list[Any]:
        return []

    def close(self) -> None:
        self.gate.set()


def test_requests_waiting_for_the_engine_are_bounded_in_bytes_per_connection_and_overall() -> None:
    engine = BlockedEngine()
    limits = Limits(inflight_bytes=48 * 1024, total_inflight_bytes=64 * 1024)
    server = serve(cast(Gateway, engine), "127.0.0.1:0", TOKEN, limits=limits)
    clients = [RawClient(server.port), RawClient(server.port)]
    try:
        for client in clients:
            client.authenticate()
            for n in range(10):  # 10 KB each: the kernel's buffers take what is not read
                client.request("conversation", {"conversation_id": f"{n}" + "x" * 10_000})
        _wait_for(lambda: len(server.paused) == 2)  # both stopped being read
        assert server.stats["peak_connection_inflight_bytes"] <= limits.inflight_bytes
        assert server.stats["peak_inflight_bytes"] <= limits.total_inflight_bytes
        assert server.worker.pending() <= 6  # of 20 sent: 4 + 2 fit the bounds, 1 is running
        engine.gate.set()
        for client in clients:
            answers = [client.reply() for _ in range(10)]
            assert [a["ok"] for a in answers] == [True] * 10
        assert engine.calls == 20
        assert server.buffered_in == 0 and server.buffered_out == 0
        assert server.stats["peak_inflight_bytes"] <= limits.total_inflight_bytes
    finally:
        engine.gate.set()
        for client in clients:
            client.close()
        server.close()


def test_authenticated_connections_beyond_their_limit_are_refused_when_they_authenticate(
    start_server: Callable[..., NetGateway],
) -> None:
    server = start_server(limits=Limits(max_connections=2))
    first, second = RawClient(server.port), RawClient(server.port)
    first.authenticate()
    second.authenticate()
    third = RawClient(server.port)
    error = third.refused("auth", {"token": TOKEN})
    assert error["type"] == "unavailable" and "gateway.max_connections" in error["message"]
    third.wait_closed()
    third.close()
    first.close()
    assert second.call("ping") == "pong"
    second.close()


def test_connections_still_authenticating_never_keep_authenticated_ones_out(
    start_server: Callable[..., NetGateway],
) -> None:
    server = start_server(limits=Limits(max_connections=2))
    waiting = [RawClient(server.port) for _ in range(5)]  # connected, never authenticating
    try:
        clients = [RawClient(server.port) for _ in range(2)]
        for client in clients:
            assert client.authenticate()["protocol"] == 1
            assert client.call("ping") == "pong"
            client.close()
    finally:
        for socket_ in waiting:
            socket_.close()


def test_a_peer_beyond_its_connection_limit_is_refused(
    start_server: Callable[..., NetGateway],
) -> None:
    server = start_server(limits=Limits(max_connections_per_peer=3))
    held = [RawClient(server.port) for _ in range(3)]
    try:
        for client in held:
            client.authenticate()
        extra = RawClient(server.port)
        error = extra.reply()
        assert error["ok"] is False and error["error"]["type"] == "unavailable"
        assert "127.0.0.1" in error["error"]["message"]
        assert "gateway.max_connections_per_peer" in error["error"]["message"]
        extra.wait_closed()
        extra.close()
        assert server.stats["refused"] == 1
        held.pop().close()  # a place is free again
        deadline = time.monotonic() + 10.0
        while server.admission.count_of("127.0.0.1") > 2:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        again = RawClient(server.port)
        assert again.authenticate()["protocol"] == 1
        again.close()
    finally:
        for client in held:
            client.close()


def test_a_peer_still_authenticating_on_too_many_connections_loses_its_oldest(
    start_server: Callable[..., NetGateway],
) -> None:
    server = start_server(limits=Limits(max_unauthenticated_per_peer=2))
    oldest, middle = RawClient(server.port), RawClient(server.port)
    try:
        _wait_for(lambda: server.admission.pending == 2)
        newest = RawClient(server.port)
        error = oldest.reply()["error"]
        assert error["type"] == "unavailable" and "waiting to authenticate" in error["message"]
        oldest.wait_closed()
        assert server.stats["evicted"] == 1
        assert newest.authenticate()["protocol"] == 1
        assert middle.authenticate()["protocol"] == 1
        newest.close()
    finally:
        oldest.close()
        middle.close()


def _wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for the server to have done something asynchronous (not for a timer)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.005)


# ------------------------------------------------------------------------------ engine down


class FakeGateway:
    """Stands in for a Gateway whose engine goes away and comes back."""

    def __init__(self, engine: dict[str, Any], generation: int) -> None:
        self.engine = engine
        self.generation = generation
        self.calls: list[tuple[Any, ...]] = []
        self.queue: list[Any] = []
        self.log: list[dict[str, Any]] = []  # the conversation's events, for ``events``
        self.closed = False

    def _reach(self) -> None:
        if self.engine["down"] or self.engine["generation"] != self.generation:
            raise UnavailableError("no answer from the engine within 30 s")

    def status(self) -> dict[str, Any]:
        self._reach()
        self.calls.append(("status",))
        return {"conversations": {}, "agents": {}, "queues": {}}

    def subscribe_session(self, channel_session_id: str, *, after_seq: int = 0) -> int:
        self._reach()
        self.calls.append(("subscribe_session", channel_session_id, after_seq))
        return 5

    def unsubscribe(self, subscription: str) -> None:
        self.calls.append(("unsubscribe", subscription))

    def events(self, conversation_id: str, *, after_seq: int = 0) -> list[dict[str, Any]]:
        self._reach()
        self.calls.append(("events", conversation_id, after_seq))
        return [e for e in self.log if e["seq"] > after_seq]

    def pushed(self, timeout: float = 0.0) -> list[Any]:
        events, self.queue = self.queue, []
        return events

    def close(self) -> None:
        self.closed = True


def test_an_unreachable_engine_answers_unavailable_then_reconnects() -> None:
    from runtime.gateway import PushedEvent

    engine: dict[str, Any] = {"down": False, "generation": 1}
    made: list[FakeGateway] = []

    def connect() -> FakeGateway:
        if engine["down"]:
            raise UnavailableError("not running")
        gateway = FakeGateway(engine, engine["generation"])
        made.append(gateway)
        return gateway

    server = serve(
        cast(Callable[[], Gateway], connect),
        "127.0.0.1:0",
        TOKEN,
        limits=Limits(health_interval_s=0.01),
        probe=lambda: "engine stopped for the test" if engine["down"] else None,
    )
    try:
        c = RawClient(server.port)
        c.authenticate()
        assert c.call("subscribe_session", channel_session_id="cs-1", after_seq=4) == 5
        made[0].queue.append(PushedEvent("session:cs-1", "conv-1", {"seq": 5, "name": "X"}))
        made[0].queue.append(PushedEvent("session:cs-1", "conv-1", {"seq": 6, "name": "Y"}))
        assert [p["event"]["seq"] for p in c.pushes_until(6)] == [5, 6]

        engine["down"] = True  # the system stops, then starts again with new actors
        started = time.monotonic()
        for _ in range(3):
            error = c.refused("status", {})
            assert error["type"] == "unavailable"
        assert time.monotonic() - started < 5.0  # no waiting for the Gateway's own timeout
        assert made[0].calls == [("subscribe_session", "cs-1", 4)]  # nothing was carried out
        assert "engine stopped for the test" in error["message"]

        engine.update(down=False, generation=2)
        deadline = time.monotonic() + 10.0
        while c.answer(c.request("status", {}))["ok"] is not True:
            assert time.monotonic() < deadline
        assert made[0].closed and len(made) == 2
        # The subscription was restored from the last seq this connection was given.
        assert made[1].calls[0] == ("subscribe_session", "cs-1", 6)
        made[1].queue.append(PushedEvent("session:cs-1", "conv-1", {"seq": 7, "name": "Z"}))
        assert c.pushes_until(7)[-1]["event"] == {"seq": 7, "name": "Z"}
        c.close()
    finally:
        server.close()


def test_a_session_subscription_that_ended_is_not_restored_when_the_engine_restarts() -> None:
    from runtime.gateway import PushedEvent

    engine: dict[str, Any] = {"down": False, "generation": 1}
    made: list[FakeGateway] = []

    def connect() -> FakeGateway:
        if engine["down"]:
            raise UnavailableError("not running")
        made.append(FakeGateway(engine, engine["generation"]))
        return made[-1]

    server = serve(
        cast(Callable[[], Gateway], connect),
        "127.0.0.1:0",
        TOKEN,
        limits=Limits(health_interval_s=0.01),
        probe=lambda: "engine stopped for the test" if engine["down"] else None,
    )
    try:
        c = RawClient(server.port)
        c.authenticate()
        c.call("subscribe_session", channel_session_id="cs-1", after_seq=4)
        c.call("subscribe_session", channel_session_id="cs-2", after_seq=4)
        made[0].queue.append(PushedEvent("session:cs-1", "conv-1", {"seq": 5, "name": "X"}, True))
        assert c.pushes_until(5)[-1]["final"] is True

        engine["down"] = True  # the engine restarts: cs-1 ended, cs-2 is restored
        assert c.refused("status", {})["type"] == "unavailable"
        engine.update(down=False, generation=2)
        deadline = time.monotonic() + 10.0
        while c.answer(c.request("status", {}))["ok"] is not True:
            assert time.monotonic() < deadline
        subscribed = [call for call in made[1].calls if call[0] == "subscribe_session"]
        assert subscribed == [("subscribe_session", "cs-2", 4)]
        error = c.refused("unsubscribe", {"subscription": "session:cs-1"})
        assert error["type"] == "unknown_id"
        c.close()
    finally:
        server.close()


def test_a_connection_is_given_the_events_before_one_beyond_its_next_not_a_gap() -> None:
    from runtime.gateway import PushedEvent

    fake = FakeGateway({"down": False, "generation": 1}, 1)
    fake.log = [{"seq": seq, "name": f"E{seq}"} for seq in range(1, 5)]
    server = serve(cast(Gateway, fake), "127.0.0.1:0", TOKEN)
    try:
        c = RawClient(server.port)
        c.authenticate()
        c.call("subscribe_session", channel_session_id="cs-1")
        fake.queue.append(PushedEvent("session:cs-1", "conv-1", fake.log[0]))
        assert [p["event"]["seq"] for p in c.pushes_until(1)] == [1]
        fake.queue.append(PushedEvent("session:cs-1", "conv-1", fake.log[3]))
        assert [p["event"]["seq"] for p in c.pushes_until(4)] == [1, 2, 3, 4]
        assert ("events", "conv-1", 1) in fake.calls
        c.close()
    finally:
        server.close()


def test_requests_that_waited_too_long_are_not_carried_out() -> None:
    fake = FakeGateway({"down": False, "generation": 1}, 1)
    server = serve(cast(Gateway, fake), "127.0.0.1:0", TOKEN, limits=Limits(queue_timeout_s=1e-9))
    try:
        c = RawClient(server.port)
        c.authenticate()
        error = c.refused("status", {})
        assert error["type"] == "unavailable" and "not carried out" in error["message"]
        assert fake.calls == []
        c.close()
    finally:
        server.close()


# ------------------------------------------------------------------------------ contract


def test_the_ops_are_the_gateway_methods_with_their_parameters() -> None:
    public = {
        name
        for name, member in inspect.getmembers(Gateway)
        if not name.startswith("_") and (inspect.isfunction(member) or inspect.ismethod(member))
    }
    assert set(OPS) - SERVER_OPS == public - set(NOT_OFFERED)
    for name, spec in OPS.items():
        if name in SERVER_OPS:
            continue
        parameters = list(inspect.signature(getattr(Gateway, name)).parameters.values())[1:]
        assert [p.name for p in spec.params] == [p.name for p in parameters], name
        for param, parameter in zip(spec.params, parameters, strict=True):
            assert param.required == (parameter.default is inspect.Parameter.empty), (name, param)


def test_the_protocol_document_names_every_op_error_type_and_disconnect_reason() -> None:
    from runtime.netgateway import DISCONNECT_REASONS, ERROR_TYPES

    text = (ROOT / "docs" / "PROTOCOL.md").read_text()
    for name in [*OPS, *ERROR_TYPES, *DISCONNECT_REASONS]:
        assert f"`{name}`" in text, name


def test_the_protocol_document_gives_every_ops_arguments_with_their_types() -> None:
    text = (ROOT / "docs" / "PROTOCOL.md").read_text()
    section = text[text.index("## Operations") : text.index("## Snapshots")]
    rows = dict(re.findall(r"^\| `(\w+)` \|([^|]*)\|", section, re.MULTILINE))
    written = {
        Kind.STR: "str",
        Kind.INT: "int",
        Kind.NUMBER: "number",
        Kind.MAP: "map",
        Kind.STR_LIST: "[str]",
        Kind.SCALAR: "scalar",
    }
    for name, spec in OPS.items():
        names = re.findall(r"\[?(\w+): ", rows[name])
        assert names == [p.name for p in spec.params], name
        for param in spec.params:
            typed = f"{param.name}: {written[param.kind]}"
            nil = "?" if param.nullable and param.kind is not Kind.SCALAR else ""
            expected = f"[{typed}{nil}]" if not param.required else typed
            assert expected in rows[name], (name, expected)
            if param.required:
                assert f"[{typed}" not in rows[name], (name, param.name)


def test_cx_gateway_refuses_to_start_without_a_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from runtime.cli import main

    monkeypatch.delenv("CX_GATEWAY_TOKEN", raising=False)
    config = tmp_path / "config.yaml"
    config.write_text("logging: {level: warning}\n")
    with pytest.raises(ConfigError, match="CX_GATEWAY_TOKEN"):
        run_gateway(config)
    assert main(["gateway", "--config", str(config)]) == 2
    assert "gateway.token" in capsys.readouterr().err


def test_the_gateway_limits_come_from_config_and_bad_ones_name_their_key() -> None:
    from infra.config import load_config
    from runtime.netgateway import limits_of

    settings = load_config(
        {"gateway": {"max_unauthenticated_per_peer": 2, "total_outbound_bytes": 65536}}
    )
    limits = limits_of(settings)
    assert (limits.max_unauthenticated_per_peer, limits.total_outbound_bytes) == (2, 65536)
    assert limits.max_connections == 256 and limits.auth_timeout_s == 10.0  # the defaults
    for key, value in [("max_connections_per_peer", 0), ("inflight_bytes", "4 MB")]:
        with pytest.raises(ConfigError) as raised:
            load_config({"gateway": {key: value}})
        assert raised.value.key == f"gateway.{key}"


def test_cx_gateway_without_a_running_engine_or_a_free_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from runtime.cli import main
    from tests.multiproc_support import free_port, write_config

    monkeypatch.setenv("CX_GATEWAY_TOKEN", TOKEN)
    config = write_config(tmp_path, gateway={"listen": f"127.0.0.1:{free_port()}"})
    assert main(["gateway", "--config", str(config)]) == 1
    assert "no actor system is running" in capsys.readouterr().err

    def embedded(path: str) -> Gateway:
        return Gateway.embedded(
            {
                "storage": {
                    "archive": str(tmp_path / "a.sqlite3"),
                    "journal": str(tmp_path / "journal"),
                },
                "logging": {"level": "warning"},
            }
        )

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path, gateway={"listen": f"127.0.0.1:{port}"})
        with pytest.raises(ConfigError, match=r"gateway\.listen: cannot listen on 127\.0\.0\.1"):
            run_gateway(config, connect=embedded)


# ------------------------------------------------------------------------------ real system


@pytest.mark.multiproc
def test_cx_gateway_in_front_of_a_running_system(tmp_path: Path) -> None:
    from tests.multiproc_support import free_port, running_system, write_config

    port = free_port()
    config = write_config(tmp_path, gateway={"listen": f"127.0.0.1:{port}"})
    env = {**os.environ, "CX_GATEWAY_TOKEN": TOKEN}
    with running_system(config):
        process = subprocess.Popen(
            [sys.executable, "-m", "runtime.cli", "gateway", "--config", str(config)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            _wait_for_line(process, b"cx gateway: serving on", timeout=30.0)
            title = " ".join(procs.cmdline(process.pid)).rstrip()
            assert title == f"cx: gateway 127.0.0.1:{port} --config {config}"
            c = RawClient(port, timeout=15.0)
            c.authenticate()
            ref = c.call("start_session", customer_id="cust-1", channel="WEB", identifier="v")
            session_id, conversation_id = ref["channel_session_id"], ref["conversation_id"]
            c.call("subscribe_session", channel_session_id=session_id)
            c.call("customer_message", channel_session_id=session_id, text="hello")
            c.call("agent_login", agent_id="alice")
            c.call("agent_join", agent_id="alice", conversation_id=conversation_id)
            c.call("agent_message", agent_id="alice", conversation_id=conversation_id, text="Hi")
            assert c.call("conversation", conversation_id=conversation_id)["state"] == "ACTIVE"
            events = c.call("events", conversation_id=conversation_id)
            assert "AGENT_MESSAGE" in [e["name"] for e in events]
            pushed = c.pushes_until(events[-1]["seq"])
            assert [p["event"]["seq"] for p in pushed] == list(range(1, len(pushed) + 1))
            assert c.refused("conversation", {"conversation_id": "conv-x"})["type"] == "unknown_id"
            c.close()
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.communicate(timeout=20.0)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate(timeout=5.0)
        assert process.returncode == 0


def _wait_for_line(process: subprocess.Popen[bytes], start: bytes, *, timeout: float) -> None:
    assert process.stderr is not None
    deadline = time.monotonic() + timeout
    seen = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stderr, selectors.EVENT_READ)
        while start not in seen:
            left = deadline - time.monotonic()
            assert left > 0 and process.poll() is None, f"cx gateway did not start: {seen!r}"
            if selector.select(left):
                chunk = os.read(process.stderr.fileno(), 65536)
                assert chunk, f"cx gateway exited: {seen!r}"
                seen += chunk
