"""The engine's figures as Prometheus metrics: a collector that takes one snapshot of the
engine per scrape (``Gateway.metrics()``, docs/OPERATIONS.md "Metrics") and turns it into
metric families, and the text ``cx metrics`` prints.

The actors keep the counters (they only grow while the actor lives: a restarted actor starts
again from 0, which Prometheus' ``rate`` and ``increase`` take as a counter reset); this
module only names them. Every series is listed in :data:`SERIES`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from domain.enums import State
from domain.routing.tally import OUTCOMES

__all__ = ["SERIES", "EngineCollector", "families", "render"]

Snapshot = Mapping[str, Any]

#: Every series (counters with their ``_total``), its labels and what it measures.
SERIES: dict[str, tuple[tuple[str, ...], str]] = {
    "cx_up": ((), "1 when the engine answered this scrape's survey, else 0"),
    "cx_draining": ((), "1 while the engine drains (cx drain: no new conversation), else 0"),
    "cx_conversations": (("state",), "Live conversations by state (each state, 0 too)"),
    "cx_agents": (("presence",), "Logged-in agents: READY (free capacity), BUSY, NOT_READY"),
    "cx_queue_waiting": (("queue",), "Requests waiting in the queue for an agent"),
    "cx_queue_oldest_wait_seconds": (("queue",), "How long the oldest waiting request has waited"),
    "cx_routing_outcomes_total": (
        ("queue", "outcome"),
        "Routing outcomes: assigned, rona, no_agent",
    ),
    "cx_queue_answered_total": (("queue",), "Requests answered (an agent subscribed)"),
    "cx_queue_answered_within_sl_total": (
        ("queue",),
        "Requests answered within metrics.service_level_seconds",
    ),
    "cx_queue_service_level": (("queue",), "Share of answered requests answered within the SL"),
    "cx_sla_breaches_total": ((), "Agent SLAs expired (AGENT_SLA_EXPIRED)"),
    "cx_inactivity_expiries_total": (
        (),
        "Customer inactivity timers expired (CUSTOMER_SLA_EXPIRED)",
    ),
    "cx_events_total": (("name",), "Events published by the conversations, by name"),
    "cx_journal_writes_total": ((), "Journal writes (one per handled message that wrote)"),
    "cx_journal_write_failures_total": ((), "Journal writes that failed"),
    "cx_journal_write_seconds_total": ((), "Time spent in journal writes"),
    "cx_journal_failing_hosts": ((), "Conversation hosts whose journal refuses writes now"),
    "cx_archive_writes_total": ((), "Archive writes of closed conversations and late events"),
    "cx_archive_write_failures_total": ((), "Archive writes that failed (retried later)"),
    "cx_archive_write_seconds_total": ((), "Time spent in archive writes"),
    "cx_archive_waiting": ((), "Archive writes waiting (for a retry or their turn)"),
    "cx_hosts": ((), "Conversation host processes"),
    "cx_restarts_total": (("kind",), "Restarts: host, router, archivist; engine and system"),
}


def families(snapshot: Snapshot) -> Iterator[Metric]:
    """The metric families of one ``Gateway.metrics()`` snapshot (with ``restarts`` of the
    daemon merged in by the caller, if any)."""
    yield _series("cx_up", value=1)
    yield _series("cx_draining", value=1 if snapshot["draining"] else 0)
    states = {state.value: 0 for state in State if state is not State.CLOSED}  # every one, 0 too
    yield _series("cx_conversations", {**states, **snapshot["conversations"]})
    yield _series("cx_agents", snapshot["agents"])
    queues: Mapping[str, Mapping[str, Any]] = snapshot["queues"]
    yield _series("cx_queue_waiting", {q: f["waiting"] for q, f in queues.items()})
    yield _series(
        "cx_queue_oldest_wait_seconds", {q: f["oldest_wait_ms"] / 1000 for q, f in queues.items()}
    )
    outcomes = _family("cx_routing_outcomes_total")
    for queue, figures in queues.items():
        for outcome in OUTCOMES:
            outcomes.add_metric([queue, outcome], figures[outcome])
    yield outcomes
    yield _series("cx_queue_answered_total", {q: f["answered"] for q, f in queues.items()})
    yield _series(
        "cx_queue_answered_within_sl_total", {q: f["answered_within"] for q, f in queues.items()}
    )
    yield _series(
        "cx_queue_service_level",
        {q: f["service_level"] for q, f in queues.items() if f["service_level"] is not None},
    )
    yield _series("cx_sla_breaches_total", value=snapshot["sla_breaches"])
    yield _series("cx_inactivity_expiries_total", value=snapshot["inactivity_expiries"])
    yield _series("cx_events_total", snapshot["events"]["by_name"])
    journal, archive = snapshot["journal"], snapshot["archive"]
    for store, figures in (("journal", journal), ("archive", archive)):
        yield _series(f"cx_{store}_writes_total", value=figures["writes"])
        yield _series(f"cx_{store}_write_failures_total", value=figures["failures"])
        yield _series(f"cx_{store}_write_seconds_total", value=figures["seconds"])
    yield _series("cx_journal_failing_hosts", value=journal["failing_hosts"])
    yield _series("cx_archive_waiting", value=archive["waiting"])
    yield _series("cx_hosts", value=snapshot["hosts"])
    yield _series("cx_restarts_total", snapshot["restarts"])


class EngineCollector(Collector):
    """Asks ``snapshot`` for the engine's figures once per scrape; when that raises, only
    ``cx_up 0`` is reported (the scrape itself succeeds, so the outage is a series)."""

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        try:
            snapshot = self._snapshot()
        except Exception:
            yield _series("cx_up", value=0)
            return
        yield from families(snapshot)


def render(snapshot: Callable[[], Snapshot]) -> bytes:
    """The Prometheus text exposition of one snapshot (what ``/metrics`` serves)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EngineCollector(snapshot))
    return generate_latest(registry)


def _family(name: str) -> CounterMetricFamily | GaugeMetricFamily:
    labels, documentation = SERIES[name]
    if name.endswith("_total"):
        return CounterMetricFamily(name.removesuffix("_total"), documentation, labels=labels)
    return GaugeMetricFamily(name, documentation, labels=labels)


def _series(name: str, by_label: Mapping[str, Any] | None = None, *, value: float = 0) -> Metric:
    """The family ``name`` with one sample, or one per label value of ``by_label``."""
    family = _family(name)
    if by_label is None:
        family.add_metric([], value)
    else:
        for label, figure in sorted(by_label.items()):
            family.add_metric([label], figure)
    return family
