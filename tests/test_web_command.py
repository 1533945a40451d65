"""``cx token`` and ``cx web``'s checks of its configuration."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import yaml

from infra.config import ConfigError, load_config
from runtime.cli import main
from runtime.control import NotRunningError
from runtime.gateway import Gateway
from runtime.web import command
from runtime.web.command import run_web, tls_files
from runtime.web.tokens import KEY_VARIABLE, AccessRole, verify
from tests.conftest import storage_config

KEY = "cli-signing-key-" + "7" * 32


def config(tmp_path: Path, web: dict[str, object]) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"web": web}))
    return path


def test_cx_token_prints_a_token_for_the_role_and_subject(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    path = config(tmp_path, {})
    assert main(["token", "--config", str(path), "--role", "agent", "--subject", "alice"]) == 0
    claims = verify(KEY, capsys.readouterr().out.strip())
    assert (claims.role, claims.subject) == (AccessRole.AGENT, "alice")


def test_cx_token_without_a_key_names_the_setting_and_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(KEY_VARIABLE, raising=False)
    path = config(tmp_path, {})
    assert main(["token", "--config", str(path), "--role", "operator", "--subject", "ops"]) == 2
    assert "web.token_key" in capsys.readouterr().err


def test_a_short_signing_key_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"web\.token_key"):
        load_config(config(tmp_path, {"token_key": "too-short"}))


def test_tls_needs_both_the_certificate_and_the_key(tmp_path: Path) -> None:
    settings = load_config(config(tmp_path, {"tls_certfile": str(tmp_path / "cert.pem")}))
    with pytest.raises(ConfigError, match=r"web\.tls_keyfile"):
        tls_files(settings)


def test_the_web_gateway_listens_on_loopback_by_default(tmp_path: Path) -> None:
    assert load_config(config(tmp_path, {})).web.listen.startswith("127.0.0.1:")


@pytest.mark.parametrize(("listen", "warned"), [("0.0.0.0:7799", True), ("127.0.0.1:7799", False)])
def test_listening_beyond_loopback_without_tls_logs_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
    listen: str, warned: bool,
) -> None:  # fmt: skip
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    monkeypatch.setattr(command, "admin_probe", lambda settings: lambda: "no engine here")
    path = config(tmp_path, {"listen": listen})
    with pytest.raises(NotRunningError):  # no engine runs: it stops before serving
        run_web(path)
    assert ("beyond loopback without TLS" in capfd.readouterr().err) is warned


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made with openssl (the test skips without it)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def test_cx_web_serves_https_with_the_configured_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed(tmp_path)
    listening = socket.socket()  # bound and listening first: a request waits in its backlog
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    port = listening.getsockname()[1]
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    monkeypatch.setattr(command, "admin_probe", lambda settings: lambda: None)
    servers: list[uvicorn.Server] = []

    def serve(app: Any, **options: Any) -> None:  # run_web's uvicorn.run, on a thread of its own
        servers.append(uvicorn.Server(uvicorn.Config(app, **options)))

    monkeypatch.setattr(uvicorn, "run", serve)
    path = config(tmp_path, {"listen": f"127.0.0.1:{port}", "tls_certfile": str(cert),
                             "tls_keyfile": str(key)})  # fmt: skip
    engine = storage_config(tmp_path / "engine")
    assert run_web(path, connect=lambda _: Gateway.embedded(engine)) == 0
    [server] = servers
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    try:
        trusted = ssl.create_default_context(cafile=str(cert))
        url = f"https://127.0.0.1:{port}/pages/chat.html"
        with urllib.request.urlopen(url, context=trusted, timeout=30) as response:
            assert (response.status, "start_session" in response.read().decode()) == (200, True)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        listening.close()
    assert not thread.is_alive()
