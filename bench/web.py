"""The web gateway over HTTP and WebSockets: requests/s with keep-alive, and WebSocket
subscribers held with their pushes delivered in order.

An engine on ``multiprocTCPBase`` with ``conversations`` conversations (a WEB channel session,
the bot and an agent each), ``cx web`` in a process of its own, and, as the reference, a bare
ASGI endpoint that does nothing (uvicorn, same settings) in another. The load comes from this
process: ``connections`` keep-alive HTTP/1.1 connections, each sending its next request when
the previous one is answered (a minimal client on asyncio streams, so that the client costs as
little as possible; the bare endpoint's figure is the ceiling this client and machine allow).
Measured in one run:

- **bare ASGI** (reference): requests/s;
- **cx web ``ping``**: authentication, routing and JSON, no engine;
- **cx web ``customer_message``**: end to end through the engine (after each session's first
  request, which looks its channel up once);
- **WebSockets**: ``sockets`` sockets, one per channel session, held open; one customer
  message to each session; the seconds until every socket has had it, and whether every
  socket's events came in seq order with no gap.

    python -m bench.web [--conversations 1000] [--requests 10000] [--connections 32] [--sockets 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import websockets

from bench import support
from bench.common import join_agents, open_conversations, settle
from runtime.gateway import Gateway
from runtime.web.tokens import KEY_VARIABLE, issue

_KEY = "bench-signing-key-" + "5" * 32


async def bare(scope: dict[str, Any], receive: Callable[[], Awaitable[Any]],
               send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:  # fmt: skip
    """The reference: an ASGI endpoint that reads the request and answers a fixed JSON body."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    body = b'{"result":null}'
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@contextlib.contextmanager
def serving(command: Sequence[str], port: int, env: dict[str, str]) -> Iterator[None]:
    """A server process listening on ``port`` for as long as the block runs."""
    process = subprocess.Popen(command, env={**os.environ, **env}, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{' '.join(command)} did not start listening on {port}")
            time.sleep(0.1)
        yield
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


async def _one_connection(port: int, requests: list[bytes]) -> int:
    """Send each request on one keep-alive connection, the next once the previous is
    answered; the number answered 200."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    ok = 0
    try:
        for request in requests:
            writer.write(request)
            status = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            ok += status.split(b" ", 2)[1] == b"200"
    finally:
        writer.close()
    return ok


def request(op: str, bearer: str, args: dict[str, Any]) -> bytes:
    body = json.dumps(args).encode()
    return (
        f"POST /v1/{op} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {bearer}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def rate(port: int, requests: list[bytes], connections: int) -> dict[str, float]:
    """``requests`` over ``connections`` keep-alive connections: requests/s, and how many
    were answered 200."""

    async def main() -> int:
        shares = [requests[k::connections] for k in range(connections)]
        return sum(await asyncio.gather(*(_one_connection(port, s) for s in shares)))

    started = time.perf_counter()
    ok = asyncio.run(main())
    return {"per_s": len(requests) / (time.perf_counter() - started), "ok": ok}


def sockets_rate(
    port: int, bearer: str, sessions: Sequence[str], connections: int
) -> dict[str, Any]:
    """One socket per session, then one customer message to each: seconds until every socket
    has had its message, and the sockets whose seqs were not 1, 2, 3, ... with no gap."""

    async def main() -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {bearer}"}
        url = f"ws://127.0.0.1:{port}/v1/sessions/{{}}/events?after_seq=0"
        sockets = [
            await websockets.connect(url.format(s), additional_headers=headers, max_queue=None)
            for s in sessions
        ]
        for each in sockets:
            assert "subscribed" in json.loads(await each.recv())
        bad: list[str] = []

        async def until_message(session: str, socket: Any) -> None:
            seqs: list[int] = []
            while True:
                frame = json.loads(await socket.recv())
                seqs.append(frame["event"]["seq"])
                if frame["event"]["name"] == "CUSTOMER_MESSAGE":
                    break
            if seqs != list(range(1, len(seqs) + 1)):
                bad.append(session)

        started = time.perf_counter()
        sends = [request("customer_message", bearer, {"channel_session_id": s, "text": "hi"})
                 for s in sessions]  # fmt: skip
        await asyncio.gather(
            *(_one_connection(port, sends[k::connections]) for k in range(connections)),
            *(until_message(s, w) for s, w in zip(sessions, sockets, strict=True)),
        )
        elapsed = time.perf_counter() - started
        for each in sockets:
            await each.close()
        return {"sockets": len(sockets), "seconds": elapsed, "out_of_order": len(bad)}

    return asyncio.run(main())


def measure(*, conversations: int, requests: int, connections: int, sockets: int) -> dict[str, Any]:
    results: dict[str, Any] = {"conversations": conversations, "connections": connections}
    connector = issue(_KEY, "connector", "bench", ttl_s=3600, channels=["WEB"])
    ping = [request("ping", connector, {})] * requests
    bare_port = support.free_port()
    python = sys.executable
    with serving([python, "-m", "uvicorn", "bench.web:bare", "--port", str(bare_port),
                  "--log-level", "warning", "--no-access-log"], bare_port, {}):  # fmt: skip
        results["bare"] = rate(bare_port, ping, connections)
    with support.scratch("web") as directory:
        web_port = support.free_port()
        sections = {"placement": {"per_host": conversations}, "web": {"listen": f"127.0.0.1:{web_port}"}}
        config = support.write_config(Path(directory), sections)
        with support.engine(config) as running, Gateway.connect(config) as gw:
            population = open_conversations(gw, conversations, prefix="w", batch=250, window=2)
            join_agents(gw, population, prefix="w")
            settle(running)
            command = [python, "-m", "runtime.cli", "web", "--config", str(config)]
            with serving(command, web_port, {KEY_VARIABLE: _KEY}):
                results["ping"] = rate(web_port, ping, connections)
                sessions = population.session_ids
                # each session's first request looks up its channel once (not measured)
                rate(web_port, [request("customer_message", connector,
                                        {"channel_session_id": s, "text": "first"})
                                for s in sessions], connections)  # fmt: skip
                messages = [
                    request("customer_message", connector,
                            {"channel_session_id": sessions[n % len(sessions)], "text": f"m{n}"})
                    for n in range(requests)
                ]  # fmt: skip
                results["customer_message"] = rate(web_port, messages, connections)
                settle(running)
                results["websockets"] = sockets_rate(
                    web_port, connector, sessions[:sockets], connections
                )
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its figures; 1 if leftover processes had to be killed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    options = parser.parse_args(argv)
    with support.interrupts_raise():
        results = measure(
            conversations=options.conversations, requests=options.requests,
            connections=options.connections, sockets=min(options.sockets, options.conversations),
        )  # fmt: skip
    if options.json:
        print(json.dumps(results, indent=2))
        return 1 if support.leftovers() else 0
    print(f"keep-alive connections           {results['connections']}")
    for name, label in (("bare", "bare ASGI (reference)"), ("ping", "cx web ping"),
                        ("customer_message", "cx web customer_message")):  # fmt: skip
        figure = results[name]
        print(f"{label:32} {figure['per_s']:7.0f} requests/s ({figure['ok']} answered 200)")
    ws = results["websockets"]
    print(
        f"WebSocket subscribers            {ws['sockets']} held; one message each delivered to"
        f" all in {ws['seconds']:.2f} s; out of order or with a gap: {ws['out_of_order']}"
    )
    leftover = support.leftovers()
    if leftover:
        print(f"killed leftover processes: {sorted(leftover)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
