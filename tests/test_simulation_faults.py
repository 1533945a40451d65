"""Faults inside a simulation (``faults:``): injected on the virtual clock, recovered from by the
engine, the invariants checked at the end of the run, and a seed that replays exactly."""

from __future__ import annotations

import copy
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from thespian.actors import ActorExitRequest

from runtime import testing
from runtime.cli import main
from runtime.invariants import StoredEvent, conversation_problems, room_problems
from runtime.simulation import ScenarioError, load_scenario, run
from runtime.simulation import checks as checks_module
from runtime.simulation.checks import RunChecks
from runtime.simulation.faults import FaultInjector
from tests.conftest import MakeGateway, watchdog

#: A small center with a bot, agents, transfers of state: each run takes well under a second.
SMALL: dict[str, Any] = {
    "name": "small",
    "seed": 5,
    "duration": "20m",
    "drain": "40m",
    "arrivals": {"per_hour": 60},
    "channels": {"WEB": 3, "WHATSAPP": 1},
    "customers": {"bot_resolves": 0.3, "think_time": {"mean": 10}, "patience": {"mean": "2m"}},
    "agents": [{"count": 3, "max_conversations": 2, "reply_time": {"mean": 15}}],
    "config": {"routing": {"request_ttl_seconds": 150}},
}


@pytest.fixture(autouse=True)
def _time_limit() -> Iterator[None]:
    with watchdog(30.0, "the simulation test"):
        yield


def with_faults(*faults: dict[str, Any], **changes: Any) -> dict[str, Any]:
    scenario = copy.deepcopy(SMALL)
    scenario.update(changes)
    scenario["faults"] = list(faults)
    return scenario


def held(summary: dict[str, Any]) -> bool:
    invariants = summary["invariants"]
    assert invariants["violated"] == {}, invariants["violated"]
    return bool(invariants["held"])


# ------------------------------------------------------------------------------ crashes


def test_a_host_crash_at_a_fixed_time_keeps_every_invariant_and_replays_exactly() -> None:
    scenario = with_faults({"kind": "host_crash", "at": "10m", "host": 0})
    first, second = run(scenario), run(scenario)
    assert first.summary["faults"]["injected"] == [
        {"fault": 0, "kind": "host_crash", "at_seconds": 600.0, "host": 0}
    ]
    assert first.summary["faults"]["restarts"]["host"] == 1
    assert held(first.summary)
    assert first.event_log_sha256 == second.event_log_sha256
    assert first.results == second.results


def test_an_agent_host_crash_logs_its_agents_in_again_and_keeps_every_invariant() -> None:
    scenario = with_faults({"kind": "agent_host_crash", "at": "8m"})
    first, second = run(scenario), run(scenario)
    injected = first.summary["faults"]["injected"]
    assert [(i["kind"], i["agents"]) for i in injected] == [("agent_host_crash", 3)]
    assert held(first.summary)
    assert first.event_log_sha256 == second.event_log_sha256
    answered_after = [
        c for c in first.conversations if any(start > 9 * 60_000 for _, start, _ in c.stints)
    ]
    assert answered_after  # the agents, logged in again, take conversations
    assert first.summary["driver"]["refused"] == 0


def test_a_router_restart_keeps_every_invariant() -> None:
    result = run(with_faults({"kind": "router_restart", "at": "7m"}))
    assert result.summary["faults"]["restarts"]["router"] == 1
    assert held(result.summary)


def test_random_faults_come_from_the_seed() -> None:
    scenario = with_faults(
        {"kind": "host_crash", "at": "random", "window": {"start": "5m", "end": "15m"}},
        {"kind": "router_restart"},
    )
    first, again, other = run(scenario), run(scenario), run(scenario, seed=6)
    injected = first.summary["faults"]["injected"]
    assert injected == again.summary["faults"]["injected"]
    assert first.event_log_sha256 == again.event_log_sha256
    assert 300 <= injected[0]["at_seconds"] <= 900
    assert injected != other.summary["faults"]["injected"]
    assert held(first.summary) and held(other.summary)


def test_faults_leave_the_customers_arrivals_alone_with_common_random_numbers() -> None:
    plain = run(with_faults(common_random_numbers=True))
    crashed = run(with_faults({"kind": "host_crash", "at": "random"}, common_random_numbers=True))
    assert crashed.summary["conversations"]["total"] == plain.summary["conversations"]["total"]


# ------------------------------------------------------------------------------ the archive


def test_an_archive_refusing_writes_holds_conversations_closing_then_archives_each_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    closing_when_it_recovered: list[int] = []
    recover = FaultInjector.archive_back

    def recovering(self: FaultInjector, *args: Any) -> None:
        closing_when_it_recovered.append(self.gw.status()["conversations"].get("CLOSING", 0))
        recover(self, *args)

    monkeypatch.setattr(FaultInjector, "archive_back", recovering)
    archive = tmp_path / "archive.sqlite3"
    result = run(with_faults({"kind": "archive_refuses", "at": "5m", "for": "2m"}), archive=archive)
    assert closing_when_it_recovered[0] > 0  # held back while the archive refused writes
    assert held(result.summary)
    with sqlite3.connect(archive) as db:
        stored = Counter(cid for (cid,) in db.execute("SELECT conversation_id FROM events"))
        repeated = db.execute(
            "SELECT conversation_id, seq FROM events GROUP BY conversation_id, seq"
            " HAVING COUNT(*) > 1"
        ).fetchall()
        states = dict(db.execute("SELECT id, state FROM conversations"))
    assert repeated == []
    for outcome in result.conversations:  # every one archived after the archive recovered
        assert states[outcome.id] == "CLOSED"
        assert stored[outcome.id] > 0


