"""The planner's figures as a table for people: one row per interval and the window's total,
each followed by the analytic reference rows (Erlang C, Erlang A) where the summary has them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from runtime.simulation.report import format_duration

__all__ = ["format_kpis"]

_REFERENCES = (("erlang_c", "Erlang C"), ("erlang_a", "Erlang A"))


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _count(figures: Mapping[str, Any], key: str) -> str:
    return str(figures[key]) if key in figures else ""


def _row(label: str, figures: Mapping[str, Any], labels: Sequence[str]) -> list[str]:
    levels = figures.get("service_level", {})
    return [
        label,
        _count(figures, "offered"),
        _count(figures, "answered"),
        _percent(figures.get("abandonment_rate")),
        *(_percent(levels.get(level)) for level in labels),
        _seconds(figures.get("asa_seconds")),
        _percent(figures.get("p_wait")),
        _seconds(figures.get("aht_seconds")),
        _percent(figures.get("occupancy")),
        _count(figures, "no_agent_available"),
        _count(figures, "sla_breaches"),
    ]


def _rows(label: str, figures: Mapping[str, Any], labels: Sequence[str]) -> list[list[str]]:
    rows = [_row(label, figures, labels)]
    for key, name in _REFERENCES:
        reference = figures.get(key)
        if reference is not None:
            rows.append(_row(f"  {name}", reference, labels))
    return rows


def format_kpis(kpis: Mapping[str, Any]) -> str:
    """Every interval of the measured window, all queues together, then each queue's total."""
    labels = [f"{t:g}s" for t in kpis["service_level_thresholds"]]
    header = [
        "interval",
        "offered",
        "answered",
        "abandoned",
        *(f"SL {label}" for label in labels),
        "ASA s",
        "P(wait>0)",
        "AHT s",
        "occupancy",
        "no agent",
        "SLA breach",
    ]
    rows = [header]
    for interval in kpis["intervals"]:
        span = (
            f"{format_duration(interval['start'] * 1000)}-{format_duration(interval['end'] * 1000)}"
        )
        rows += _rows(span, interval, labels)
    rows += _rows("window", kpis["total"], labels)
    for queue, figures in kpis["queues"].items():
        rows += _rows(f"queue {queue}", figures["total"], labels)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)
        ).rstrip()
        for row in rows
    ]
    window = kpis["window"]
    title = (
        f"planner's figures from {format_duration(window['start'] * 1000)} to"
        f" {format_duration(window['end'] * 1000)} (warm-up {kpis['warm_up']:g}s excluded)"
    )
    return "\n".join([title, *lines, _reference(kpis.get("reference"))]) + "\n"


def _reference(model: Mapping[str, Any] | None) -> str:
    if model is None:
        return ""
    if model["model"] is None:
        return f"no analytic reference: {model['why']}"
    patience = model["patience_seconds"]
    return (
        f"analytic reference {model['model']}: {model['agents']} agents, mean handling"
        f" {model['handling_seconds']:g}s"
        + ("" if patience is None else f", mean patience {patience:g}s")
    )
