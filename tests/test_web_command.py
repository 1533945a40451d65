"""``cx token`` and ``cx web``'s checks of its configuration."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from infra.config import ConfigError, load_config
from runtime.cli import main
from runtime.control import NotRunningError
from runtime.web.command import run_web, tls_files
from runtime.web.tokens import KEY_VARIABLE, AccessRole, verify

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
    path = config(tmp_path, {"listen": listen})
    with pytest.raises(NotRunningError):  # no engine runs: it stops before serving
        run_web(path)
    assert ("beyond loopback without TLS" in capfd.readouterr().err) is warned