def test_duplicate_deliveries_are_stored_once() -> None:
    result = run(with_faults({"kind": "duplicate_deliveries", "share": 0.5}))
    (injected,) = result.summary["faults"]["injected"]
    assert injected["messages"] > 10
    assert held(result.summary)
    assert result.summary["invariants"]["checked"][1] == "no_event_stored_twice"


# ------------------------------------------------------------------------------ the checks


def events(*seqs: int, ids: tuple[str, ...] = ()) -> list[StoredEvent]:
    found = [StoredEvent(seq, "AGENT_MESSAGE", {"text": "x"}) for seq in seqs]
    for n, message_id in enumerate(ids):
        found.append(StoredEvent(len(seqs) + n + 1, "CUSTOMER_MESSAGE", {"message_id": message_id}))
    return found


def test_a_gap_a_repeat_and_a_lost_message_are_each_named() -> None:
    found = conversation_problems(
        "c1", events(1, 3, ids=("m1", "m1")), None, acknowledged_customer_messages=2
    )
    assert sorted(name for name, _ in found) == [
        "no_event_stored_twice",
        "nothing_acknowledged_lost",
        "sequences_gap_free",
    ]


def test_two_live_conversations_in_a_room_are_named() -> None:
    assert room_problems("r", [(0, 10, "a"), (10, None, "b")]) == []
    assert room_problems("r", [(0, None, "a"), (5, None, "b")]) == [
        "room r: a and b were live at the same time"
    ]


def test_a_violated_invariant_is_in_the_summary_and_fails_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def lossy(*args: Any, **kw: Any) -> list[tuple[str, str]]:
        return [("nothing_acknowledged_lost", f"{args[0]}: 1 acknowledged, 0 stored")]

    monkeypatch.setattr(checks_module, "conversation_problems", lossy)
    path = tmp_path / "small.yaml"
    path.write_text(repr(SMALL).replace("'", '"'))  # JSON is YAML
    assert main(["simulate", str(path), "--no-progress", "--duration", "5m"]) == 1
    assert "invariants violated: nothing_acknowledged_lost" in capsys.readouterr().err


def test_the_checks_count_every_problem_and_show_a_few() -> None:
    checks = RunChecks({}, {"c": 3})
    for n in range(25):
        checks.add(f"c{n}", [], live=True)
    checks.add("c", [], live=True)
    summary = checks.summary()
    assert summary["held"] is False
    lost = summary["violated"]["nothing_acknowledged_lost"]
    assert lost["count"] == 1
    assert lost["problems"] == ["c: 3 customer messages acknowledged, 0 stored"]


# ------------------------------------------------------------------------------ the spec


@pytest.mark.parametrize(
    ("faults", "key", "problem"),
    [
        ([{"kind": "host_crash", "at": "10m"}, {"kind": "host_crash", "at": "soon"}],
         "faults[1].at", "expected a duration"),
        ([{"kind": "host_crsh"}], "faults[0].kind", "expected one of"),
        ([{"kind": "host_crash", "hots": 1}], "faults[0].hots", "unknown key"),
        ([{"kind": "host_crash", "host": -1}], "faults[0].host", "an integer from 0"),
        ([{"kind": "archive_refuses", "at": "5m"}], "faults[0].for", "missing"),
        ([{"kind": "archive_refuses", "at": "19m", "for": "2h"}], "faults[0].for", "before the run ends"),
        ([{"kind": "router_restart", "at": "5m", "window": {"start": 0}}],
         "faults[0].window", "only with `at: random`"),
        ([{"kind": "duplicate_deliveries", "share": 2}], "faults[0].share", "a probability"),
        ([{"at": "5m"}], "faults[0].kind", "missing"),
        ({"kind": "host_crash"}, "faults", "a list of faults"),
    ],
)  # fmt: skip
def test_a_bad_fault_names_its_key(faults: Any, key: str, problem: str) -> None:
    scenario = copy.deepcopy(SMALL)
    scenario["faults"] = faults
    with pytest.raises(ScenarioError) as caught:
        load_scenario(scenario)
    assert caught.value.key == key
    assert problem in caught.value.problem


# ------------------------------------------------------------------------------ the clock


def test_an_exited_routers_alarm_does_not_stall_the_virtual_clock(
    make_gateway: MakeGateway,
) -> None:
    gw = make_gateway(bot={"enabled": False})
    ref = gw.start_session("cust-1", "WEB", "v1")
    gw.request_agent(ref.conversation_id)  # the Router holds the request's expiry alarm
    router = testing.directory(gw)["router"]
    assert str(router) in testing.alarms(gw)
    testing.system(gw).tell(router, ActorExitRequest())
    with watchdog(10, "advance after the Router exited"):  # it used to fire at it forever
        gw.advance(3600)
    assert str(router) not in testing.alarms(gw)


def test_the_shipped_fault_scenario_holds_every_invariant_and_shows_its_faults(
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = Path(__file__).resolve().parent.parent / "scenarios" / "faults_day.yaml"
    assert main(["simulate", str(path), "--no-progress"]) == 0
    table = capsys.readouterr().out
    assert "engine restarts               archivist 0, host 2, router 1" in table
    assert "invariants                    all 5 held" in table


def test_a_scenario_with_faults_runs_on_files_by_default() -> None:
    result = run(with_faults({"kind": "host_crash", "at": "10m"}))
    assert result.summary["performance"]["storage"] == "files"


def test_a_scenario_with_faults_refuses_memory_storage() -> None:
    with pytest.raises(ScenarioError, match="faults needs files"):
        run(with_faults({"kind": "host_crash", "at": "10m"}), storage="memory")
