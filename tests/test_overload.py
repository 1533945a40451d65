"""Overload: clients that send faster than the engine can process.

The network gateway bounds what it holds for each connection (docs/PROTOCOL.md, "Limits"):
requests in flight (beyond them it stops reading that socket: TCP back-pressure), outbound
frames (a client that does not read is disconnected), and requests waiting for the engine
(beyond them ``unavailable``, "retry later"). Shown here with floods of pipelined requests:

- a client that pipelines requests and never reads: the server's queues stay within their
  limits, the bytes it takes from the socket stay bounded, memory does not grow with the flood,
  other clients are served meanwhile, the client is disconnected, and every answer it did get
  before that is an event stored exactly once;
- several clients that pipeline faster than the engine works, with a small engine queue: they
  are refused with ``unavailable`` and a retry hint, retry, and in the end every message is
  stored exactly once.

(The Python Gateway has one call in flight per gateway: its back-pressure is the call itself.)
"""

from __future__ import annotations

import contextlib
import itertools
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from runtime.netgateway import Limits, NetGateway, serve
from tests.conftest import MakeGateway

TOKEN = "overload-token-0123456789abcdef"
TEXT = "x" * 1000  # about 1 KB a request


def frame(value: Any) -> bytes:
    body = msgpack.packb(value, use_bin_type=True)
    return struct.pack(">I", len(body)) + body


