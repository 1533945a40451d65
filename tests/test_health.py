"""The daemon's HTTP endpoint: /healthz, /readyz and /metrics (runtime.metrics_server)."""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.config import load_config
from infra.storage_probe import archive_problem
from runtime.gateway import Gateway, UnavailableError
from runtime.metrics_server import DRAINING, EngineProbe, MetricsServer, serve, start
from tests.conftest import MakeGateway, storage_config
from tests.multiproc_support import free_port, system_pids, write_config
from tests.test_cli import cx


class Borrowed:
    """The test's gateway lent to the probe: closing is the test's own business."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def metrics(self) -> dict[str, Any]:
        return self.gateway.metrics()

    def drain_status(self) -> dict[str, Any]:
        return self.gateway.drain_status()

    def drain_engine(self) -> dict[str, Any]:
        return self.gateway.drain_engine()

    def close(self) -> None:
        pass


class Silent:
    """An engine whose actors never answer (until released)."""

    def __init__(self) -> None:
        self.released = threading.Event()

    def metrics(self) -> dict[str, Any]:
        self.released.wait(10)
        raise TimeoutError("no answer")

    def drain_status(self) -> dict[str, Any]:
        return {"draining": False, "live": 0}

    def drain_engine(self) -> dict[str, Any]:
        return {"draining": True, "live": 0}

    def close(self) -> None:
        pass


def get(server: MetricsServer, path: str) -> tuple[int, bytes]:
    url = f"http://127.0.0.1:{server.server_address[1]}{path}"
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return int(answer.status), bytes(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    return {
        **storage_config(tmp_path / "engine"),
        "metrics": {"port": free_port(), "ready_timeout_seconds": 0.5},
    }


@pytest.fixture
def endpoint(make_gateway: MakeGateway, config: dict[str, Any]) -> Iterator[MetricsServer]:
    gw = make_gateway(**config)
    settings = load_config(config)
    server = serve(settings, EngineProbe(lambda: Borrowed(gw), 5))
    assert server is not None
    yield server
    server.stop()


def test_healthz_answers_while_the_process_serves(endpoint: MetricsServer) -> None:
    assert get(endpoint, "/healthz") == (200, b"ok\n")


def test_readyz_is_ready_when_every_actor_answers_and_the_archive_takes_writes(
    endpoint: MetricsServer,
) -> None:
    status, body = get(endpoint, "/readyz")
    assert (status, json.loads(body)) == (
        200,
        {
            "ready": True,
            "problems": {"actors": None, "journal": None, "archive": None, "draining": None},
        },
    )


def test_readyz_fails_with_503_when_the_archive_is_unwritable(
    endpoint: MetricsServer, config: dict[str, Any]
) -> None:
    holder = sqlite3.connect(config["storage"]["archive"], isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another writer holds the archive
    try:
        status, body = get(endpoint, "/readyz")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    answer = json.loads(body)
    assert (status, answer["ready"], answer["problems"]["actors"]) == (503, False, None)
    assert "refuses writes: database is locked" in answer["problems"]["archive"]


def test_readyz_fails_with_503_when_an_actor_does_not_answer_in_time(
    config: dict[str, Any],
) -> None:
    silent = Silent()
    settings = load_config(config)
    server = serve(settings, EngineProbe(lambda: silent, settings.metrics.ready_timeout_seconds))
    assert server is not None
    try:
        status, body = get(server, "/readyz")
    finally:
        silent.released.set()
        server.stop()
    assert status == 503
    assert json.loads(body)["problems"]["actors"] == (
        "the engine's actors did not all answer within 0.5 s"
    )


def test_readyz_fails_with_503_while_a_journal_refuses_writes(config: dict[str, Any]) -> None:
    class FailingJournal(Silent):
        def metrics(self) -> dict[str, Any]:
            return {"journal": {"failing_hosts": 1}}

    settings = load_config(config)
    server = serve(settings, EngineProbe(FailingJournal, 5))
    assert server is not None
    try:
        status, body = get(server, "/readyz")
    finally:
        server.stop()
    assert (status, json.loads(body)["problems"]["journal"]) == (
        503,
        "the journal of 1 conversation host(s) refuses writes (see the log)",
    )


class Restarting(Borrowed):
    """Engines the daemon restarts: each restart is the next one, not draining."""

    def __init__(self, *gateways: Gateway) -> None:
        super().__init__(gateways[0])
        self.later = list(gateways[1:])

    def restart(self) -> None:
        self.gateway = self.later.pop(0)


def test_readyz_fails_with_503_draining_while_the_engine_drains(
    make_gateway: MakeGateway, config: dict[str, Any]
) -> None:
    gw = make_gateway(**config)
    server = serve(load_config(config), EngineProbe(lambda: Borrowed(gw), 5))
    assert server is not None
    try:
        before, _ = get(server, "/readyz")
        gw.drain_engine()
        status, body = get(server, "/readyz")
    finally:
        server.stop()
    answer = json.loads(body)
    assert (before, status, answer["ready"]) == (200, 503, False)
    assert answer["problems"] == {
        "actors": None, "journal": None, "archive": None, "draining": DRAINING
    }  # fmt: skip


def test_a_drain_outlives_a_restart_of_the_engine_by_the_daemon(
    make_gateway: MakeGateway, config: dict[str, Any]
) -> None:
    engines = Restarting(make_gateway(), make_gateway())
    server = serve(load_config(config), EngineProbe(lambda: engines, 5))
    assert server is not None
    try:
        engines.gateway.drain_engine()
        get(server, "/readyz")
        engines.restart()
        assert engines.gateway.drain_status()["draining"] is False
        status, body = get(server, "/readyz")
    finally:
        server.stop()
    assert (status, json.loads(body)["problems"]["draining"]) == (503, DRAINING)
    assert engines.gateway.drain_status()["draining"] is True
    with pytest.raises(UnavailableError, match="draining"):
        engines.gateway.start_session("cust-1", "WEB", "visitor-1")


def test_metrics_serves_the_engines_figures(endpoint: MetricsServer) -> None:
    status, body = get(endpoint, "/metrics")
    assert status == 200
    assert b"cx_up 1.0" in body.splitlines()
    assert b'cx_agents{presence="READY"} 0.0' in body.splitlines()


def test_the_endpoint_is_off_without_a_port(tmp_path: Path) -> None:
    settings = load_config(storage_config(tmp_path))
    assert settings.metrics.port is None
    assert serve(settings, EngineProbe(Silent, 1)) is None


@pytest.mark.multiproc
def test_the_daemon_serves_health_and_metrics_until_it_stops(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, metrics={"port": port})
    started = cx("start", "--config", str(config), cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    try:
        url = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(f"{url}/healthz", timeout=10) as answer:
            assert answer.status == 200
        with urllib.request.urlopen(f"{url}/readyz", timeout=10) as answer:
            assert json.loads(answer.read())["ready"] is True
        with urllib.request.urlopen(f"{url}/metrics", timeout=10) as answer:
            lines = answer.read().decode().splitlines()
        assert "cx_up 1.0" in lines
        assert 'cx_restarts_total{kind="engine"} 0.0' in lines
    finally:
        stopped = cx("stop", "--config", str(config), cwd=tmp_path)
    assert stopped.returncode == 0, stopped.stderr
    assert not system_pids(config)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)


def test_a_postgres_archive_is_writable_until_it_turns_read_only(postgres_dsn: str) -> None:
    import psycopg

    storage = load_config({"storage": {"postgres": postgres_dsn}}).storage
    assert archive_problem(storage, timeout_s=1) is None
    with psycopg.connect(postgres_dsn, autocommit=True) as db:
        name = db.execute("SELECT current_database()").fetchone()
        assert name is not None
        db.execute(f'ALTER DATABASE "{name[0]}" SET default_transaction_read_only = on')
    assert archive_problem(storage, timeout_s=1) == (
        "the PostgreSQL archive is read-only (a standby, or default_transaction_read_only)"
    )


def test_a_taken_port_leaves_the_engine_without_an_endpoint(config: dict[str, Any]) -> None:
    settings = load_config(config)
    with socket.socket() as taken:
        taken.bind((settings.metrics.bind, settings.metrics.port or 0))
        taken.listen()
        assert start(settings, "config.yaml", restarts=dict) is None
