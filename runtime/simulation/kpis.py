"""The planner's figures: service level, abandonment, speed of answer, per queue and interval.

Computed from the agent requests the event logs record (:class:`AgentRequest`), over the
scenario's measured window only (``report``: the warm-up is left out, and so is the drain
unless the window reaches into it). A request belongs to the interval in which it was made and
is followed to its end, even past the window. Definitions:

* **offered**: agent requests made in the stretch, not counting those that re-route a
  conversation after an agent SLA expiry (the same contact, asked for again);
* **answered**, **abandoned**, **no_agent_available**: offered requests an agent answered, the
  customer gave up on while waiting, or that ended with NO_AGENT_AVAILABLE;
  **abandonment_rate** = abandoned / offered;
* **service_level** for a threshold T: offered requests answered within T / offered (the share
  of all contacts answered within T, as Erlang C and Erlang A give it);
* **asa_seconds**: mean wait of the answered requests; **p_wait**: share of offered requests not
  answered at once (answered after a wait, abandoned, refused or never answered);
* **aht_seconds**: mean time from the answer to the answering agent's leaving, wrap-up
  included, of answered requests whose agent left;
* **sla_breaches**: AGENT_SLA_EXPIRED events in the stretch (by their time);
* **occupancy**: time agents were subscribed to at least one conversation / time they were
  logged in, both within the stretch (all queues together).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from runtime.simulation.metrics import AgentRequest, ConversationOutcome
from runtime.simulation.model import ReportWindow

__all__ = ["interval_edges", "kpis", "threshold_label"]


def threshold_label(seconds: float) -> str:
    """The key a service-level threshold has in the summary: ``20s``, ``1.5s``."""
    return f"{seconds:g}s"


def interval_edges(start: float, end: float, interval: float) -> list[float]:
    """Interval boundaries from ``start`` to ``end``, on multiples of ``interval`` between."""
    edges = [start]
    step = math.floor(start / interval) + 1
    while step * interval < end:
        edges.append(step * interval)
        step += 1
    if end > start:
        edges.append(end)
    return edges


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _mean_seconds(values_ms: Sequence[int]) -> float | None:
    return round(sum(values_ms) / len(values_ms) / 1000, 3) if values_ms else None


def _figures(
    requests: Sequence[AgentRequest], breaches: int, thresholds: Sequence[float]
) -> dict[str, Any]:
    offered = [r for r in requests if not r.rerouted]
    answered = [r for r in offered if r.outcome == "answered" and r.answered_ms is not None]
    waits = [r.answered_ms - r.at_ms for r in answered if r.answered_ms is not None]
    abandoned = sum(1 for r in offered if r.outcome == "abandoned")
    handled = [r.handled_ms for r in answered if r.handled_ms is not None]
    count = len(offered)
    return {
        "offered": count,
        "answered": len(answered),
        "abandoned": abandoned,
        "abandonment_rate": _ratio(abandoned, count),
        "no_agent_available": sum(1 for r in requests if r.outcome == "no_agent"),
        "service_level": {
            threshold_label(t): _ratio(sum(1 for w in waits if w <= t * 1000), count)
            for t in thresholds
        },
        "asa_seconds": _mean_seconds(waits),
        "p_wait": _ratio(count - sum(1 for w in waits if w == 0), count),
        "aht_seconds": _mean_seconds(handled),
        "sla_breaches": breaches,
    }


def _merged(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _overlap(spans: Iterable[tuple[int, int]], low: int, high: int) -> int:
    return sum(max(0, min(end, high) - max(start, low)) for start, end in spans)


class _Occupancy:
    """Busy and logged-in time of every agent, clipped to any stretch."""

    def __init__(
        self,
        outcomes: Sequence[ConversationOutcome],
        logged_in: Mapping[str, tuple[int, int]],
        end_ms: int,
    ) -> None:
        per_agent: dict[str, list[tuple[int, int]]] = {}
        for outcome in outcomes:
            for agent_id, start, end in outcome.stints:
                per_agent.setdefault(agent_id, []).append((start, end_ms if end is None else end))
        self._busy = [span for spans in per_agent.values() for span in _merged(spans)]
        self._logged = list(logged_in.values())

    def within(self, low: int, high: int) -> float | None:
        logged = _overlap(self._logged, low, high)
        return round(_overlap(self._busy, low, high) / logged, 4) if logged else None


def kpis(
    outcomes: Sequence[ConversationOutcome],
    *,
    report: ReportWindow,
    base_ms: int,
    duration: float,
    total: float,
    logged_in: Mapping[str, tuple[int, int]],
    end_ms: int,
) -> dict[str, Any]:
    """The planner's figures of a run (see the module docstring), JSON-ready."""
    start, end = report.window(duration, total)
    edges = interval_edges(start, end, report.interval)
    stretches = list(itertools.pairwise(edges))
    low_ms, high_ms = base_ms + round(start * 1000), base_ms + round(end * 1000)

    def index(at_ms: int) -> int | None:
        if not low_ms <= at_ms < high_ms:
            return None
        return min(bisect.bisect_right(edges, (at_ms - base_ms) / 1000) - 1, len(stretches) - 1)

    queues: dict[str, list[list[AgentRequest]]] = {}
    breaches: dict[str, list[int]] = {}
    for outcome in outcomes:
        for request in outcome.requests:
            slot = index(request.at_ms)
            if slot is not None:
                queues.setdefault(request.queue, [[] for _ in stretches])[slot].append(request)
        for queue, at in outcome.sla_breaches:
            slot = index(at)
            if slot is not None:
                breaches.setdefault(queue, [0] * len(stretches))[slot] += 1
    for queue in breaches:
        queues.setdefault(queue, [[] for _ in stretches])
    thresholds = report.service_levels
    occupancy = _Occupancy(outcomes, logged_in, end_ms)

    def ms(second: float) -> int:
        return base_ms + round(second * 1000)

    def figures(queue_names: Sequence[str], slots: Sequence[int]) -> dict[str, Any]:
        requests = [r for q in queue_names for s in slots for r in queues[q][s]]
        breached = sum(breaches.get(q, [0] * len(stretches))[s] for q in queue_names for s in slots)
        return _figures(requests, breached, thresholds)

    names = sorted(queues)
    every = range(len(stretches))
    return {
        "window": {"start": start, "end": end},
        "warm_up": report.warm_up,
        "interval": report.interval,
        "service_level_thresholds": list(thresholds),
        "total": {**figures(names, every), "occupancy": occupancy.within(low_ms, high_ms)},
        "intervals": [
            {
                "start": a,
                "end": b,
                **figures(names, [s]),
                "occupancy": occupancy.within(ms(a), ms(b)),
            }
            for s, (a, b) in enumerate(stretches)
        ],
        "queues": {
            name: {
                "total": figures([name], every),
                "intervals": [
                    {"start": a, "end": b, **figures([name], [s])}
                    for s, (a, b) in enumerate(stretches)
                ],
            }
            for name in names
        },
    }
