"""Security checks.

- No listening socket of a running system (admin, logger, every actor process, the processes
  that joined it, the network gateway) is bound beyond loopback by default, and none accepts
  a connection on another address of this machine.
- The network gateway refuses a wrong or missing token before it looks at anything else: before
  authentication no operation is parsed or carried out, big frames are not read, and the
  connection is closed after 3 failures.
- A connection that sends garbage is closed after a bounded number of errors.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from infra import proctitle
from infra.config import ConfigError, load_config
from runtime import procs
from runtime.gateway import Gateway
from runtime.netgateway import Limits, NetGateway, serve
from runtime.netgateway import connection as connection_module
from tests.conftest import MakeGateway
from tests.multiproc_support import running_system, write_config

TOKEN = "security-token-0123456789abcdef"


def frame(value: Any) -> bytes:
    body = msgpack.packb(value, use_bin_type=True)
    return struct.pack(">I", len(body)) + body


def read_frames(sock: socket.socket, *, count: int | None = None) -> tuple[list[Any], bool]:
    """Every frame the server sends until it closes (True), goes quiet for 2 s (False), or
    ``count`` frames have come."""
    data, closed = b"", False
    sock.settimeout(2.0)
    while count is None or len(_split(data)) < count:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            closed = True
            break
        if not chunk:
            closed = True
            break
        data += chunk
    return _split(data), closed


def _split(data: bytes) -> list[Any]:
    frames = []
    while len(data) >= 4:
        (length,) = struct.unpack(">I", data[:4])
        if len(data) < 4 + length:
            break
        frames.append(msgpack.unpackb(data[4 : 4 + length], raw=False))
        data = data[4 + length :]
    return frames


def _non_loopback_addresses() -> list[str]:
    """Addresses of this machine other than loopback (from the routes the kernel would use)."""
    found = set()
    for family, target in ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1")):
        with contextlib.suppress(OSError), socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((target, 9))
            found.add(probe.getsockname()[0])
    with contextlib.suppress(OSError):
        for info in socket.getaddrinfo(socket.gethostname(), None):
            found.add(str(info[4][0]))
    return sorted(a for a in found if not ipaddress.ip_address(a.split("%")[0]).is_loopback)


# ------------------------------------------------------------------------------ sockets


def test_the_defaults_listen_on_loopback_only() -> None:
    settings = load_config(None)
    assert settings.system.bind == "127.0.0.1" and settings.system.allow_wide_bind is False
    assert settings.gateway.listen.rpartition(":")[0] == "127.0.0.1"
    assert settings.gateway.token is None  # no default token: `cx gateway` refuses to start
    with pytest.raises(ConfigError, match="allow_wide_bind"):
        load_config({"system": {"bind": "0.0.0.0"}})


@pytest.mark.multiproc
def test_no_listening_socket_of_a_running_system_is_reachable_beyond_loopback(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, placement={"per_host": 1})
    settings = load_config(config)
    listen_host = settings.gateway.listen.rpartition(":")[0]  # the default: loopback
    with running_system(config):
        server = serve(lambda: Gateway.connect(config), f"{listen_host}:0", TOKEN)
        try:
            # Traffic, so that conversation hosts and an agent host exist.
            with Gateway.connect(config) as gw:
                for n in range(3):
                    gw.start_session(f"cust-{n}", "WEB", f"v{n}")
                gw.agent_login("alice")
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
                sock.sendall(frame({"op": "auth", "args": {"token": TOKEN}, "id": 1}))
                sock.sendall(frame({"op": "status", "id": 2}))
                assert read_frames(sock, count=2)[0][-1]["ok"] is True

            admins = procs.listening_on(settings.system.admin_port)
            assert admins, "nobody listens on the admin port"
            session = procs.session_of(min(admins))
            assert session is not None
            pids = procs.session_members(session) | {os.getpid()}
            assert len(pids) >= 10, pids  # admin, logger, 4 actors, 3 hosts, an agent host, us
            listening = procs.listening(pids)
            sockets = {listener for found in listening.values() for listener in found}
            ports = {listener.port for listener in sockets}
            assert settings.system.admin_port in ports and server.port in ports
            wide = {
                pid: [s for s in found if not ipaddress.ip_address(s.address).is_loopback]
                for pid, found in listening.items()
            }
            assert not any(wide.values()), f"listening beyond loopback: {wide}"
            # Each process of the system that listens at all (actors, admin, logger).
            assert sum(1 for found in listening.values() if found) >= 9, listening
            # Each actor process says what it is (infra.proctitle).
            titles = {" ".join(procs.cmdline(pid)).rstrip() for pid in pids}
            for role in ("topic-monitor", "router", "agent-supervisor"):
                assert f"cx: {role} --config {config}" in titles, titles
            hosts = [t for t in titles if t.startswith("cx: host conversations host-")]
            assert len(hosts) >= 3 and all(t.endswith(f"--config {config}") for t in hosts)

            for address in _non_loopback_addresses():
                for port in sorted(ports):
                    with socket.socket(
                        socket.AF_INET6 if ":" in address else socket.AF_INET
                    ) as probe:
                        probe.settimeout(1.0)
                        result = probe.connect_ex((address, port))
                    assert result != 0, f"port {port} accepts a connection on {address}"
        finally:
            server.close()


# ------------------------------------------------------------------------------ process titles


_TITLED = """
import sys
import setproctitle
from infra.proctitle import set_actor_title

