"""Erlang C and Erlang A against known values and independent computations, and the analytic
reference the simulation's summary puts beside its own figures."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from typing import Any

import pytest

from runtime.simulation import run
from runtime.simulation.erlang import erlang_a, erlang_b, erlang_c, erlang_c_probability
from tests.conftest import watchdog


@pytest.fixture(autouse=True)
def _time_limit() -> Iterator[None]:
    with watchdog(20.0, "the simulation test"):
        yield


def poisson(mean: float, k: int) -> float:
    return math.exp(-mean + k * math.log(mean) - math.lgamma(k + 1))


def test_erlang_b_and_c_give_the_textbook_values() -> None:
    assert erlang_b(1, 1.0) == pytest.approx(0.5)
    assert erlang_b(2, 1.0) == pytest.approx(0.2)
    assert erlang_c_probability(2, 1.0) == pytest.approx(1 / 3)
    # 10 Erlangs (100 calls of 3 minutes in 30 minutes): 11 agents wait 68.2 %, 14 agents 17.4 %
    assert erlang_c_probability(11, 10.0) == pytest.approx(0.6821, abs=1e-4)
    assert erlang_c_probability(14, 10.0) == pytest.approx(0.1741, abs=1e-4)


def test_erlang_c_with_one_agent_is_the_m_m_1_queue() -> None:
    rate, handling = 0.6 / 120, 120.0
    figures = erlang_c(rate, handling, 1, [30.0])
    assert figures["p_wait"] == pytest.approx(0.6)
    assert figures["service_level"]["30s"] == pytest.approx(1 - 0.6 * math.exp(-0.4 / 120 * 30))
    assert figures["asa_seconds"] == pytest.approx(0.6 / (0.4 / 120))


def test_two_hundred_agents_do_not_overflow() -> None:
    load, servers = 190.0, 200
    direct_b = poisson(load, servers) / sum(poisson(load, k) for k in range(servers + 1))
    assert erlang_b(servers, load) == pytest.approx(direct_b, rel=1e-9)
    figures = erlang_c(load / 180, 180.0, servers, [20.0])
    assert 0 < figures["p_wait"] < 1
    assert 0 < figures["service_level"]["20s"] < 1
    patient = erlang_a(1.2 * servers / 180, 180.0, servers, 120.0, [20.0])  # overloaded
    assert 0 < patient["abandonment_rate"] < 1 and patient["occupancy"] <= 1


def test_erlang_a_refuses_a_queue_of_customers_who_wait_for_days() -> None:
    with pytest.raises(ValueError, match="beyond 20000 customers waiting"):
        erlang_a(2 * 10 / 60, 60.0, 10, 30 * 86400.0, [20.0])


def test_erlang_c_is_unstable_at_full_load() -> None:
    figures = erlang_c(10 / 60, 60.0, 10, [20.0])
    assert figures["p_wait"] == 1.0 and figures["asa_seconds"] is None
    assert figures["service_level"]["20s"] == 0.0


def test_erlang_a_with_patience_equal_to_handling_is_the_poisson_system() -> None:
    # every customer present leaves at the same rate: the number present is Poisson(load)
    load, servers, handling = 10.0, 12, 180.0
    figures = erlang_a(load / handling, handling, servers, handling, [20.0])
    beyond = range(servers, 200)
    assert figures["p_wait"] == pytest.approx(sum(poisson(load, k) for k in beyond))
    assert figures["abandonment_rate"] == pytest.approx(
        sum(poisson(load, k) * (k - servers) for k in beyond) / load
    )


def test_erlang_a_with_endless_patience_is_erlang_c() -> None:
    patient = erlang_a(10 / 180, 180.0, 14, 1e9, [20.0, 60.0])
    plain = erlang_c(10 / 180, 180.0, 14, [20.0, 60.0])
    for key in ("p_wait", "asa_seconds", "occupancy"):
        assert patient[key] == pytest.approx(plain[key], rel=1e-6)
    for level in ("20s", "60s"):
        assert patient["service_level"][level] == pytest.approx(plain["service_level"][level])


def service_level_by_integration(
    rate: float, handling: float, servers: int, patience: float, seconds: float
) -> float:
    """The Erlang A service level from the queue's balance equations and the backward
    Kolmogorov equations of a waiting customer's position, integrated step by step (RK4):
    u[m]' = (c mu + (m-1) theta) (u[m-1] - u[m]) - theta u[m], u[0] = 1 (answered)."""
    mu, theta = 1 / handling, 1 / patience
    size = 60
    weights = [1.0]
    for n in range(1, size):
        weights.append(weights[-1] * rate / (min(n, servers) * mu + max(n - servers, 0) * theta))
    found = [w / sum(weights) for w in weights]
    positions = size - servers
    up = [0.0] + [servers * mu + (m - 1) * theta for m in range(1, positions + 1)]

    def derivative(u: list[float]) -> list[float]:
        return [0.0] + [up[m] * (u[m - 1] - u[m]) - theta * u[m] for m in range(1, positions + 1)]

    u = [1.0] + [0.0] * positions
    step = 0.01
    for _ in range(round(seconds / step)):
        k1 = derivative(u)
        k2 = derivative([x + step / 2 * k for x, k in zip(u, k1, strict=True)])
        k3 = derivative([x + step / 2 * k for x, k in zip(u, k2, strict=True)])
        k4 = derivative([x + step * k for x, k in zip(u, k3, strict=True)])
        u = [
            x + step / 6 * (a + 2 * b + 2 * c + d)
            for x, a, b, c, d in zip(u, k1, k2, k3, k4, strict=True)
        ]
    return sum(found[:servers]) + sum(
        found[servers + m - 1] * u[m] for m in range(1, positions + 1)
    )


