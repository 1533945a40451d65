"""The planner's figures of a simulation run: what the event log gives, per interval and queue,
the warm-up and the measured window, and the ``report`` section's checks."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from runtime.simulation import ScenarioError, load_scenario, run
from runtime.simulation.kpis import interval_edges
from tests.conftest import watchdog

#: Two queues, too few agents for the first: waits, abandonment and SLA breaches in minutes.
CENTER: dict[str, Any] = {
    "name": "two_queues",
    "seed": 5,
    "duration": "30m",
    "drain": "30m",
    "arrivals": {"per_hour": 90},
    "customers": {
        "bot_resolves": 0.2,
        "think_time": {"mean": 10},
        "patience": {"mean": "90s"},
        "queues": {"default": 3, "sales": 1},
    },
    "agents": [
        {"name": "support", "count": 2, "reply_time": {"mean": 25}},
        {"name": "sales", "count": 1, "queues": ["sales"], "reply_time": {"mean": 25}},
    ],
    "config": {"timers": {"agent_sla": {"seconds": 45}}},
    "report": {"interval": "10m", "service_level": ["20s", "60s"]},
}


@pytest.fixture(autouse=True)
def _time_limit() -> Iterator[None]:
    with watchdog(20.0, "the simulation test"):
        yield


def center(**report: Any) -> dict[str, Any]:
    scenario = copy.deepcopy(CENTER)
    scenario["report"].update(report)
    return scenario


def _ms(stamp: str) -> int:
    return round(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)


def requests_from_the_log(path: Path) -> list[dict[str, Any]]:
    """Every agent request and how it ended, read from the canonical event log alone."""
    requests: list[dict[str, Any]] = []
    state: dict[str, dict[str, Any]] = {}
    for line in path.read_text(encoding="ascii").splitlines():
        event = json.loads(line)
        c = state.setdefault(event["conversation_id"], {"live": 0, "pending": None, "sla": None})
        name, at, data = event["name"], _ms(event["timestamp"]), event["data"]
        if name == "CHANNEL_SESSION_STARTED":
            c["live"] += 1
        elif name == "CHANNEL_SESSION_ENDED":
            c["live"] -= 1
            reason = data.get("end_reason")
            if c["live"] == 0 and c["pending"] and reason in ("CUSTOMER", "NETWORK"):
                c["pending"]["end"], c["pending"] = "abandoned", None
        elif name == "AGENT_REQUESTED":
            c["pending"] = {"at": at, "queue": data["queue"], "again": c["sla"] == at, "end": None}
            requests.append(c["pending"])
        elif name == "AGENT_SUBSCRIBED" and data["role"] in ("PRIMARY", "ASSISTANT"):
            if c["pending"]:
                c["pending"]["end"], c["pending"]["wait"], c["pending"] = "answered", at, None
        elif name == "NO_AGENT_AVAILABLE" and c["pending"]:
            c["pending"]["end"], c["pending"] = "no_agent", None
        elif name == "AGENT_SLA_EXPIRED":
            c["sla"] = at
    return requests


def test_service_level_and_abandonment_equal_what_the_event_log_gives(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    result = run(center(), events=log)
    total = result.summary["kpis"]["total"]
    offered = [r for r in requests_from_the_log(log) if not r["again"]]
    waits = [r["wait"] - r["at"] for r in offered if r["end"] == "answered"]
    abandoned = sum(1 for r in offered if r["end"] == "abandoned")
    assert abandoned > 0 and len(waits) < len(offered)  # the center is busy enough to tell
    assert total["offered"] == len(offered)
    assert total["abandoned"] == abandoned
    assert total["abandonment_rate"] == round(abandoned / len(offered), 4)
    assert total["service_level"] == {
        "20s": round(sum(1 for w in waits if w <= 20_000) / len(offered), 4),
        "60s": round(sum(1 for w in waits if w <= 60_000) / len(offered), 4),
    }
    assert total["asa_seconds"] == round(sum(waits) / len(waits) / 1000, 3)


def test_the_queues_and_the_intervals_add_up_to_the_window() -> None:
    kpis = run(center()).summary["kpis"]
    assert [(i["start"], i["end"]) for i in kpis["intervals"]] == [
        (0.0, 600.0),
        (600.0, 1200.0),
        (1200.0, 1800.0),
    ]
    assert set(kpis["queues"]) == {"default", "sales"}
    for key in ("offered", "answered", "abandoned", "no_agent_available", "sla_breaches"):
        assert sum(i[key] for i in kpis["intervals"]) == kpis["total"][key]
        assert sum(q["total"][key] for q in kpis["queues"].values()) == kpis["total"][key]


def test_an_excluded_warm_up_leaves_out_what_was_asked_during_it() -> None:
    whole = run(center())
    warmed = run(center(warm_up="10m"))
    assert warmed.event_log_sha256 == whole.event_log_sha256  # the run itself is the same
    later = whole.summary["kpis"]["intervals"][1:]
    kpis = warmed.summary["kpis"]
    assert kpis["window"] == {"start": 600.0, "end": 1800.0}
    assert kpis["intervals"] == later
    assert kpis["total"]["offered"] == sum(i["offered"] for i in later)
    assert kpis["total"]["offered"] < whole.summary["kpis"]["total"]["offered"]


def test_a_window_into_the_drain_counts_its_occupancy() -> None:
    arrivals = run(center(interval="30m")).summary["kpis"]
    with_drain = run(center(interval="30m", window={"end": "1h"})).summary["kpis"]
    assert len(arrivals["intervals"]) == 1 and len(with_drain["intervals"]) == 2
    assert with_drain["intervals"][0] == arrivals["intervals"][0]
    drain = with_drain["intervals"][1]
    assert drain["offered"] == 0  # nobody arrives in the drain
    assert drain["occupancy"] < arrivals["intervals"][0]["occupancy"]


def test_intervals_are_aligned_on_the_start_of_the_run() -> None:
    assert interval_edges(300.0, 2000.0, 600.0) == [300.0, 600.0, 1200.0, 1800.0, 2000.0]
    assert interval_edges(0.0, 1200.0, 600.0) == [0.0, 600.0, 1200.0]


BASE = "seed: 1\nduration: 1h\ndrain: 30m\narrivals: {per_hour: 10}\n"


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        (BASE + "report: {intervall: 15m}\n", "report.intervall", "did you mean report.interval"),
        (BASE + "report: {interval: 0}\n", "report.interval", "a duration > 0"),
        (BASE + "report: {interval: 1ms}\n", "report.interval", "at most 2000"),
        (BASE + "report: {service_level: [20s, soon]}\n", "report.service_level[1]", "duration"),
        (BASE + "report: {warm_up: 2h}\n", "report.warm_up", "nothing to measure"),
        (BASE + "report: {window: {end: 2h}}\n", "report.window.end", "within the run"),
        (BASE + "report: {window: {start: 1h}}\n", "report.window.start", "nothing to measure"),
    ],
)
def test_a_bad_report_section_names_its_key(
    tmp_path: Path, text: str, key: str, problem: str
) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert caught.value.key == key
    assert problem in caught.value.problem


def busy_ms(result: Any, prefix: str, low: int, high: int) -> int:
    """Time each agent of a group had at least one conversation within [low, high), summed."""
    per_agent: dict[str, list[tuple[int, int]]] = {}
    for outcome in result.conversations:
        for agent, start, end in outcome.stints:
            if agent.startswith(prefix):
                per_agent.setdefault(agent, []).append((start, high if end is None else end))
    total = 0
    for spans in per_agent.values():
        covered = set()
        for start, end in spans:
            covered.update(range(max(start, low) // 10, min(end, high) // 10))
        total += len(covered) * 10
    return total


def test_occupancy_counts_only_the_time_agents_were_logged_in() -> None:
    scenario = center(interval="10m")
    scenario["agents"] = [
        {"name": "early", "count": 2, "reply_time": {"mean": 25}},
        {"name": "late", "count": 2, "reply_time": {"mean": 25}, "shift": {"start": "10m"}},
    ]
    scenario["customers"]["queues"] = {"default": 1}
    result = run(scenario)
    first = result.summary["kpis"]["intervals"][0]
    base = 0  # a run starts the virtual clock at the epoch
    busy = busy_ms(result, "early-", base, base + 600_000)
    assert busy_ms(result, "late-", base, base + 600_000) == 0
    # the late group is not logged in yet: the first ten minutes are the early group's alone
    assert first["occupancy"] == pytest.approx(busy / (2 * 600_000), abs=0.002)
