"""Sweeps: one scenario run for each value of a key, in parallel processes, one per core.

Each variant is the scenario with the key set to one value (:mod:`runtime.simulation.sweep_spec`)
and runs with the scenario's seed (or the one given), exactly as ``run`` would run it alone: a
sweep's figures for a value are the figures of that run. With a target, :func:`find_values`
gives for each interval (and the window) the smallest value meeting it, every larger value
meeting it too, or the largest, every smaller one meeting it too (``--find``'s direction).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.simulation.runner import run
from runtime.simulation.scenario import ScenarioError, load_scenario, read_document
from runtime.simulation.sweep_spec import Find, Target, with_value

__all__ = ["SweepResult", "find_values", "run_sweep"]


@dataclass(frozen=True, slots=True)
class SweepResult:
    """What :func:`run_sweep` returns: the summary of each value's run, in the values' order
    (``results`` without the wall-clock part, as ``SimulationResult.results``)."""

    scenario: str
    key: str
    values: tuple[float | int, ...]
    summaries: tuple[dict[str, Any], ...]
    target: Target | None

    @property
    def results(self) -> tuple[dict[str, Any], ...]:
        return tuple(
            {k: v for k, v in summary.items() if k != "performance"} for summary in self.summaries
        )


def _document(source: str | os.PathLike[str] | Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    if isinstance(source, Mapping):
        return dict(source), "<dict>"
    name = os.fspath(source)
    document = {str(key): value for key, value in read_document(name).items()}
    document.setdefault("name", Path(name).stem)
    return document, name


def _with_threshold(document: dict[str, Any], target: Target | None) -> dict[str, Any]:
    """The document whose report also gives the service level the target is about."""
    if target is None or target.threshold is None:
        return document
    report = dict(document.get("report") or {})
    levels = report.get("service_level", ["20s"])
    report["service_level"] = [
        *(levels if isinstance(levels, list) else [levels]),
        target.threshold,
    ]
    return {**document, "report": report}


def _run_variant(job: tuple[dict[str, Any], int | None, Any, Any]) -> dict[str, Any]:
    document, seed, duration, drain = job
    return run(document, seed=seed, duration=duration, drain=drain).summary


def run_sweep(
    source: str | os.PathLike[str] | Mapping[str, Any],
    key: str,
    values: Sequence[float | int],
    *,
    seed: int | None = None,
    duration: float | str | None = None,
    drain: float | str | None = None,
    target: Target | None = None,
    workers: int | None = None,
) -> SweepResult:
    """Run the scenario once for each value of ``key``, ``workers`` processes at a time (by
    default one per core). Every variant is checked before any runs: a bad one is a
    ScenarioError naming the key and the value."""
    document, name = _document(source)
    document = _with_threshold(document, target)
    variants = []
    for value in values:
        variant = with_value(document, key, value)
        try:
            load_scenario(variant)
        except ScenarioError as error:
            problem = f"{error.problem} (sweeping {key}={value})"
            raise ScenarioError(name, error.key, problem) from None
        variants.append(variant)
    jobs = [(variant, seed, duration, drain) for variant in variants]
    count = min(len(jobs), workers or os.cpu_count() or 1)
    if count <= 1:
        summaries = [_run_variant(job) for job in jobs]
    else:
        context = multiprocessing.get_context("forkserver")
        with ProcessPoolExecutor(max_workers=count, mp_context=context) as pool:
            summaries = list(pool.map(_run_variant, jobs))
    label = str(document.get("name", name))
    return SweepResult(label, key, tuple(values), tuple(summaries), target)


def find_values(result: SweepResult, target: Target, find: Find) -> dict[str, Any]:
    """For each interval and for the window, the value ``find`` looks for, or None.

    The values are walked from the end where the target is easiest to meet (the largest for the
    smallest value looked for, the smallest for the largest) while they meet it: the answer is
    the last one that does before the first that does not. A value past that gap that meets the
    target again (noise) is not the answer; it is listed in ``also_met``. None where the
    easiest value already misses the target. A value without the figure (its interval offered
    nothing) is passed over.
    """
    order = sorted(range(len(result.values)), key=lambda index: result.values[index])
    if not find.largest:
        order.reverse()

    def walk(pick: Any) -> tuple[float | int | None, list[float | int]]:
        figures = [(result.values[index], pick(result.summaries[index]["kpis"])) for index in order]
        met = [(value, target.met(f)) for value, f in figures if target.value(f) is not None]
        run = next((count for count, (_, ok) in enumerate(met) if not ok), len(met))
        found = met[run - 1][0] if run else None
        return found, sorted(value for value, ok in met[run:] if ok)

    def entry(pick: Any) -> dict[str, Any]:
        value, also = walk(pick)
        return {"value": value, "also_met": also}

    intervals = result.summaries[0]["kpis"]["intervals"] if result.summaries else []
    return {
        "target": target.text,
        "direction": find.word,
        "intervals": [
            {
                "start": interval["start"],
                "end": interval["end"],
                **entry(lambda kpis, n=number: kpis["intervals"][n]),
            }
            for number, interval in enumerate(intervals)
        ],
        "window": entry(lambda kpis: kpis["total"]),
    }