def test_the_erlang_a_service_level_agrees_with_integrating_the_queue() -> None:
    rate, handling, servers, patience = 0.05, 60.0, 3, 30.0
    figures = erlang_a(rate, handling, servers, patience, [10.0])
    expected = service_level_by_integration(rate, handling, servers, patience, 10.0)
    assert figures["service_level"]["10s"] == pytest.approx(expected, abs=1e-6)


# ------------------------------------------------------------------------------ in the summary

#: M/M/10+M: Poisson arrivals, exponential handling, one chat per agent, exponential patience,
#: the engine's timers out of the way.
MMC: dict[str, Any] = {
    "name": "mmc",
    "seed": 7,
    "duration": "3h",
    "drain": "1h",
    "arrivals": {"per_hour": 100},
    "customers": {
        "bot_resolves": 0,
        "messages_to_bot": 0,
        "exchanges": 2,
        "silent_leave": 0,
        "patience": {"mean": "3m"},
    },
    "agents": [{"count": 10, "handling_time": {"mean": "5m"}}],
    "config": {
        "timers": {"agent_sla": {"seconds": None}, "customer_inactivity": {"seconds": None}},
        "routing": {"request_ttl_seconds": None},
    },
    "report": {"interval": "1h", "service_level": ["20s", "60s"], "warm_up": "30m"},
}


def test_a_fitting_scenario_shows_erlang_c_and_a_beside_each_interval() -> None:
    kpis = run(MMC).summary["kpis"]
    assert kpis["reference"] == {
        "model": "M/M/c+M",
        "queue": "default",
        "agents": 10,
        "handling_seconds": 300.0,
        "patience_seconds": 180.0,
    }
    expected = erlang_a(100 / 3600, 300.0, 10, 180.0, [20.0, 60.0])
    assert len(kpis["intervals"]) == 3
    for interval in kpis["intervals"]:
        assert interval["offered_per_hour"] == 100.0
        assert interval["erlang_a"]["p_wait"] == round(expected["p_wait"], 4)
        assert set(interval["erlang_c"]) == set(interval["erlang_a"])
    simulated, theory = kpis["total"], kpis["total"]["erlang_a"]
    assert abs(simulated["abandonment_rate"] - theory["abandonment_rate"]) < 0.05
    assert abs(simulated["service_level"]["60s"] - theory["service_level"]["60s"]) < 0.1


def test_customers_who_never_give_up_get_erlang_c_only() -> None:
    scenario = copy.deepcopy(MMC)
    scenario["customers"]["patience"] = "never"
    scenario["duration"] = "1h"
    kpis = run(scenario).summary["kpis"]
    assert kpis["reference"]["model"] == "M/M/c"
    assert "erlang_c" in kpis["intervals"][0] and "erlang_a" not in kpis["intervals"][0]


def test_a_scenario_that_does_not_fit_says_why() -> None:
    scenario = copy.deepcopy(MMC)
    scenario["agents"][0]["handling_time"] = {"dist": "lognormal", "mean": "5m", "sd": "1m"}
    scenario["agents"][0]["max_conversations"] = 2
    scenario["duration"] = "1h"
    kpis = run(scenario).summary["kpis"]
    assert kpis["reference"]["model"] is None
    assert "agents[0].handling_time is not exponential" in kpis["reference"]["why"]
    assert "agents[0] takes more than one chat" in kpis["reference"]["why"]
    assert "erlang_c" not in kpis["intervals"][0]
