"""Shared fixtures for the gateway tests: embedded gateways on private storage.

``make_gateway(**overrides)`` builds ``Gateway.embedded`` on a fresh directory under
``tmp_path`` (its own archive and journal), with the given config sections deep-merged over
the test defaults, and closes every gateway it made at teardown. ``seed`` and
``virtual_time`` are passed to ``Gateway.embedded``; every other keyword is a config section
(``timers``, ``routing``, ``bot``, ...), as in config.yaml.

In embedded mode every gateway call runs the actors until the system is quiescent, so an
engine live-lock (messages bouncing forever) would hang the test run. :func:`watchdog` turns
that into a test failure: a SIGALRM timer raises :class:`EngineHung`, a ``BaseException`` so
that the engine's own ``except Exception`` handlers cannot swallow it, and it keeps firing
every 0.1 s until the block is left. Tests that use ``make_gateway`` run under a watchdog of
:data:`TEST_TIME_LIMIT_S` seconds.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import os
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import structlog

from runtime.gateway import Gateway
from tests import pg_cluster

MakeGateway = Callable[..., Gateway]
#: A scenario takes milliseconds; this only catches an engine that never becomes quiescent.
TEST_TIME_LIMIT_S = 20.0


class EngineHung(BaseException):
    """The engine did not become quiescent in time (raised by :func:`watchdog`)."""


@contextlib.contextmanager
def watchdog(seconds: float, what: str = "the block") -> Iterator[None]:
    """Raise :class:`EngineHung` in the main thread if the block runs longer than ``seconds``."""

    def fire(signum: int, frame: object) -> None:
        raise EngineHung(
            f"{what} did not finish within {seconds:g} s: the engine never became quiescent"
        )

    previous = signal.signal(signal.SIGALRM, fire)
    started = time.monotonic()
    outer_delay, outer_interval = signal.setitimer(signal.ITIMER_REAL, seconds, 0.1)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_delay > 0:  # an enclosing watchdog keeps running
            remaining = max(outer_delay - (time.monotonic() - started), 0.001)
            signal.setitimer(signal.ITIMER_REAL, remaining, outer_interval)


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``: nested mappings are merged, anything else replaced."""
    merged: dict[str, Any] = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def storage_config(directory: Path) -> dict[str, Any]:
    """The base config of every test gateway: private storage, quiet logs."""
    directory.mkdir(parents=True, exist_ok=True)
    return {
        "storage": {
            "archive": str(directory / "archive.sqlite3"),
            "journal": str(directory / "journal"),
        },
        "logging": {"level": "warning"},
    }


def names(gw: Gateway, conversation_id: str, *, after_seq: int = 0) -> list[str]:
    """The names of the conversation's events, in sequence order."""
    return [event["name"] for event in gw.events(conversation_id, after_seq=after_seq)]


def desks_config() -> dict[str, Any]:
    """``CX_TEST_ROOM_DESKS=N``: every embedded engine of the run has N room desks (the room,
    recovery and drain tests are run so with 2 as well as with the default 1)."""
    count = os.environ.get("CX_TEST_ROOM_DESKS")
    return {"placement": {"room_desks": int(count)}} if count else {}


@pytest.fixture
def make_gateway(tmp_path: Path) -> Iterator[MakeGateway]:
    made: list[Gateway] = []
    counter = itertools.count(1)

    def factory(*, seed: int = 0, virtual_time: bool = True, **overrides: Any) -> Gateway:
        directory = tmp_path / f"gateway-{next(counter)}"
        config = deep_merge(deep_merge(storage_config(directory), desks_config()), overrides)
        gateway = Gateway.embedded(config, virtual_time=virtual_time, seed=seed)
        made.append(gateway)
        return gateway

    with watchdog(TEST_TIME_LIMIT_S, "the test"):
        yield factory
        for gateway in reversed(made):
            gateway.close()


@pytest.fixture(autouse=True)
def fresh_logging() -> Iterator[None]:
    """Each test starts with structlog's defaults: a test that configured logging to a stream
    pytest has since closed must not make a later test's log lines fail."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


def salvage_storage(root: Path, *, salvage: bool = False) -> dict[str, Any]:
    """Private storage under ``root``, with ``storage.salvage_journal`` as given."""
    return {
        "storage": {
            "archive": str(root / "archive.sqlite3"),
            "journal": str(root / "journal"),
            "salvage_journal": salvage,
        },
        "logging": {"level": "error"},
    }


# ---------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The connection string of a PostgreSQL server for this test session: the one named by
    ``CX_TEST_POSTGRES`` (``.ci/run`` starts one), else a throwaway cluster started here and
    stopped at the end; the test is skipped where PostgreSQL is not installed (never in CI,
    which sets the variable)."""
    given = os.environ.get(pg_cluster.ENV)
    if given:
        yield given
        return
    if pg_cluster.bin_dir() is None:
        pytest.skip(f"PostgreSQL is not installed and {pg_cluster.ENV} is not set")
    directory = pg_cluster.new_directory()
    try:
        yield pg_cluster.start(directory)
    finally:
        pg_cluster.stop(directory)


@pytest.fixture
def postgres_dsn(postgres_server: str) -> Iterator[str]:
    """A new, empty database on the session's server, dropped after the test."""
    with pg_cluster.fresh_database(postgres_server) as dsn:
        yield dsn


@pytest.fixture(params=["files", "postgres"])
def journal_at(request: pytest.FixtureRequest) -> str | None:
    """Where a test's journal and archive are, for tests that run on both backends: ``None``
    for files and SQLite (``storage.postgres`` unset), else a fresh PostgreSQL database's
    connection string."""
    if request.param == "files":
        return None
    dsn: str = request.getfixturevalue("postgres_dsn")
    return dsn