def _tcp_rmem_max() -> int:
    return int(Path("/proc/sys/net/ipv4/tcp_rmem").read_text().split()[2])


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class Client:
    """A blocking client that reads answers (and counts them) on request."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""
        self.ids = itertools.count(1)
        self.call("auth", token=TOKEN)

    def send(self, op: str, **args: Any) -> int:
        request_id = next(self.ids)
        self.sock.sendall(frame({"op": op, "args": args, "id": request_id}))
        return request_id

    def read(self) -> dict[str, Any]:
        while True:
            if len(self.buffer) >= 4:
                (length,) = struct.unpack(">I", self.buffer[:4])
                if len(self.buffer) >= 4 + length:
                    value = msgpack.unpackb(self.buffer[4 : 4 + length], raw=False)
                    self.buffer = self.buffer[4 + length :]
                    if "push" not in value:
                        return dict(value)
                    continue
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("closed by the server")
            self.buffer += chunk

    def call(self, op: str, **args: Any) -> Any:
        request_id = self.send(op, **args)
        answer = self.read()
        assert answer["id"] == request_id and answer["ok"] is True, answer
        return answer["result"]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def start_server(make_gateway: MakeGateway) -> Iterator[Callable[[Limits], NetGateway]]:
    servers: list[NetGateway] = []

    def start(limits: Limits) -> NetGateway:
        server = serve(lambda: make_gateway(seed=2), "127.0.0.1:0", TOKEN, limits=limits)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def _stored_message_ids(client: Client, conversation_id: str) -> list[str]:
    events = client.call("events", conversation_id=conversation_id)
    return [e["data"]["message_id"] for e in events if e["name"] == "CUSTOMER_MESSAGE"]


class Sampler(threading.Thread):
    """Samples the server's queues and this process's memory every 5 ms."""

    def __init__(self, server: NetGateway) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.stop = threading.Event()
        self.worst: dict[str, int] = {
            "worker_pending": 0,
            "out_frames": 0,
            "out_bytes": 0,
            "in_flight": 0,
            "rss": 0,
        }

    def run(self) -> None:
        while not self.stop.wait(0.005):
            worst = self.worst
            worst["worker_pending"] = max(worst["worker_pending"], self.server.worker.pending())
            for connection in list(self.server.pool.members):
                worst["out_frames"] = max(worst["out_frames"], connection.out_frames)
                worst["out_bytes"] = max(worst["out_bytes"], connection.out_bytes)
                worst["in_flight"] = max(worst["in_flight"], connection.in_flight)
            worst["rss"] = max(worst["rss"], rss_bytes())


def test_a_client_that_pipelines_without_reading_is_held_back(
    start_server: Callable[[Limits], NetGateway],
) -> None:
    limits = Limits(inflight_requests=32, outbound_frames=256, outbound_bytes=1 << 20)
    server = start_server(limits)
    other = Client(server.port)
    ref = other.call("start_session", customer_id="flood", channel="WEB", identifier="v")
    session_id, conversation_id = ref["channel_session_id"], ref["conversation_id"]
    for warm in range(50):  # the engine's steady state before the baseline is taken
        other.call(
            "customer_message", channel_session_id=session_id, text=TEXT, message_id=f"w{warm}"
        )

    flood = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    flood.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 256 * 1024)
    flood.sendall(frame({"op": "auth", "args": {"token": TOKEN}, "id": 0}))
    flood.setblocking(False)
    sampler = Sampler(server)
    baseline = rss_bytes()
    executed_before = server.worker.executed
    sampler.start()
    frames: list[tuple[int, bytes]] = []
    pending = b""
    sent = offered = 0
    blocked = 0.0
    pings: list[float] = []
    dropped = False
    started = time.monotonic()
    next_ping = started
    try:
        while time.monotonic() - started < 4.0:
            if not pending:
                number = len(frames) + 1
                data = frame(
                    {
                        "op": "customer_message",
                        "args": {
                            "channel_session_id": session_id,
                            "text": TEXT,
                            "message_id": f"f{number}",
                        },
                        "id": number,
                    }
                )
                frames.append((number, data))
                pending = data
                offered += len(data)
            try:
                count = flood.send(pending)
            except BlockingIOError:
                waited = time.monotonic()
                select.select([], [flood], [], 0.01)  # held back: the server does not read
                blocked += time.monotonic() - waited
                count = 0
            except OSError:
                dropped = True
                break
            sent += count
            pending = pending[count:]
            if time.monotonic() >= next_ping:  # everyone else is still served
                asked = time.monotonic()
                assert other.call("ping") == "pong"
                pings.append(time.monotonic() - asked)
                next_ping = asked + 0.1
    finally:
        sampler.stop.set()
        sampler.join()
    executed = server.worker.executed - executed_before
    worst = sampler.worst
    size = max(len(f) for _, f in frames)

    # Nothing held beyond its limit, at any moment.
    assert worst["in_flight"] <= limits.inflight_requests, worst
    assert worst["out_frames"] <= limits.outbound_frames, worst
    assert worst["out_bytes"] <= limits.outbound_bytes, worst
    assert worst["worker_pending"] <= limits.inflight_requests + 2, worst  # ours, pings
    # The server took from the socket only what it carried out, plus what is in flight and
    # what the kernel's buffers hold (the server's receive buffer grows up to tcp_rmem's
    # maximum, the client's send buffer is set): the rest of the flood waited in the client.
    kernel = _tcp_rmem_max() + 2 * flood.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    assert sent <= (executed + limits.inflight_requests) * size + kernel + (1 << 20), (
        sent,
        executed,
    )
    # Memory grows with what was carried out (the engine keeps a live conversation's events),
    # not with what was offered.
    growth = worst["rss"] - baseline
    assert growth < (32 << 20) + executed * 6 * size, f"memory grew by {growth >> 20} MB"
    assert max(pings) < 1.0, f"another client waited {max(pings):.2f} s for a ping"

    # Then it reads: whatever answers reached it before it was dropped are acknowledgements.
    flood.setblocking(True)
    flood.settimeout(3.0)
    received = b""
    with contextlib.suppress(OSError):  # the end: closed, or quiet for 3 s
        while chunk := flood.recv(1 << 16):
            received += chunk
    flood.close()
    acknowledged = []
    answers = 0
    while len(received) >= 4:
        (length,) = struct.unpack(">I", received[:4])
        if len(received) < 4 + length:
            break
        answer = msgpack.unpackb(received[4 : 4 + length], raw=False)
        received = received[4 + length :]
        if answer["id"] == 0:
            continue  # the auth
        if answer.get("ok"):
            acknowledged.append(f"f{answer['id']}")
        else:
            answers += 1  # a refusal: not acknowledged
    ends = itertools.accumulate(len(data) for _, data in frames)
    complete = sum(1 for _ in itertools.takewhile(lambda end: end <= sent, ends))
    if not (dropped or server.stats["slow_clients"]):
        # Not dropped: its answers fitted in the kernel's buffers; each request it sent whole
        # got its one answer.
        assert answers + len(acknowledged) == complete, (answers, len(acknowledged), complete)
    # It was held back at all (how long depends on how fast this machine runs the engine;
    # the bound that matters is the one on what the server took, above).
    assert blocked > 0.1, f"the client was held back only {blocked:.2f} s of 4"
    stored = _stored_message_ids(other, conversation_id)
    assert len(stored) == len(set(stored)), "a message stored twice"
    assert set(acknowledged) <= set(stored), sorted(set(acknowledged) - set(stored))[:5]
    print(
        f"overload: {len(frames)} requests offered ({offered >> 10} KB), {sent >> 10} KB taken"
        f" by the socket, held back {blocked:.1f} s of 4, {executed} carried out meanwhile,"
        f" {len(acknowledged)} acknowledged;"
        f" worst queues {worst}, RSS +{(worst['rss'] - baseline) >> 20} MB,"
        f" ping p100 {max(pings) * 1000:.0f} ms"
    )
    other.close()


def test_clients_faster_than_the_engine_are_refused_with_a_retry_hint_and_lose_nothing(
    start_server: Callable[[Limits], NetGateway],
) -> None:
    limits = Limits(inflight_requests=64, worker_queue=16)
    server = start_server(limits)
    clients = [Client(server.port) for _ in range(4)]
    refs = [
        c.call("start_session", customer_id=f"cust-{n}", channel="WEB", identifier="v")
        for n, c in enumerate(clients)
    ]
    per_client = 400
    refusals: list[str] = []
    acknowledged: dict[str, set[str]] = {ref["conversation_id"]: set() for ref in refs}
    sampler = Sampler(server)
    baseline = rss_bytes()
    sampler.start()

    def run(client: Client, ref: dict[str, Any]) -> None:
        todo = [f"{ref['conversation_id']}-m{n}" for n in range(per_client)]
        window: dict[int, str] = {}
        while todo or window:
            while todo and len(window) < 64:  # pipelined: 64 requests outstanding
                message_id = todo.pop(0)
                request_id = client.send(
                    "customer_message",
                    channel_session_id=ref["channel_session_id"],
                    text=TEXT,
                    message_id=message_id,
                )
                window[request_id] = message_id
            answer = client.read()
            message_id = window.pop(answer["id"])
            if answer["ok"]:
                acknowledged[ref["conversation_id"]].add(message_id)
            else:
                assert answer["error"]["type"] == "unavailable", answer
                refusals.append(answer["error"]["message"])
                todo.append(message_id)  # the retry the hint asks for (same message id)

    threads = [
        threading.Thread(target=run, args=(c, r)) for c, r in zip(clients, refs, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
        assert not thread.is_alive()
    sampler.stop.set()
    sampler.join()

    assert refusals, "the engine queue limit was never reached: the test proves nothing"
    assert all("retry later" in message for message in refusals), refusals[:3]
    assert sampler.worst["worker_pending"] <= limits.worker_queue + len(clients), sampler.worst
    assert sampler.worst["rss"] - baseline < 96 << 20, sampler.worst
    for client, ref in zip(clients, refs, strict=True):
        stored = _stored_message_ids(client, ref["conversation_id"])
        assert sorted(stored) == sorted(acknowledged[ref["conversation_id"]])
        assert len(stored) == per_client
    print(
        f"overload: {len(clients)} clients x {per_client} messages pipelined 64 deep,"
        f" {len(refusals)} refusals (unavailable, retried), every message stored once;"
        f" worst queues {sampler.worst}"
    )
    for client in clients:
        client.close()
