"""A sweep's results for people: a table (text and CSV), the figures as JSON, plots of service
level, abandonment, wait and occupancy against the swept value (PNG, with the target's line),
and one self-contained HTML page holding them all.

The plots need matplotlib (the ``plot`` extra: ``pip install -e '.[plot]'``); without it the
table, the JSON and the page are written and the page says the plots are missing.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runtime.simulation.report import format_duration
from runtime.simulation.sweep import SweepResult
from runtime.simulation.sweep_spec import Target

__all__ = ["format_sweep", "sweep_rows", "write_sweep"]

#: (figure key, title, y label) of each plot panel
_PANELS = (
    ("service_level", "service level", "share answered within T"),
    ("abandonment_rate", "abandonment", "share of offered"),
    ("asa_seconds", "average speed of answer", "seconds"),
    ("occupancy", "occupancy", "share of logged-in time"),
)


def _cell(value: Any, percent: bool = False) -> str:
    if value is None:
        return "-"
    if percent:
        return f"{value * 100:.1f}%"
    return f"{value:g}" if isinstance(value, float) else str(value)


def sweep_rows(result: SweepResult) -> list[list[str]]:
    """The table: a header, then one row per value with the window's figures."""
    thresholds = result.summaries[0]["kpis"]["service_level_thresholds"] if result.summaries else []
    labels = [f"{t:g}s" for t in thresholds]
    rows = [
        [
            result.key,
            "offered",
            "answered",
            *(f"SL {label}" for label in labels),
            "abandoned",
            "ASA s",
            "P(wait>0)",
            "AHT s",
            "occupancy",
        ]
    ]
    for value, summary in zip(result.values, result.summaries, strict=True):
        total = summary["kpis"]["total"]
        rows.append(
            [
                _cell(value),
                _cell(total["offered"]),
                _cell(total["answered"]),
                *(_cell(total["service_level"].get(label), True) for label in labels),
                _cell(total["abandonment_rate"], True),
                _cell(total["asa_seconds"]),
                _cell(total["p_wait"], True),
                _cell(total["aht_seconds"]),
                _cell(total["occupancy"], True),
            ]
        )
    return rows


def _found_value(entry: Mapping[str, Any]) -> str:
    also = ", ".join(_cell(value) for value in entry["also_met"])
    if entry["value"] is None:
        return f"none without a gap (met at {also} only)" if also else "none of the values"
    return _cell(entry["value"]) + (f" (met again past a miss at {also})" if also else "")


def _found_lines(found: Mapping[str, Any] | None, key: str) -> list[str]:
    if found is None:
        return []
    lines = [f"{found['direction']} {key} for {found['target']}:"]
    for interval in found["intervals"]:
        span = (
            f"{format_duration(interval['start'] * 1000)}-{format_duration(interval['end'] * 1000)}"
        )
        lines.append(f"  {span}  {_found_value(interval)}")
    lines.append(f"  window   {_found_value(found['window'])}")
    return lines


def format_sweep(result: SweepResult, found: Mapping[str, Any] | None = None) -> str:
    rows = sweep_rows(result)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [f"{result.scenario}: {len(result.values)} runs, {result.key} swept"]
    lines += ["  ".join(cell.rjust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    return "\n".join(lines + _found_lines(found, result.key)) + "\n"


def _series(result: SweepResult, figure: str) -> dict[str, list[float | None]]:
    """Each line of a panel: the simulated window's figure, and Erlang A (else C) beside it
    where the summary has it."""
    series: dict[str, list[float | None]] = {}
    for summary in result.summaries:
        total = summary["kpis"]["total"]
        reference = next((k for k in ("erlang_a", "erlang_c") if total.get(k) is not None), None)
        sources = [("", total)]
        if reference is not None:
            sources.append((f" ({reference.replace('_', ' ').title()})", total[reference]))
        for suffix, figures in sources:
            if figure == "service_level":
                for label, value in figures["service_level"].items():
                    series.setdefault(f"within {label}{suffix}", []).append(value)
            else:
                series.setdefault(
                    f"simulated{suffix}" if not suffix else suffix.strip(" ()"), []
                ).append(figures[figure])
    return series


def _plot_png(result: SweepResult, target: Target | None) -> bytes | None:
    try:
        from matplotlib.figure import Figure  # noqa: PLC0415 (optional: the plot extra)
    except ImportError:
        return None
    figure = Figure(figsize=(10, 7.5), layout="constrained")
    axes = figure.subplots(2, 2)
    values = [float(v) for v in result.values]
    for panel, (key, title, unit) in zip(axes.flat, _PANELS, strict=True):
        for label, points in _series(result, key).items():
            if len(points) != len(values):
                continue  # a reference only some variants fit
            xs = [x for x, y in zip(values, points, strict=True) if y is not None]
            ys = [y for y in points if y is not None]
            style = "--" if "Erlang" in label else "-"
            panel.plot(xs, ys, marker="o", linestyle=style, label=label)
        if target is not None and target.figure == key:
            panel.axhline(target.bound, color="red", linestyle="--", label=f"target {target.text}")
        panel.set_title(title)
        panel.set_xlabel(result.key)
        panel.set_ylabel(unit)
        panel.grid(True, alpha=0.3)
        panel.legend(fontsize="small")
    figure.suptitle(f"{result.scenario}: {result.key} swept")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _html(result: SweepResult, png: bytes | None, found: Mapping[str, Any] | None) -> str:
    rows = sweep_rows(result)
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
        for row in rows[1:]
    )
    picture = (
        f'<img alt="figures against {html.escape(result.key)}" '
        f'src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'
        if png is not None
        else "<p>No plots: matplotlib is not installed (the <code>plot</code> extra).</p>"
    )
    found_text = "\n".join(_found_lines(found, result.key))
    title = html.escape(f"{result.scenario}: {result.key} swept")
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{title}</title><style>"
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}</style></head><body>"
        f"<h1>{title}</h1><table><tr>{head}</tr>{body}</table>"
        + (f"<pre>{html.escape(found_text)}</pre>" if found_text else "")
        + f"{picture}</body></html>\n"
    )


def write_sweep(
    result: SweepResult, directory: str | Path, found: Mapping[str, Any] | None = None
) -> list[Path]:
    """Write ``sweep.json``, ``sweep.csv``, ``sweep.png`` (with matplotlib) and
    ``sweep.html`` into ``directory``; returns the paths written."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    data = {
        "scenario": result.scenario,
        "key": result.key,
        "values": list(result.values),
        "runs": list(result.summaries),
        "found": found,
    }
    path = out / "sweep.json"
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    written.append(path)
    path = out / "sweep.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(sweep_rows(result))
    written.append(path)
    png = _plot_png(result, result.target)
    if png is not None:
        path = out / "sweep.png"
        path.write_bytes(png)
        written.append(path)
    path = out / "sweep.html"
    path.write_text(_html(result, png, found), encoding="utf-8")
    written.append(path)
    return written