class TopicMonitor:
    myAddress = "ActorAddr-(T|:4321)"

class Host:
    myAddress = "ActorAddr-(T|:4321)"
    kind = "conversations"
    host_id = "host-7"

setproctitle.setproctitle(f"{sys.argv[1]} ActorAddr-(T|:4321)")  # as Thespian titles it
set_actor_title(TopicMonitor() if sys.argv[1] == "TopicMonitor" else Host(), "/etc/cx.yaml")
print("titled", flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize(
    ("actor", "title"),
    [
        ("TopicMonitor", "cx: topic-monitor --config /etc/cx.yaml"),
        ("Host", "cx: host conversations host-7 --config /etc/cx.yaml"),
    ],
)
def test_an_actor_process_is_titled_with_its_role(actor: str, title: str) -> None:
    root = Path(__file__).resolve().parent.parent
    process = subprocess.Popen(
        [sys.executable, "-c", _TITLED, actor],
        cwd=root,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == b"titled\n"
        line = procs.cmdline(process.pid)
        assert " ".join(line).rstrip() == title
        assert proctitle.is_engine_title(line)
    finally:
        process.kill()
        process.communicate(timeout=10)


def test_an_actor_sharing_its_process_leaves_the_title_alone() -> None:
    class Router:
        myAddress = "ActorAddr-/A~a~a"  # noqa: N815 (Thespian's name) not in this title

    before = proctitle.get_title()
    proctitle.set_actor_title(Router(), "/etc/cx.yaml")
    assert proctitle.get_title() == before
    assert proctitle.actor_role(Router()) == "router"


# ------------------------------------------------------------------------------ the token


@pytest.fixture
def gateway_server(make_gateway: MakeGateway) -> Iterator[Callable[..., NetGateway]]:
    servers: list[NetGateway] = []

    def start(limits: Limits | None = None) -> NetGateway:
        server = serve(lambda: make_gateway(seed=1), "127.0.0.1:0", TOKEN, limits=limits)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def _status(port: int) -> dict[str, Any]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(frame({"op": "auth", "args": {"token": TOKEN}, "id": 1}))
        sock.sendall(frame({"op": "status", "id": 2}))
        answers, _ = read_frames(sock, count=2)
    assert answers[-1]["ok"] is True, answers
    return dict(answers[-1]["result"])


@pytest.mark.parametrize(
    "auth",
    [
        {"op": "auth", "id": 1},  # no args
        {"op": "auth", "args": {}, "id": 1},  # no token
        {"op": "auth", "args": {"token": ""}, "id": 1},
        {"op": "auth", "args": {"token": TOKEN[:-1]}, "id": 1},  # a prefix
        {"op": "auth", "args": {"token": TOKEN + "x"}, "id": 1},
        {"op": "auth", "args": {"token": TOKEN.upper()}, "id": 1},
        {"op": "auth", "args": {"token": TOKEN.encode()}, "id": 1},  # binary, not a string
        {"op": "auth", "args": {"token": None}, "id": 1},
        {"op": "auth", "args": {"token": TOKEN, "extra": 1}, "id": 1},
    ],
    ids=["no-args", "no-token", "empty", "prefix", "longer", "case", "binary", "nil", "extra-arg"],
)
def test_a_wrong_or_missing_token_is_refused(
    gateway_server: Callable[..., NetGateway], auth: dict[str, Any]
) -> None:
    server = gateway_server()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(frame(auth))
        sock.sendall(frame({"op": "start_session", "args": {}, "id": 2}))
        sock.sendall(frame({"op": "ping", "id": 3}))
        sock.sendall(frame({"op": "status", "id": 4}))  # never reached: closed after 3
        answers, closed = read_frames(sock)
    assert [a["error"]["type"] for a in answers] == ["auth", "auth", "auth"], answers
    assert TOKEN not in repr(answers)
    assert closed and "closing" in answers[-1]["error"]["message"]
    assert server.stats["auth_failures"] == 3


def test_nothing_but_auth_is_parsed_or_carried_out_before_authentication(
    gateway_server: Callable[..., NetGateway], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = gateway_server()
    checked: list[str] = []
    real_check_args = connection_module.check_args

    def spy(spec: Any, args: Any, request_id: Any) -> dict[str, Any]:
        checked.append(spec.name)
        return real_check_args(spec, args, request_id)

    monkeypatch.setattr(connection_module, "check_args", spy)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        # Well-formed operations, and one with arguments of the wrong type: the answer is
        # "authenticate first" every time, never bad_argument, and nothing is carried out.
        sock.sendall(
            frame(
                {
                    "op": "start_session",
                    "args": {"customer_id": "c", "channel": "WEB", "identifier": "v"},
                    "id": 1,
                }
            )
        )
        sock.sendall(frame({"op": "agent_login", "args": {"agent_id": 7}, "id": 2}))
        sock.sendall(frame({"op": "subscribe_agent", "args": {"agent_id": "alice"}, "id": 3}))
        answers, closed = read_frames(sock)
    assert [(a["id"], a["error"]["type"]) for a in answers] == [
        (1, "auth"),
        (2, "auth"),
        (3, "auth"),
    ]
    assert all("authenticate first" in a["error"]["message"] for a in answers)
    assert closed
    assert checked == []  # no operation's arguments were looked at
    assert server.worker.executed == 0  # nothing reached the engine
    assert _status(server.port)["conversations"] == {}
    assert checked == ["auth", "status"]


def test_a_big_frame_before_authentication_is_not_read(
    gateway_server: Callable[..., NetGateway],
) -> None:
    server = gateway_server()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(struct.pack(">I", 10_000_000))
        sent = 0
        with contextlib.suppress(OSError):
            sock.settimeout(0.2)
            for _ in range(200):  # 12.8 MB offered; the server reads none of it
                sent += sock.send(b"\x00" * 65536)
        answers, closed = read_frames(sock)
    assert closed
    assert answers and answers[0]["error"]["type"] == "auth", answers
    assert "10000000 bytes" in answers[0]["error"]["message"]
    assert sent < 10_000_000  # the kernel's buffers filled up: nobody was reading


def test_a_connection_must_authenticate_within_its_time(
    gateway_server: Callable[..., NetGateway],
) -> None:
    server = gateway_server(Limits(auth_timeout_s=0.3))
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        started = time.monotonic()
        sock.sendall(b"\x00\x00")  # half a length prefix, then nothing
        answers, closed = read_frames(sock)
    assert closed and time.monotonic() - started < 3.0
    assert (
        answers[0]["error"]["type"] == "auth" and "within 0.3 s" in answers[0]["error"]["message"]
    )


def test_hundreds_of_connections_without_a_token_keep_no_client_out(
    gateway_server: Callable[..., NetGateway],
) -> None:
    """300 sockets held open without authenticating (more than the 256 authenticated
    connections allowed): the server keeps at most its allowance of them, and a client with
    the token still gets in at once."""
    server = gateway_server()
    limits = server.limits
    idle: list[socket.socket] = []
    try:
        for _ in range(300):
            idle.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
        deadline = time.monotonic() + 30
        while server.stats["accepted"] < 300:
            assert time.monotonic() < deadline, server.stats
            time.sleep(0.01)
        assert server.admission.pending <= limits.max_unauthenticated_per_peer
        assert server.stats["evicted"] == 300 - limits.max_unauthenticated_per_peer
        assert _status(server.port)["conversations"] == {}  # authenticated, served
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(frame({"op": "auth", "args": {"token": TOKEN}, "id": 1}))
            answers, _ = read_frames(sock, count=1)
            assert answers == [{"id": 1, "ok": True, "result": answers[0]["result"]}], answers
    finally:
        for sock in idle:
            sock.close()


@pytest.mark.parametrize("token", ["Q", "Q7w-secret-1234"], ids=["one", "fifteen"])
def test_a_short_token_is_refused_at_start_up_naming_the_key(
    tmp_path: Path, token: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from runtime.cli import main

    with pytest.raises(ConfigError) as raised:
        load_config({"gateway": {"token": token}})
    assert raised.value.key == "gateway.token"
    assert f"{len(token)} characters is too short" in raised.value.problem
    assert token not in str(raised.value).replace("gateway.token", "")  # never shown
    config = tmp_path / "config.yaml"
    config.write_text(f"gateway: {{token: {token!r}}}\nlogging: {{level: warning}}\n")
    assert main(["gateway", "--config", str(config)]) == 2
    error = capsys.readouterr().err
    assert "gateway.token" in error and "too short" in error and "Traceback" not in error
    assert load_config({"gateway": {"token": "x" * 16}}).gateway.token == "x" * 16


def test_a_short_token_from_the_environment_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runtime.netgateway import resolve_token

    monkeypatch.setenv("CX_GATEWAY_TOKEN", "abc")
    with pytest.raises(ConfigError, match=r"gateway\.token \(CX_GATEWAY_TOKEN\): a token of 3"):
        resolve_token(load_config(None))
    with pytest.raises(ValueError, match="too short"):
        NetGateway(Gateway.embedded, token="abc")


# ------------------------------------------------------------------------------ garbage


@pytest.mark.parametrize("seed", range(5))
def test_a_connection_that_sends_garbage_is_closed_after_a_bounded_number_of_errors(
    gateway_server: Callable[..., NetGateway], seed: int
) -> None:
    """Random garbage after authenticating: well-framed junk, never a valid request. The
    connection is closed after 16 consecutive errors; the server keeps serving others."""
    server = gateway_server()
    chance = random.Random(seed)
    junk = []
    for _ in range(200):
        kind = chance.randrange(4)
        if kind == 0:
            body = bytes(chance.randrange(256) for _ in range(chance.randrange(1, 40)))
        elif kind == 1:
            body = msgpack.packb([chance.random() for _ in range(3)])
        elif kind == 2:
            body = msgpack.packb({"op": f"op-{chance.randrange(10**6)}", "id": 1})
        else:
            body = msgpack.packb({"op": "hold", "args": {"seconds": "x"}, "id": 2})
        junk.append(struct.pack(">I", len(body)) + body)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(frame({"op": "auth", "args": {"token": TOKEN}, "id": 0}))
        with contextlib.suppress(OSError):  # the server may close while we still send
            for piece in junk:
                sock.sendall(piece)
        answers, closed = read_frames(sock)
    errors = [a for a in answers if a.get("ok") is False]
    assert closed
    assert 1 <= len(errors) <= 16, len(errors)
    assert (
        "closing after 16 consecutive errors" in errors[-1]["error"]["message"] or len(errors) < 16
    )
    assert _status(server.port)["conversations"] == {}
    deadline = time.monotonic() + 5
    while server.connections:
        assert time.monotonic() < deadline
        time.sleep(0.01)
