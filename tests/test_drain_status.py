"""An operator sees a drain: ``cx status`` says the engine is draining, in text and JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from runtime import control
from runtime.cli import main
from runtime.gateway import Gateway
from tests.conftest import MakeGateway, storage_config


class Lent:
    """The test's engine lent to ``cx status`` (which closes what it connects to)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def __enter__(self) -> Gateway:
        return self.gateway

    def __exit__(self, *exc: object) -> None:
        pass


@pytest.fixture
def engine(
    make_gateway: MakeGateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Gateway, str]:
    config: dict[str, Any] = storage_config(tmp_path / "engine")
    gw = make_gateway(**config)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setattr(control, "connect", lambda _config: Lent(gw))
    return gw, str(path)


def test_cx_status_shows_a_draining_engine(
    engine: tuple[Gateway, str], capsys: pytest.CaptureFixture[str]
) -> None:
    gw, config = engine
    assert main(["status", "--config", config]) == 0
    before = capsys.readouterr().out.splitlines()[0]
    gw.drain_engine()

    assert main(["status", "--config", config]) == 0
    text = capsys.readouterr().out.splitlines()[0]
    assert main(["status", "--json", "--config", config]) == 0
    as_json = json.loads(capsys.readouterr().out)

    assert before.split()[:2] == ["engine", "running,"]
    assert text.split()[:2] == ["engine", "draining"]
    assert as_json["draining"] is True
