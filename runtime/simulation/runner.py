"""Running a scenario end to end: engine, driver, archive, summary."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.archive import Archive
from infra.config.checks import InvalidValue
from runtime.gateway import Gateway
from runtime.simulation.checks import RunChecks
from runtime.simulation.driver import Driver
from runtime.simulation.driver_base import Progress
from runtime.simulation.kpis import kpis
from runtime.simulation.metrics import ConversationOutcome, EventLog, summarise
from runtime.simulation.model import Scenario
from runtime.simulation.reference import add_reference
from runtime.simulation.scenario import ScenarioError, load_scenario
from runtime.simulation.scenario_values import parse_duration
from runtime.simulation.stream import EventStream

__all__ = ["STORAGE_MODES", "SimulationResult", "run"]

#: ``memory``: no journal, the archive in memory (the default); ``files``: both on disk, as a
#: running engine keeps them (what ``archive=`` needs, and faults that crash hosts).
STORAGE_MODES = ("memory", "files")

ScenarioSource = str | os.PathLike[str] | Mapping[str, Any] | Scenario


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """What :func:`run` returns.

    ``summary`` is JSON-ready; everything in it is determined by the scenario and its seed
    except ``summary["performance"]`` (wall-clock figures). ``archive_path`` is the SQLite
    archive if it was kept (``archive=`` given), else None (it was a temporary file).
    ``conversations`` holds every conversation's outcome, in creation order.
    """

    scenario: Scenario
    summary: dict[str, Any]
    conversations: tuple[ConversationOutcome, ...]
    archive_path: Path | None
    events_path: Path | None

    @property
    def results(self) -> dict[str, Any]:
        """The summary without its wall-clock part: equal for equal scenario and seed."""
        return {k: v for k, v in self.summary.items() if k != "performance"}

    @property
    def event_log_sha256(self) -> str:
        return str(self.summary["event_log_sha256"])

    def open_archive(self) -> Archive:
        """The kept archive, read-only (use it as a context manager)."""
        if self.archive_path is None:
            raise ValueError("the archive was not kept: pass archive=PATH to run()")
        return Archive(self.archive_path, read_only=True)


def _seconds(value: float | str | None, what: str) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value, what)
    except InvalidValue as invalid:
        raise ScenarioError("<arguments>", invalid.key, invalid.problem) from None


@contextmanager
def _storage(archive: str | os.PathLike[str] | None) -> Iterator[tuple[Path, Path]]:
    with tempfile.TemporaryDirectory(prefix="cx-simulation-") as scratch:
        if archive is None:
            path = Path(scratch) / "archive.sqlite3"
        else:
            path = Path(archive).expanduser().absolute()
            if path.exists():
                raise FileExistsError(
                    f"{path} already exists: a simulation starts on empty storage"
                    " (remove it or choose another --archive path)"
                )
        yield path, Path(scratch) / "journal"


def engine_config(
    scenario: Scenario, archive: Path, journal: Path, *, memory: bool = False
) -> dict[str, Any]:
    """The engine configuration of a run: quiet logs, the scenario's ``config``, private
    storage (``memory``: no journal, the archive in memory under the name ``archive``)."""
    config: dict[str, Any] = {"logging": {"level": "warning"}}
    for section, value in scenario.config.items():
        if isinstance(value, Mapping) and isinstance(config.get(section), Mapping):
            config[section] = {**config[section], **value}
        else:
            config[section] = value
    config["storage"] = {
        "archive": str(archive),
        "journal": str(journal),
        "fsync": "never",
        "memory": memory,
    }
    return config


def _mode(storage: str | None, archive: object, *, faults: bool) -> str:
    """The storage a run uses. Faults need files: a crashed host is rebuilt from its journal,
    and ``archive_refuses`` locks the archive's file."""
    if storage is None:
        return "memory" if archive is None and not faults else "files"
    if storage not in STORAGE_MODES:
        raise ScenarioError("<arguments>", "storage", f"expected memory or files, got {storage!r}")
    if storage == "memory" and archive is not None:
        raise ScenarioError("<arguments>", "storage", "memory keeps no archive to keep")
    if storage == "memory" and faults:
        raise ScenarioError(
            "<arguments>", "storage", "a scenario with faults needs files: crashed hosts are"
            " rebuilt from their journals"
        )
    return storage


