"""Simulated transfers and consults: the scenario keys, the driver that makes them, and the
summary and planner figures that count them (scenarios/transfers_and_consults.yaml)."""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.simulation import ScenarioError, load_scenario, run
from runtime.simulation.driver_base import timestamp_ms
from runtime.simulation.metrics import analyse
from runtime.simulation.scenario import read_document
from tests.conftest import watchdog

SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "transfers_and_consults.yaml"


@pytest.fixture(autouse=True)
def _time_limit() -> Iterator[None]:
    with watchdog(20.0, "the simulation test"):
        yield


def events_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_summary_counts_the_transfers_and_consults_of_the_event_log(tmp_path: Path) -> None:
    result = run(SCENARIO, duration="1h", events=tmp_path / "log.jsonl")
    names = Counter(event["name"] for event in events_of(tmp_path / "log.jsonl"))
    assert result.summary["transfers"] == names["CONVERSATION_TRANSFERRED"] > 0
    assert result.summary["consults"] == names["CONSULT_REQUESTED"] > 0
    assert names["CONSULT_CONCLUDED"] > 0
    assert result.summary["driver"]["refused"] == 0


def test_a_transferred_chat_is_offered_to_the_queue_it_was_transferred_to(
    tmp_path: Path,
) -> None:
    result = run(SCENARIO, duration="1h", drain="30m", events=tmp_path / "log.jsonl")
    events = events_of(tmp_path / "log.jsonl")
    end_ms = 3_600_000  # a run starts the virtual clock at the epoch: the window is its hour
    transferred = [
        e
        for e in events
        if e["name"] == "CONVERSATION_TRANSFERRED" and timestamp_ms(e["timestamp"]) < end_ms
    ]
    queues = result.summary["kpis"]["queues"]
    assert queues["billing"]["total"]["offered"] == len(transferred) > 0


def test_a_consults_request_is_not_offered_as_a_customers_chat() -> None:
    summary = run(SCENARIO, duration="1h").summary
    assert summary["consults"] > 0
    assert "experts" not in summary["kpis"]["queues"]


def test_a_consults_agent_request_is_not_the_customers() -> None:
    at = "1970-01-01T00:01:00.000Z"
    events = [
        {"name": "AGENT_REQUESTED", "timestamp": "1970-01-01T00:00:10.000Z", "data": {}},
        {"name": "AGENT_SUBSCRIBED", "timestamp": at, "data": {"agent_id": "a", "role": "PRIMARY"}},
        {"name": "CONSULT_REQUESTED", "timestamp": at, "data": {"agent_id": "a"}},
        {"name": "AGENT_REQUESTED", "timestamp": at, "data": {"queue": "experts"}},
    ]
    outcome = analyse("c1", 1, events)
    assert (outcome.consults, outcome.agent_requests, len(outcome.requests)) == (1, 1, 1)


def test_a_group_without_handovers_keeps_its_event_log(tmp_path: Path) -> None:
    document = copy.deepcopy(dict(read_document(str(SCENARIO))))
    plain = copy.deepcopy(document)
    for group in plain["agents"]:
        group.pop("transfer", None)
        group.pop("consult", None)
    zero = copy.deepcopy(plain)
    zero["agents"][0]["transfer"] = {"share": 0, "queue": "billing"}
    assert run(plain, duration="20m").event_log_sha256 == run(zero, duration="20m").event_log_sha256


def test_a_transfer_without_its_share_names_the_key() -> None:
    document = copy.deepcopy(dict(read_document(str(SCENARIO))))
    document["agents"][0]["transfer"] = {"queue": "billing"}
    with pytest.raises(ScenarioError, match=r"agents\[0\]\.transfer\.share: missing"):
        load_scenario(document)


def test_the_scenario_keys_are_read() -> None:
    front = load_scenario(SCENARIO).agents[0]
    assert (front.transfer_share, front.transfer_queue) == (0.2, "billing")
    assert (front.consult_share, front.consult_queue, front.consult_transfer) == (
        0.25,
        "experts",
        0.4,
    )
