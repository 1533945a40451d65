"""How a run is shown to people: the progress bar while it runs, the summary table after."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TextIO

from tqdm import tqdm

__all__ = ["ProgressBar", "format_duration", "format_summary"]

#: How the summary names the storage a run used (``run(storage=...)``).
_STORAGE = {
    "memory": "memory (no journal, archive in memory: simulation only)",
    "files": "files (journal and SQLite archive, as a running engine)",
}


def format_duration(ms: float) -> str:
    """``ms`` as ``H:MM:SS`` (virtual time since the start of the run)."""
    seconds = int(ms // 1000)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


#: Done, the bar, virtual time done/all, wall time spent and left (from the rate so far).
_BAR = "{percentage:5.1f}%|{bar:30}| virtual {desc} [{elapsed}<{remaining} left]{postfix}"


class ProgressBar:
    """The run's progress on a terminal stream (tqdm): virtual time done out of the run's, the
    conversations started and open, and an estimate of the wall time left.

    It is only a view: tqdm reads the wall clock to draw at most ``per_second`` times a second
    and to estimate the time left; nothing it does reaches the simulation's results.
    """

    def __init__(self, stream: TextIO, *, per_second: float = 8.0) -> None:
        self.stream = stream
        self.per_second = per_second
        self._bar: tqdm[Any] | None = None

    def __call__(self, now_ms: int, end_ms: int, started: int, open_now: int) -> None:
        where = f"{format_duration(now_ms)}/{format_duration(end_ms)}"
        count = f"conversations {started} ({open_now} open)"
        bar = self._bar
        if bar is None:
            self._bar = tqdm(
                total=end_ms / 1000,
                initial=min(now_ms, end_ms) / 1000,
                desc=where,
                postfix=count,
                file=self.stream,
                mininterval=1.0 / self.per_second,
                bar_format=_BAR,
            )
            return
        bar.set_description_str(where, refresh=False)
        bar.set_postfix_str(count, refresh=False)
        bar.update(min(now_ms, end_ms) / 1000 - bar.n)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _times(figures: Mapping[str, Any]) -> str:
    if not figures.get("count"):
        return "-"
    return (
        f"mean {figures['mean']:.1f}  p50 {figures['p50']:.1f}  p95 {figures['p95']:.1f}"
        f"  max {figures['max']:.1f}  (n={figures['count']})"
    )


def format_summary(summary: Mapping[str, Any]) -> str:
    """The summary as a table for people (``--json`` gives the same figures as JSON)."""
    conversations = summary["conversations"]
    virtual = summary["virtual_seconds"]
    agents = summary["agents"]
    performance = summary.get("performance", {})
    rows: list[tuple[str, str]] = [
        ("conversations", str(conversations["total"])),
    ]
    rows += [(f"  {state}", str(count)) for state, count in conversations["by_state"].items()]
    rows.append(("closed by", ""))
    rows += [(f"  {who}", str(count)) for who, count in conversations["closed_by"].items()]
    rows += [
        ("with an agent", str(conversations["with_agent"])),
        ("without an agent (bot only)", str(conversations["without_agent"])),
        ("agent requests", str(summary["agent_requests"])),
        ("agent SLA breaches", str(summary["agent_sla_breaches"])),
        ("  re-routed after a breach", str(summary["rerouted"])),
        ("customer inactivity expiries", str(summary["customer_inactivity_expiries"])),
        ("abandoned while waiting", str(summary["abandoned"])),
        ("NO_AGENT_AVAILABLE", str(summary["no_agent_available"])),
        ("RONA", str(summary["rona"])),
        ("transfers", str(summary["transfers"])),
        ("consults", str(summary["consults"])),
        ("waiting time (s)", _times(summary["waiting_seconds"])),
        ("handling time (s)", _times(summary["handling_seconds"])),
        (
            "agent occupancy",
            f"{agents['occupancy'] * 100:.1f} %  (utilisation {agents['utilisation'] * 100:.1f} %"
            f" of their slots; {agents['logged_in']} agents logged in)",
        ),
        ("events simulated", str(summary["events"])),
        ("event log sha256", str(summary["event_log_sha256"])),
    ]
    if performance:
        rows.append(
            (
                "wall time",
                f"{performance['wall_seconds']:.2f} s  ({performance['events_per_second']:,}"
                f" events/s; {performance['virtual_seconds_per_wall_second']:,.0f}"
                " virtual s per s)",
            )
        )
        if "storage" in performance:
            rows.append(("storage", _STORAGE.get(performance["storage"], performance["storage"])))
    driver = summary.get("driver", {})
    if driver.get("refused"):
        rows.append(("refused driver actions", str(driver["refused"])))
    rows += _faults_and_invariants(summary)
    width = max(len(label) for label, _ in rows) + 2
    header = (
        f"{summary['scenario']} (seed {summary['seed']}): "
        f"{format_duration(virtual['duration'] * 1000)} of arrivals"
        f" + {format_duration(virtual['drain'] * 1000)} drain,"
        f" {summary['agents_configured']} agents"
    )
    lines = [header, ""]
    lines += [f"{label:<{width}}{value}".rstrip() for label, value in rows]
    return "\n".join(lines) + "\n"


def _faults_and_invariants(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    faults = summary.get("faults", {})
    injected = faults.get("injected", [])
    if injected:
        rows.append(("faults injected", str(len(injected))))
        for fault in injected:
            details = ", ".join(f"{k} {v}" for k, v in fault.items() if k not in ("fault", "kind"))
            rows.append((f"  {fault['kind']}", details))
        restarts = faults.get("restarts", {})
        rows.append(("engine restarts", ", ".join(f"{k} {v}" for k, v in restarts.items())))
    invariants = summary.get("invariants")
    if invariants is not None:
        if invariants["held"]:
            rows.append(("invariants", f"all {len(invariants['checked'])} held"))
        else:
            rows.append(("invariants", "VIOLATED"))
            for name, violated in invariants["violated"].items():
                rows.append((f"  {name}", f"{violated['count']}: {violated['problems'][0]}"))
    return rows