def run(
    scenario: ScenarioSource,
    *,
    seed: int | None = None,
    duration: float | str | None = None,
    drain: float | str | None = None,
    archive: str | os.PathLike[str] | None = None,
    events: str | os.PathLike[str] | None = None,
    events_format: str | None = None,
    progress: Progress | None = None,
    storage: str | None = None,
) -> SimulationResult:
    """Run a scenario (a file, a dict or a :class:`Scenario`) on the embedded engine.

    ``seed``, ``duration`` and ``drain`` override the scenario's. ``archive``: keep the SQLite
    archive at this path (it must not exist). ``events``: write the canonical event log there
    (``events_format`` ``jsonl`` or ``msgpack``; by default from the suffix). ``progress`` is
    called now and then with (virtual ms, end ms, conversations started, conversations open).
    ``storage``: one of :data:`STORAGE_MODES`; by default ``files`` if ``archive`` is given,
    else ``memory``. The events, and so the summary, are the same in both.
    """
    loaded = load_scenario(scenario).with_overrides(
        seed=seed, duration=_seconds(duration, "duration"), drain=_seconds(drain, "drain")
    )
    mode = _mode(storage, archive, faults=bool(loaded.faults))
    started = time.perf_counter()
    with _storage(archive) as (archive_path, journal):
        config = engine_config(loaded, archive_path, journal, memory=mode == "memory")
        log = EventLog(events, events_format)
        try:
            with Gateway.embedded(config, seed=loaded.seed) as gw:
                stream = EventStream(log, gw.events)
                driver = Driver(loaded, gw, progress=progress, stream=stream)
                checks = RunChecks(driver.rooms, driver.acknowledged)
                stream.checks = checks
                try:
                    driver.run()
                finally:
                    if driver.faults is not None:
                        driver.faults.close()
                simulated = time.perf_counter()
                outcomes = stream.finish(list(driver.conversations.values()))
                faults = {
                    "injected": [] if driver.faults is None else driver.faults.summary(),
                    "restarts": gw.metrics()["restarts"],  # the engine's actors lost and replaced
                }
        finally:
            log.close()
    finished = time.perf_counter()
    figures = summarise(
        outcomes,
        logged_in=driver.logged_in_ms(),
        max_conversations={a.id: a.group.max_conversations for a in driver.agents.values()},
        end_ms=driver.end_ms,
    )
    planner = kpis(
        outcomes,
        report=loaded.report,
        base_ms=driver.base,
        duration=loaded.duration,
        total=loaded.total_seconds,
        logged_in=driver.logged_in_ms(),
        end_ms=driver.end_ms,
    )
    add_reference(planner, loaded)
    stats = driver.stats
    wall = finished - started
    summary: dict[str, Any] = {
        "scenario": loaded.name,
        "seed": loaded.seed,
        "virtual_seconds": {
            "duration": loaded.duration,
            "drain": loaded.drain,
            "total": loaded.total_seconds,
        },
        "agents_configured": loaded.agent_count,
        **figures,
        "kpis": planner,
        "event_log_sha256": log.sha256,
        "faults": faults,
        "invariants": checks.summary(),
        "driver": {
            "actions": stats.actions,
            "polls": stats.polls,
            "watches": stats.watches,
            "discovery_polls": stats.discoveries,
            "late_assignments": stats.late_assignments,
            "latest_by_seconds": stats.late_ms / 1000,
            "refused": stats.refused,
            "refusals": dict(sorted(stats.refusals.items())),
        },
        "performance": {
            "storage": mode,
            "wall_seconds": round(wall, 3),
            "simulate_seconds": round(simulated - started, 3),
            "events_per_second": round(figures["events"] / wall) if wall > 0 else 0,
            "virtual_seconds_per_wall_second": (
                round(loaded.total_seconds / wall, 1) if wall > 0 else 0.0
            ),
        },
    }
    return SimulationResult(
        scenario=loaded,
        summary=summary,
        conversations=tuple(outcomes),
        archive_path=None if archive is None else archive_path,
        events_path=log.path,
    )
