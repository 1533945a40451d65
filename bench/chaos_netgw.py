"""The network gateway in the chaos run: clients over TCP, and the ``netgw`` target.

With ``netgw`` among the targets, the run starts ``cx gateway`` beside the engine (its
supervisor here, as systemd with ``Restart=always`` would be in production) and one more load
process, :class:`NetWorker`, whose customers speak the TCP protocol (docs/PROTOCOL.md): they
open conversations, send messages with provider message ids and end them. A connection that
breaks is opened again and the unanswered request sent again (the same message id: never
applied twice). The strike kills ``cx gateway`` with SIGKILL, starts a new one at once, and
measures until it answers an authenticated ``status``. The clients' acknowledgements go into
the same records as the other workers', so the final check of the archive covers them.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import msgpack

from domain.errors import ErrorKind, GatewayError, error_for

TOKEN = "chaos-" + "t" * 26  # 32 characters
RECOVERY_LIMIT_S = 30.0
GIVE_UP_S = 90.0


class Broken(Exception):
    """The connection broke, or the gateway answered ``unavailable``: try again."""


class Client:
    """One authenticated connection; requests answered in order (pushes are not asked for).
    A refusal raises the exception of its kind (``domain.errors.error_for``); ``unavailable``
    and ``internal`` raise :class:`Broken` (from that exception), to be tried again."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=35)
        self.ids = 0
        self.call("auth", token=TOKEN)

    def close(self) -> None:
        self.sock.close()

    def send(self, op: str, /, **args: Any) -> int:
        """Send a request without waiting for its answer; its id."""
        self.ids += 1
        body = msgpack.packb({"op": op, "args": args, "id": self.ids}, use_bin_type=True)
        self.sock.sendall(struct.pack(">I", len(body)) + body)
        return self.ids

    def frame(self) -> dict[str, Any]:
        """The next frame (an answer or a push); Broken if the gateway closed the connection,
        TimeoutError if nothing came within the socket's timeout."""
        frame: dict[str, Any] = msgpack.unpackb(self._exact(struct.unpack(">I", self._exact(4))[0]))
        return frame

    def call(self, op: str, /, **args: Any) -> Any:
        try:
            request = self.send(op, **args)
            while (answer := self.frame()).get("id") != request:
                pass
        except OSError as error:
            raise Broken(str(error)) from error
        if answer["ok"]:
            return answer["result"]
        wire = answer["error"]
        refusal = error_for(wire["type"], f"{op} refused: {wire['message']}")
        if refusal.kind in (ErrorKind.UNAVAILABLE, ErrorKind.INTERNAL):
            raise Broken(f"{refusal.kind}: {wire['message']}") from refusal
        raise refusal

    def _exact(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise Broken("closed by the gateway")
            data += chunk
        return data


class NetWorker:
    """Customers over TCP; every acknowledgement recorded as the other workers record theirs."""

    def __init__(self, number: int, port: int, out: Path, seed: int, rate: float) -> None:
        self.port = port
        self.out = out.open("a", buffering=1)
        self.chance = random.Random(seed * 1000 + number)
        self.rate = rate
        self.customers = [f"net{number}-cust{i}" for i in range(6)]
        self.live: dict[str, dict[str, Any]] = {}
        self.counter = 0
        self.stats: Counter[str] = Counter()
        self.client: Client | None = None

    def record(self, **fields: Any) -> None:
        self.out.write(json.dumps({"t": time.time(), **fields}) + "\n")

    def call(self, what: str, conversation_id: str | None, op: str, /, **args: Any) -> Any:
        """``op`` until answered, over a new connection whenever one breaks."""
        started, failures, first = time.monotonic(), 0, 0.0
        while True:
            try:
                if self.client is None:
                    self.client = Client(self.port)
                result = self.client.call(op, **args)
            except (Broken, OSError) as error:
                failures += 1
                self.stats["failed_attempts"] += 1
                first = first or time.time()
                if self.client is not None:
                    self.client.close()
                    self.client = None
                if time.monotonic() - started > GIVE_UP_S:
                    self.record(kind="gave_up", what=what, conv=conversation_id, error=str(error))
                    self.stats["gave_up"] += 1
                    raise
                time.sleep(0.05)
                continue
            if failures:
                self.record(
                    kind="outage", what=what, conv=conversation_id, start=first,
                    end=time.time(), attempts=failures, error="network gateway",
                )  # fmt: skip
            self.stats["acknowledged"] += 1
            return result

    def step(self) -> None:
        customer = self.chance.choice(self.customers)
        conversation = self.live.get(customer)
        if conversation is None:
            ref = self.call(
                "start_session", None, "start_session",
                customer_id=customer, channel="WHATSAPP", identifier=f"{customer}-wa",
            )  # fmt: skip
            self.live[customer] = {**ref, "messages": 0, "limit": self.chance.randint(3, 10)}
            self.record(
                kind="conv", conv=ref["conversation_id"], room=ref["room_id"],
                customer=customer, session=ref["channel_session_id"],
            )  # fmt: skip
        elif conversation["messages"] >= conversation["limit"]:
            self.end(customer)
        else:
            self.counter += 1
            key = f"{conversation['conversation_id']}-n{self.counter}"
            self.call(
                "customer_message", conversation["conversation_id"], "customer_message",
                channel_session_id=conversation["channel_session_id"], text=f"hi {key}",
                message_id=key,
            )  # fmt: skip
            conversation["messages"] += 1
            self.record(kind="ack", what="customer_message", conv=conversation["conversation_id"], key=key)

    def end(self, customer: str) -> None:
        conversation = self.live.pop(customer)
        conversation_id = conversation["conversation_id"]
        with contextlib.suppress(GatewayError):  # applied before a connection broke: closing
            self.call("end_conversation", conversation_id, "end_conversation",
                      conversation_id=conversation_id, by="AGENT")  # fmt: skip
        self.record(kind="ended", conv=conversation_id, ok=True)

    def run(self, until: float) -> None:
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while time.time() < until:
            next_at += interval
            try:
                self.step()
            except GatewayError as error:  # a refusal: recorded, the load goes on
                self.stats["refused"] += 1
                self.record(kind="refused", what="step", conv=None, error=str(error)[:200])
            time.sleep(max(0.0, next_at - time.monotonic()))
        for customer in list(self.live):
            self.end(customer)
        self.record(kind="stats", **self.stats)
        self.out.close()


class GatewayProcess:
    """``cx gateway`` for the run, started again at once whenever it is killed."""

    def __init__(self, config: Path, port: int, log: Path, root: Path) -> None:
        self.config, self.port, self.log, self.root = config, port, log, root
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "runtime.cli", "gateway", "--config", str(self.config)],
            cwd=self.root,
            env={**os.environ, "PYTHONPATH": str(self.root), "CX_GATEWAY_TOKEN": TOKEN},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("ab"),
        )

    def serving(self) -> bool:
        try:
            client = Client(self.port)
        except (Broken, OSError):
            return False
        try:
            client.call("status")
            return True
        except (Broken, OSError, GatewayError):
            return False
        finally:
            client.close()

    def wait_serving(self, limit: float = RECOVERY_LIMIT_S) -> float | None:
        started = time.monotonic()
        while time.monotonic() - started < limit:
            if self.serving():
                return time.monotonic()
            time.sleep(0.05)
        return None

    def strike(self) -> tuple[int, float | None]:
        """Kill it with SIGKILL, start it again; (its pid, seconds until serving or None)."""
        assert self.process is not None
        pid = self.process.pid
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        self.process.wait(10)
        self.start()
        serving = self.wait_serving()
        return pid, None if serving is None else round(serving - killed, 3)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def net_worker_main(number: int, port: int, out: str, until: float, seed: int, rate: float) -> int:
    NetWorker(number, port, Path(out), seed, rate).run(until)
    return 0
