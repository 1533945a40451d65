"""Scenario knobs for planners: handling time as a distribution of its own, customers who never
give up, and the engine's timers switched off."""

from __future__ import annotations

import copy
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.simulation import ScenarioError, load_scenario, run
from tests.conftest import watchdog

#: Everyone wants an agent and there are agents to spare: handling is all there is to see.
AMPLE: dict[str, Any] = {
    "name": "ample",
    "seed": 11,
    "duration": "1h",
    "drain": "1h",
    "arrivals": {"per_hour": 150},
    "customers": {
        "bot_resolves": 0,
        "messages_to_bot": 0,
        "exchanges": {"min": 1, "max": 4},
        "silent_leave": 0,
        "patience": "never",
    },
    "agents": [{"count": 30, "handling_time": {"dist": "lognormal", "mean": "6m", "sd": "2m"}}],
    "config": {"timers": {"agent_sla": {"seconds": None}}},
}

#: Two agents for far too many customers, each taking a few minutes.
SHORT: dict[str, Any] = {
    "name": "short",
    "seed": 4,
    "duration": "30m",
    "drain": "30m",
    "arrivals": {"per_hour": 60},
    "customers": {"bot_resolves": 0, "silent_leave": 0.5, "patience": {"mean": "1m"}},
    "agents": [{"count": 2, "reply_time": {"mean": "90s"}}],
    "config": {
        "timers": {"agent_sla": {"seconds": 60}, "customer_inactivity": {"seconds": 120}},
        "routing": {"request_ttl_seconds": 120},
    },
}


@pytest.fixture(autouse=True)
def _time_limit() -> Iterator[None]:
    with watchdog(20.0, "the simulation test"):
        yield


def handling_seconds(result: Any) -> list[float]:
    return [o.handling_ms / 1000 for o in result.conversations if o.handling_ms is not None]


@pytest.mark.parametrize(
    ("handling", "mean", "sd"),
    [
        ({"dist": "lognormal", "mean": "6m", "sd": "2m"}, 360.0, 120.0),
        ({"mean": "4m"}, 240.0, 240.0),
        ({"dist": "uniform", "min": "2m", "max": "8m"}, 300.0, 360 / 12**0.5),
    ],
    ids=["lognormal", "exponential", "uniform"],
)
def test_handling_time_as_a_distribution_comes_out_with_its_mean_and_spread(
    handling: dict[str, Any], mean: float, sd: float
) -> None:
    scenario = copy.deepcopy(AMPLE)
    scenario["agents"][0]["handling_time"] = handling
    result = run(scenario)
    times = handling_seconds(result)
    assert len(times) == result.summary["kpis"]["total"]["answered"] > 120
    standard_error = sd / len(times) ** 0.5
    assert abs(statistics.fmean(times) - mean) < 3 * standard_error
    assert abs(statistics.stdev(times) - sd) < 0.25 * sd
    assert result.summary["kpis"]["total"]["aht_seconds"] == pytest.approx(
        statistics.fmean(times), abs=0.01
    )


def test_without_a_handling_time_the_chat_takes_what_its_delays_add_up_to() -> None:
    scenario = copy.deepcopy(AMPLE)
    del scenario["agents"][0]["handling_time"]
    scenario["agents"][0]["reply_time"] = 5
    scenario["customers"]["think_time"] = 5
    times = handling_seconds(run(scenario))
    assert statistics.fmean(times) < 60  # far from the 6 minutes the distribution would give


def test_a_customer_whose_patience_is_never_waits_for_an_agent() -> None:
    impatient = run(SHORT).summary
    assert impatient["abandoned"] > 0
    scenario = copy.deepcopy(SHORT)
    scenario["customers"]["patience"] = "never"
    assert run(scenario).summary["abandoned"] == 0


def test_timers_switched_off_never_expire() -> None:
    timed = run(SHORT).summary
    assert timed["agent_sla_breaches"] > 0
    assert timed["customer_inactivity_expiries"] > 0
    assert timed["no_agent_available"] > 0
    scenario = copy.deepcopy(SHORT)
    scenario["config"] = {
        "timers": {"agent_sla": {"seconds": None}, "customer_inactivity": {"seconds": None}},
        "routing": {"request_ttl_seconds": None},
    }
    untimed = run(scenario).summary
    assert untimed["agent_sla_breaches"] == 0
    assert untimed["customer_inactivity_expiries"] == 0
    assert untimed["no_agent_available"] == 0


def arrivals_with(agents: int, common: bool) -> list[int]:
    scenario = copy.deepcopy(SHORT)
    scenario["agents"][0]["count"] = agents
    scenario["common_random_numbers"] = common
    return [o.created_ms for o in run(scenario).conversations]


def test_with_common_random_numbers_other_staffing_meets_the_same_customers() -> None:
    assert arrivals_with(2, common=True) == arrivals_with(4, common=True)
    assert arrivals_with(2, common=False) != arrivals_with(4, common=False)


BASE = "seed: 1\nduration: 1h\narrivals: {per_hour: 10}\n"


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        (
            BASE + "agents: [{count: 1, handling_time: {dist: gamma, mean: 5m}}]\n",
            "agents[0].handling_time.dist",
            "one of",
        ),
        (
            BASE + "agents: [{count: 1, handling_time: {mean: 5m, sd: -1}}]\n",
            "agents[0].handling_time.sd",
            "duration",
        ),
        (BASE + "customers: {patience: nevr}\n", "customers.patience", "or never"),
        (BASE + "common_random_numbers: yes please\n", "common_random_numbers", "true or false"),
        (
            BASE + "config: {timers: {hold: {max_seconds: null}}}\n",
            "config.timers.hold.max_seconds",
            "expected a number of seconds",
        ),
    ],
)
def test_a_bad_knob_names_its_key(tmp_path: Path, text: str, key: str, problem: str) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert caught.value.key == key
    assert problem in caught.value.problem
