"""Sweeps: variants run in parallel processes give the figures of the runs alone, the smallest
staffing or the largest load that meets a target, the report files, and bad specifications
naming their key."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.cli import main
from runtime.simulation import ScenarioError, run
from runtime.simulation.sweep import SweepResult, find_values, run_sweep
from runtime.simulation.sweep_report import write_sweep
from runtime.simulation.sweep_spec import (
    Find,
    SweepError,
    parse_find,
    parse_sweep,
    parse_target,
    with_value,
)
from tests.conftest import watchdog

#: Small enough for a sweep in seconds, busy enough for staffing to matter.
SMALL: dict[str, Any] = {
    "name": "small",
    "seed": 9,
    "duration": "40m",
    "drain": "20m",
    "arrivals": {"per_hour": 60},
    "customers": {
        "bot_resolves": 0,
        "messages_to_bot": 0,
        "exchanges": 1,
        "silent_leave": 0,
        "patience": {"mean": "2m"},
    },
    "agents": [{"count": 2, "handling_time": {"mean": "4m"}}],
    "config": {"timers": {"agent_sla": {"seconds": None}}},
    "report": {"interval": "20m"},
    "common_random_numbers": True,
}


@pytest.fixture(autouse=True)
def _time_limit() -> Iterator[None]:
    with watchdog(60.0, "the sweep test"):
        yield


def test_a_sweep_of_three_variants_gives_the_same_figures_as_the_three_runs_alone() -> None:
    swept = run_sweep(SMALL, "agents", [2, 3, 4], workers=2)
    assert swept.values == (2, 3, 4)
    alone = [run(with_value(SMALL, "agents", count)).results for count in (2, 3, 4)]
    assert list(swept.results) == alone
    assert [r["agents_configured"] for r in swept.results] == [2, 3, 4]


def test_the_smallest_staffing_that_meets_the_target_is_found_per_interval() -> None:
    target = parse_target("sl(30s)>=0.5")
    swept = run_sweep(SMALL, "agents", [1, 2, 3, 4, 5, 6], target=target, workers=2)
    found = find_values(swept, target, parse_find("agents", target))
    assert found["direction"] == "smallest"
    assert len(found["intervals"]) == 2
    for number, interval in enumerate(found["intervals"]):
        levels = [s["kpis"]["intervals"][number]["service_level"]["30s"] for s in swept.summaries]
        assert interval["value"] not in (None, 1)
        index = swept.values.index(interval["value"])
        assert all(level >= 0.5 for level in levels[index:])  # it and every larger staffing
        assert levels[index - 1] < 0.5  # the next smaller one misses it


def test_find_on_arrivals_gives_the_largest_rate_that_meets_the_target() -> None:
    target = parse_target("sl(30s)>=0.5")
    rates = [6, 12, 24, 48, 96]
    swept = run_sweep(SMALL, "arrivals", rates, target=target, workers=2)
    found = find_values(swept, target, parse_find("arrivals", target))
    levels = [s["kpis"]["total"]["service_level"]["30s"] for s in swept.summaries]
    assert found["direction"] == "largest"
    assert found["window"]["value"] not in (None, rates[0], rates[-1])
    index = rates.index(found["window"]["value"])
    assert all(level >= 0.5 for level in levels[: index + 1])  # it and every smaller rate
    assert levels[index + 1] < 0.5  # the next larger one misses it


@pytest.mark.parametrize(
    ("text", "target", "largest"),
    [
        ("agents", "sl(20s)>=0.8", False),
        ("agents[1].count", "abandonment<5%", False),
        ("arrivals", "sl(20s)>=0.8", True),
        ("handling_time", "asa<=30", True),
        ("customers.patience.mean", "sl(20s)>=0.8", True),
        ("agents", "occupancy>=0.8", True),
        ("arrivals", "occupancy>=0.8", False),
        ("min:customers.patience.mean", "sl(20s)>=0.8", False),
        ("max:agents", "sl(20s)>=0.8", True),
    ],
)
def test_the_find_direction_comes_from_the_key_and_the_target_unless_given(
    text: str, target: str, largest: bool
) -> None:
    assert parse_find(text, parse_target(target)).largest is largest


def _levels(*levels: float) -> SweepResult:
    """A sweep of values 1, 2, ... whose window and one interval have these service levels."""
    summaries = []
    for level in levels:
        figures = {"service_level": {"20s": level}}
        interval = {"start": 0.0, "end": 60.0, **figures}
        summaries.append({"kpis": {"intervals": [interval], "total": figures}})
    values = tuple(range(1, len(levels) + 1))
    return SweepResult("noise", "x", values, tuple(summaries), None)


def test_a_target_met_again_past_a_miss_gives_the_edge_of_the_run_from_the_easy_end() -> None:
    target = parse_target("sl(20s)>=0.8")
    noisy = _levels(0.9, 0.9, 0.7, 0.85, 0.6)  # met, met, missed, met again, missed
    found = find_values(noisy, target, Find("x", largest=True))
    assert found["window"] == {"value": 2, "also_met": [4]}
    assert found["intervals"][0]["value"] == 2


def test_a_smallest_value_met_below_a_miss_is_not_the_answer() -> None:
    target = parse_target("sl(20s)>=0.8")
    noisy = _levels(0.6, 0.85, 0.7, 0.9, 0.95)  # met at 2 by chance, missed at 3
    found = find_values(noisy, target, Find("x", largest=False))
    assert found["window"] == {"value": 4, "also_met": [2]}


def test_no_value_is_found_where_the_easiest_value_misses_the_target() -> None:
    target = parse_target("sl(20s)>=0.8")
    found = find_values(_levels(0.9, 0.7), target, Find("x", largest=False))
    assert found["window"] == {"value": None, "also_met": [1]}


def test_a_sweep_writes_its_table_plots_and_a_self_contained_page(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    target = parse_target("abandonment<5%")
    swept = run_sweep(SMALL, "agents", [1, 3], target=target, workers=1)
    written = write_sweep(swept, tmp_path, find_values(swept, target, parse_find("agents", target)))
    assert sorted(p.name for p in written) == [
        "sweep.csv",
        "sweep.html",
        "sweep.json",
        "sweep.png",
    ]
    assert (tmp_path / "sweep.png").read_bytes().startswith(b"\x89PNG")
    assert len((tmp_path / "sweep.csv").read_text().splitlines()) == 3
    page = (tmp_path / "sweep.html").read_text()
    assert "data:image/png;base64," in page and "http" not in page
    assert json.loads((tmp_path / "sweep.json").read_text())["values"] == [1, 3]


def test_values_come_from_ranges_lists_and_durations() -> None:
    assert parse_sweep("agents=10:40:5") == ("agents", [10, 15, 20, 25, 30, 35, 40])
    assert parse_sweep("handling_time=4m:6m:1m") == ("handling_time", [240.0, 300.0, 360.0])
    assert parse_sweep("arrivals=60,90") == ("arrivals", [60, 90])


def test_shorthands_set_the_scenario_keys() -> None:
    two = copy.deepcopy(SMALL)
    assert with_value(two, "handling_time", 300)["agents"][0]["handling_time"] == {"mean": 300}
    assert with_value(two, "arrivals", 30)["arrivals"] == {"per_hour": 30}
    timer = with_value(two, "config.routing.request_ttl_seconds", 90)
    assert timer["config"]["routing"] == {"request_ttl_seconds": 90}
    assert two == SMALL  # the scenario itself is left as it was


@pytest.mark.parametrize(
    ("spec", "key", "problem"),
    [
        ("agents", "agents", "expected KEY=FROM:TO:STEP"),
        ("agents=10:5:1", "agents", "FROM <= TO"),
        ("agents=1:x:1", "agents", "a number or a duration"),
        ("agents=1:2", "agents", "FROM:TO:STEP"),
        ("agents=1,1", "agents", "given twice"),
        ("arrivals=0:100000:1", "arrivals", "at most"),
    ],
)
def test_a_bad_sweep_names_its_key(spec: str, key: str, problem: str) -> None:
    with pytest.raises(SweepError) as caught:
        parse_sweep(spec)
    assert caught.value.key == key
    assert problem in caught.value.problem


@pytest.mark.parametrize(
    ("key", "value", "error_key", "problem"),
    [
        ("agents[3].count", 2, "agents[3].count", "has no agents[3]"),
        ("customers.patiense", 20, "customers.patiense", "did you mean customers.patience"),
        ("agents[0].count", -1, "agents[0].count", "sweeping agents[0].count=-1"),
        ("handling_time", 60, "handling_time", None),
    ],
)
def test_a_bad_sweep_key_or_value_names_the_key(
    key: str, value: int, error_key: str, problem: str | None
) -> None:
    scenario = copy.deepcopy(SMALL)
    if problem is None:  # a group without handling_time: nothing to vary
        scenario["agents"].append({"name": "other", "count": 1})
        problem = "agents[1] has no handling_time"
    with pytest.raises((SweepError, ScenarioError)) as caught:
        run_sweep(scenario, key, [value], workers=1)
    assert caught.value.key == error_key
    assert problem in caught.value.problem


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("up:arrivals", "arrivals", "unknown direction 'up' in --find up:arrivals"),
        ("max:", "--find", "expected KEY, min:KEY or max:KEY"),
    ],
)
def test_a_bad_find_direction_names_its_key(text: str, key: str, problem: str) -> None:
    with pytest.raises(SweepError) as caught:
        parse_find(text, parse_target("sl(20s)>=0.8"))
    assert caught.value.key == key
    assert problem in caught.value.problem


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("sl>=0.8", "sl needs its threshold"),
        ("slx(20s)>=0.8", "unknown figure 'slx'"),
        ("sl(soon)>=0.8", "not a duration"),
        ("abandonment=0.1", "expected FIGURE OP NUMBER"),
    ],
)
def test_a_bad_target_names_the_target(text: str, problem: str) -> None:
    with pytest.raises(SweepError) as caught:
        parse_target(text)
    assert caught.value.key == "target"
    assert problem in caught.value.problem


def test_cx_simulate_sweeps_and_finds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = tmp_path / "small.json"  # JSON is YAML
    scenario.write_text(json.dumps(SMALL), encoding="utf-8")
    out = tmp_path / "report"
    argv = ["simulate", str(scenario), "--sweep", "agents=2:3:1", "--workers", "1"]
    code = main([*argv, "--find", "agents", "--target", "sl(20s)>=0.5", "--out", str(out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "smallest agents for sl(20s)>=0.5" in printed.out
    assert (out / "sweep.html").exists()
    assert main([*argv, "--find", "arrivals", "--target", "sl(20s)>=0.5"]) == 2
    assert (
        "cx simulate: arrivals: --find arrivals needs --sweep arrivals=" in capsys.readouterr().err
    )
    assert main([*argv, "--events", str(tmp_path / "log.jsonl")]) == 2
    assert "cx simulate: --events: keeps one run's data" in capsys.readouterr().err


def test_cx_simulate_prints_the_largest_arrival_rate_for_find_on_arrivals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = tmp_path / "small.json"
    scenario.write_text(json.dumps(SMALL), encoding="utf-8")
    argv = ["simulate", str(scenario), "--sweep", "arrivals=6,96", "--workers", "1"]
    code = main([*argv, "--find", "arrivals", "--target", "sl(30s)>=0.5", "--out", str(tmp_path)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "largest arrivals for sl(30s)>=0.5:\n" in printed.out
    assert "  window   6\n" in printed.out


def test_a_value_whose_interval_offered_nothing_is_passed_over() -> None:
    target = parse_target("sl(20s)>=0.8")
    sparse = _levels(0.9, 0.85, 0.6)
    sparse.summaries[0]["kpis"]["intervals"][0]["service_level"] = {"20s": None}
    found = find_values(sparse, target, Find("x", largest=True))
    assert found["intervals"][0] == {"start": 0.0, "end": 60.0, "value": 2, "also_met": []}
