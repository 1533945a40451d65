"""The analytic reference beside the simulated figures: Erlang C, and Erlang A where customers'
patience is exponential, for each interval of a scenario that fits their assumptions.

A scenario fits when its customers ask for agents in one queue, with no limit on arrivals, and
every agent serves that queue one chat at a time for the whole run (no shift, no break), with
an exponential ``handling_time`` (no cap) of one mean, accepting at once (``auto_accept``).
The offered rate of an interval is the arrival rate averaged over it times the share of
customers who want an agent. What the engine does beyond the model (the bot's time, SLA
removals, the request's time to live, retries) is what the planner sees the two differ by.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from runtime.simulation.erlang import erlang_a, erlang_c
from runtime.simulation.model import Distribution, Scenario

__all__ = ["add_reference", "model_of"]


def _exponential(distribution: Distribution | None) -> bool:
    return (
        distribution is not None and distribution.kind == "exponential" and distribution.cap is None
    )


def model_of(scenario: Scenario) -> dict[str, Any]:
    """The queueing model the scenario fits (``model`` M/M/c or M/M/c+M, its agents, mean
    handling and patience), or ``model`` None and ``why`` not."""
    customers = scenario.customers
    settings = scenario.settings
    problems: list[str] = []
    if len(customers.queues) != 1:
        problems.append("customers ask in more than one queue")
    if scenario.arrivals.limit is not None:
        problems.append("arrivals have a limit")
    if settings is not None and not settings.routing.auto_accept:
        problems.append("agents accept offers themselves (routing.auto_accept is false)")
    queue = customers.queues[0][0]
    means = {group.handling_time.mean for group in scenario.agents if group.handling_time}
    for index, group in enumerate(scenario.agents):
        where = f"agents[{index}]"
        if group.handling_time is None:
            problems.append(f"{where} has no handling_time")
        elif not _exponential(group.handling_time):
            problems.append(f"{where}.handling_time is not exponential")
        if group.max_conversations != 1:
            problems.append(f"{where} takes more than one chat at a time")
        if group.shift_start > 0 or group.shift_end is not None or group.break_every is not None:
            problems.append(f"{where} has a shift or breaks")
        if queue not in group.queues:
            problems.append(f"{where} does not serve queue {queue}")
    if len(means) > 1:
        problems.append("agent groups have different mean handling times")
    if not scenario.agents or scenario.agent_count == 0:
        problems.append("there are no agents")
    if problems:
        return {"model": None, "why": "; ".join(problems)}
    patience = customers.patience
    return {
        "model": "M/M/c+M" if _exponential(patience) else "M/M/c",
        "queue": queue,
        "agents": scenario.agent_count,
        "handling_seconds": means.pop(),
        "patience_seconds": patience.mean
        if patience is not None and _exponential(patience)
        else None,
    }


def _offered_per_second(scenario: Scenario, start: float, end: float) -> float:
    """Mean rate of customers wanting an agent over [start, end) seconds of the run."""
    profile = scenario.arrivals.profile
    arrivals = 0.0
    for index, (step, per_hour) in enumerate(profile):
        step_end = profile[index + 1][0] if index + 1 < len(profile) else float("inf")
        low, high = max(step, start), min(step_end, end, scenario.duration)
        if high > low:
            arrivals += per_hour / 3600.0 * (high - low)
    return arrivals / (end - start) * (1.0 - scenario.customers.bot_resolves)


def _rounded(figures: Mapping[str, Any]) -> dict[str, Any]:
    def cut(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {key: cut(item) for key, item in value.items()}
        return value if value is None else round(value, 4)

    return {key: cut(value) for key, value in figures.items()}


def _annotate(
    figures: MutableMapping[str, Any], scenario: Scenario, model: Mapping[str, Any], span: Any
) -> None:
    thresholds = scenario.report.service_levels
    rate = _offered_per_second(scenario, span[0], span[1])
    args = (rate, model["handling_seconds"], model["agents"])
    figures["offered_per_hour"] = round(rate * 3600, 3)
    figures["erlang_c"] = _rounded(erlang_c(*args, thresholds))
    if model["patience_seconds"] is not None:
        try:
            figures["erlang_a"] = _rounded(erlang_a(*args, model["patience_seconds"], thresholds))
        except ValueError:  # overloaded with customers who wait for days: no Erlang A
            figures["erlang_a"] = None


def add_reference(kpis: MutableMapping[str, Any], scenario: Scenario) -> None:
    """Put the model and, where it fits, Erlang C and A beside each interval's simulated
    figures (and the window's, when the offered rate is the same all through it)."""
    model = model_of(scenario)
    kpis["reference"] = model
    if model["model"] is None:
        return
    rates = set()
    for interval in kpis["intervals"]:
        _annotate(interval, scenario, model, (interval["start"], interval["end"]))
        rates.add(interval["offered_per_hour"])
    if len(rates) == 1:
        window = kpis["window"]
        _annotate(kpis["total"], scenario, model, (window["start"], window["end"]))
