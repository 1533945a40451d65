"""Simulation runs: determinism, agreement with the archive, the shipped scenarios, errors."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.cli import main
from runtime.simulation import ScenarioError, load_scenario, run
from runtime.simulation.metrics import percentile
from runtime.simulation.report import ProgressBar
from runtime.simulation.scenario_values import parse_duration
from tests.conftest import watchdog

REPO = Path(__file__).resolve().parent.parent
SCENARIOS = sorted((REPO / "scenarios").glob("*.yaml"))
SHIPPED = ("web_chat_team", "whatsapp_campaign", "understaffed_center")

#: A small center: a few minutes of wall time would be a bug; it runs in well under a second.
TINY: dict[str, Any] = {
    "name": "tiny",
    "seed": 3,
    "duration": "20m",
    "drain": "40m",
    "arrivals": {"per_hour": 60},
    "channels": {"WEB": 3, "WHATSAPP": 1, "VOICE": 1},
    "second_channel": 0.2,
    "customers": {
        "bot_resolves": 0.3,
        "think_time": {"mean": 10},
        "patience": {"mean": "2m"},
        "silent_leave": 0.2,
    },
    "bot": {"closes": 0.3},
    "agents": [
        {
            "count": 2,
            "max_conversations": 2,
            "reply_time": {"dist": "lognormal", "mean": 20, "sd": 20},
            "ends_chat": 0.3,
            "hold": {"probability": 0.3, "seconds": 30, "duration": {"mean": 30}},
            "wrap_up": {"time": {"mean": 20}, "forget": 0.2},
            "breaks": {"every": "15m", "length": "3m"},
        }
    ],
    "config": {
        "timers": {"agent_sla": {"seconds": 45}, "wrap_up": {"enabled": True, "seconds": 60}},
        "routing": {"request_ttl_seconds": 150},
    },
}


@pytest.fixture(autouse=True)
def _time_limit() -> Iterator[None]:
    with watchdog(20.0, "the simulation test"):
        yield


def tiny(**changes: Any) -> dict[str, Any]:
    scenario = copy.deepcopy(TINY)
    scenario.update(changes)
    return scenario


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------ determinism


def test_same_seed_gives_the_same_summary_and_event_log(tmp_path: Path) -> None:
    first = run(tiny(), events=tmp_path / "first.jsonl")
    second = run(tiny(), events=tmp_path / "second.jsonl")
    assert first.summary["events"] > 500
    assert first.results == second.results
    assert first.event_log_sha256 == second.event_log_sha256
    assert (tmp_path / "first.jsonl").read_bytes() == (tmp_path / "second.jsonl").read_bytes()
    assert sha256_of(tmp_path / "first.jsonl") == first.event_log_sha256


def test_a_different_seed_gives_a_different_event_log() -> None:
    first = run(tiny())
    other = run(tiny(), seed=4)
    assert other.summary["seed"] == 4
    assert first.event_log_sha256 != other.event_log_sha256
    assert first.results != other.results


def test_determinism_does_not_depend_on_the_process_or_its_hash_seed() -> None:
    """Set and dict ordering must not leak in: other processes, other PYTHONHASHSEEDs."""
    program = (
        "import json, sys\n"
        "from runtime.simulation import run\n"
        "print(run(json.loads(sys.argv[1])).event_log_sha256)\n"
    )
    expected = run(tiny()).event_log_sha256
    for hash_seed in ("1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(REPO)}
        found = subprocess.run(
            [sys.executable, "-c", program, json.dumps(TINY)],
            check=True,
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            timeout=60,
        ).stdout.strip()
        assert found == expected, f"PYTHONHASHSEED={hash_seed}"


# ------------------------------------------------------------------------------ the archive


def test_the_summary_agrees_with_the_archive(tmp_path: Path) -> None:
    archive = tmp_path / "archive.sqlite3"
    result = run(scenario_file("understaffed_center"), duration="80m", archive=archive)
    summary = result.summary
    assert result.archive_path == archive.absolute()
    db = sqlite3.connect(archive)

    def count(sql: str, *params: Any) -> int:
        return int(db.execute(sql, params).fetchone()[0])

    def named(name: str) -> int:
        return count("SELECT COUNT(*) FROM events WHERE name = ?", name)

    conversations = summary["conversations"]
    assert conversations["total"] == count("SELECT COUNT(*) FROM conversations")
    assert conversations["by_state"] == dict(
        db.execute("SELECT state, COUNT(*) FROM conversations GROUP BY state").fetchall()
    )
    assert summary["events"] == count("SELECT COUNT(*) FROM events")
    assert summary["agent_sla_breaches"] == named("AGENT_SLA_EXPIRED") > 0
    assert summary["customer_inactivity_expiries"] == named("CUSTOMER_SLA_EXPIRED")
    assert summary["no_agent_available"] == named("NO_AGENT_AVAILABLE") > 0
    assert summary["agent_requests"] == named("AGENT_REQUESTED")
    assert summary["rona"] == named("RONA")
    with_agent = count(
        "SELECT COUNT(DISTINCT conversation_id) FROM events WHERE name = 'AGENT_SUBSCRIBED'"
    )
    assert conversations["with_agent"] == with_agent
    assert conversations["without_agent"] == conversations["total"] - with_agent
    ended_by = {"BOT": 0, "AGENT": 0, "OPERATOR": 0}
    for (by,) in db.execute(
        "SELECT json_extract(data, '$.by') FROM events WHERE name = 'END_CONVERSATION'"
    ):
        ended_by[by] += 1
    assert conversations["closed_by"].get("bot", 0) == ended_by["BOT"]
    # answered requests: each AGENT_SUBSCRIBED that ended a wait
    assert summary["waiting_seconds"]["count"] <= named("AGENT_SUBSCRIBED")
    # the kept archive opens with the engine's own reader, and holds the same events
    with result.open_archive() as reader:
        first = result.conversations[0]
        assert len(reader.events(first.id)) == first.events
    assert summary["event_log_sha256"] == _log_hash_from_sqlite(db, result)


def _log_hash_from_sqlite(db: sqlite3.Connection, result: Any) -> str:
    """The canonical log rebuilt straight from the SQLite file (independently of the run)."""
    from actors.snapshots import event_dict
    from infra.archive import Archive

    digest = hashlib.sha256()
    assert result.archive_path is not None
    with Archive(result.archive_path, read_only=True) as archive:
        for outcome in result.conversations:
            for event in archive.events(outcome.id):
                record = {"conversation_id": outcome.id, **event_dict(event)}
                line = json.dumps(record, sort_keys=True, separators=(",", ":"))
                digest.update(line.encode("ascii") + b"\n")
    return digest.hexdigest()


def test_memory_storage_gives_the_event_log_of_real_storage() -> None:
    # a run long enough that conversations outgrow the event window kept beside a journal
    memory = run(scenario_file("understaffed_center"), duration="30m")
    files = run(scenario_file("understaffed_center"), duration="30m", storage="files")
    assert memory.summary["performance"]["storage"] == "memory"
    assert files.summary["performance"]["storage"] == "files"
    assert memory.event_log_sha256 == files.event_log_sha256
    assert memory.results == files.results


def test_memory_storage_keeps_no_archive(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="storage"):
        run(tiny(), archive=tmp_path / "archive.sqlite3", storage="memory")


def test_the_archive_path_must_be_new(tmp_path: Path) -> None:
    taken = tmp_path / "taken.sqlite3"
    taken.write_bytes(b"")
    with pytest.raises(FileExistsError, match="already exists"):
        run(tiny(), archive=taken)


# ------------------------------------------------------------------------------ scenarios


def scenario_file(name: str) -> Path:
    return REPO / "scenarios" / f"{name}.yaml"


def test_the_three_scenarios_are_shipped() -> None:
    names = {path.stem for path in SCENARIOS}
    assert set(SHIPPED) <= names
    for path in SCENARIOS:
        scenario = load_scenario(path)
        assert scenario.description and scenario.drain > 0, path.name


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_every_conversation_is_closed_when_the_run_drains(path: Path) -> None:
    result = run(path, duration="15m")
    conversations = result.summary["conversations"]
    assert conversations["total"] > 0
    assert conversations["by_state"] == {"CLOSED": conversations["total"]}
    assert all(outcome.closed_by is not None for outcome in result.conversations)
    # the driver's view of the engine was never stale
    assert result.summary["driver"]["refused"] == 0
    assert result.summary["driver"]["late_assignments"] == 0


def test_without_a_drain_open_conversations_are_reported_as_they_are() -> None:
    result = run(tiny(), drain=0)
    states = result.summary["conversations"]["by_state"]
    assert set(states) - {"CLOSED"}, states  # some were still going at the end
    assert sum(states.values()) == result.summary["conversations"]["total"]


def test_the_understaffed_center_breaches_reroutes_and_runs_out_of_agents() -> None:
    summary = run(scenario_file("understaffed_center"), duration="80m").summary
    assert summary["agent_sla_breaches"] > 20
    assert summary["rerouted"] > 20
    assert summary["no_agent_available"] > 0
    assert summary["abandoned"] > 0
    assert summary["waiting_seconds"]["p95"] > 60


def test_the_campaign_closes_most_conversations_without_an_agent() -> None:
    summary = run(scenario_file("whatsapp_campaign"), duration="1h").summary
    conversations = summary["conversations"]
    assert conversations["without_agent"] > 2 * conversations["with_agent"]
    assert conversations["closed_by"]["bot"] > 0
    assert summary["customer_inactivity_expiries"] > 0


def test_the_web_team_answers_within_the_sla() -> None:
    summary = run(scenario_file("web_chat_team"), duration="1h").summary
    assert summary["agent_sla_breaches"] == 0
    assert summary["no_agent_available"] == 0
    assert summary["conversations"]["with_agent"] > 0
    assert 0 < summary["agents"]["occupancy"] <= 1


def test_offers_without_auto_accept_and_rona() -> None:
    scenario = tiny()
    scenario["config"]["routing"]["auto_accept"] = False
    scenario["config"]["routing"]["accept_timeout_seconds"] = 10
    scenario["agents"][0]["accept_time"] = {"mean": 8}
    summary = run(scenario).summary
    assert summary["rona"] > 0
    assert summary["conversations"]["with_agent"] > 0
    assert summary["conversations"]["by_state"] == {"CLOSED": summary["conversations"]["total"]}


def test_queues_priorities_shifts_and_a_bot_without_keywords() -> None:
    scenario = tiny(
        customers={**TINY["customers"], "queues": {"default": 1, "billing": 1}},
        agents=[
            {"name": "a", "count": 2, "queues": ["default", "billing"], "shift": {"end": "30m"}},
            {"name": "b", "count": 1, "queues": ["billing"], "shift": {"start": "5m"}},
        ],
    )
    scenario["config"] = {
        "bot": {"agent_keywords": []},
        "routing": {"queues": {"billing": {"priority": 3, "agent_sla_seconds": 90}}},
    }
    result = run(scenario)
    summary = result.summary
    assert summary["agent_requests"] > 0  # requested by the channel, as the bot has no keyword
    assert summary["conversations"]["by_state"] == {"CLOSED": summary["conversations"]["total"]}
    assert summary["agents"]["logged_in"] == 3
    assert summary["driver"]["refused"] == 0


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    seed=st.integers(0, 2**32),
    bot_resolves=st.floats(0, 1),
    agents=st.integers(0, 3),
    wrap_up=st.booleans(),
)
def test_any_small_center_drains_to_closed(
    seed: int, bot_resolves: float, agents: int, wrap_up: bool
) -> None:
    scenario = tiny(seed=seed, duration="10m", drain="1h")
    scenario["customers"]["bot_resolves"] = bot_resolves
    scenario["agents"][0]["count"] = agents
    scenario["config"]["timers"]["wrap_up"]["enabled"] = wrap_up
    result = run(scenario)
    conversations = result.summary["conversations"]
    assert conversations["by_state"] == {"CLOSED": conversations["total"]}
    assert result.summary["driver"]["late_assignments"] == 0


def test_a_coarser_resolution_puts_customers_and_agents_on_the_grid(tmp_path: Path) -> None:
    result = run(tiny(resolution="1s"), events=tmp_path / "log.jsonl")
    summary = result.summary
    assert summary["conversations"]["by_state"] == {"CLOSED": summary["conversations"]["total"]}
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    acted = [r for r in records if r["name"] in ("CUSTOMER_MESSAGE", "AGENT_MESSAGE")]
    assert acted and all(r["timestamp"].endswith(".000Z") for r in acted)
    with pytest.raises(ScenarioError, match="resolution"):
        load_scenario(tiny(resolution="1.5ms"))


# ------------------------------------------------------------------------------ the event log


def test_the_event_log_in_json_lines_and_msgpack(tmp_path: Path) -> None:
    result = run(tiny(duration="5m"), events=tmp_path / "log.msgpack")
    assert result.events_path == tmp_path / "log.msgpack"
    with open(tmp_path / "log.msgpack", "rb") as stream:
        records = list(msgpack.Unpacker(stream, raw=False))
    assert len(records) == result.summary["events"]
    lines = b"".join(
        json.dumps(r, sort_keys=True, separators=(",", ":")).encode() + b"\n" for r in records
    )
    assert hashlib.sha256(lines).hexdigest() == result.event_log_sha256
    order = [o.id for o in result.conversations]
    seen: list[str] = []
    for record in records:
        if not seen or seen[-1] != record["conversation_id"]:
            seen.append(record["conversation_id"])
    assert seen == order  # creation order, each conversation's events together, by seq
    assert all(set(r) >= {"conversation_id", "seq", "name", "timestamp", "data"} for r in records)


def test_percentiles_are_nearest_rank() -> None:
    assert percentile([], 95) == 0
    assert percentile([5], 50) == 5
    values = list(range(1, 101))
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 100)) == (
        50,
        95,
        100,
    )


# ------------------------------------------------------------------------------ bad scenarios


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(text, encoding="utf-8")
    return path


BASE = "seed: 1\nduration: 1h\narrivals: {per_hour: 10}\n"


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("", "<top level>", "expected a mapping"),
        ("seed: 1\nseed: 2\n", "<file>", "duplicate key 'seed'"),
        ("seed: [1\n", "<file>", "invalid YAML at line"),
        ("seed: " + "[" * 5000 + "]" * 5000 + "\n", "<file>", "nested too deeply"),
        ("duration: 1h\narrivals: {per_hour: 1}\n", "seed", "missing"),
        (BASE + "durationn: 2h\n", "durationn", "did you mean duration?"),
        (BASE.replace("1h", "soon"), "duration", "expected a duration"),
        (BASE.replace("1h", "-5"), "duration", "from 0 to"),
        ("seed: 1\nduration: 1h\narrivals: {}\n", "arrivals", "exactly one of"),
        (
            "seed: 1\nduration: 1h\narrivals: {profile: [{at: 1h, per_hour: 5}]}\n",
            "arrivals.profile[0].at",
            "first step must be at 0",
        ),
        (BASE + "channels: {WEBB: 1}\n", "channels.WEBB", "did you mean channels.WEB?"),
        (BASE + "channels: {WEB: 0}\n", "channels", "must not all be 0"),
        (BASE + "second_channel: 2\n", "second_channel", "a probability from 0 to 1"),
        (BASE + "customers: {patience: {mean: long}}\n", "customers.patience.mean", "duration"),
        (BASE + "customers: {think_time: {dist: gamma}}\n", "customers.think_time.dist", "one of"),
        (
            BASE + "customers: {exchanges: {min: 3, max: 2}}\n",
            "customers.exchanges.max",
            "must be >= min",
        ),
        (BASE + "agents: [{queues: [default]}]\n", "agents[0].count", "missing"),
        (BASE + "agents: [{count: 1, reply_tme: 5}]\n", "agents[0].reply_tme", "reply_time"),
        (
            BASE + "agents: [{count: 1, max_conversations: 0}]\n",
            "agents[0].max_conversations",
            "from 1 to 100",
        ),
        (
            BASE + "agents: [{count: 1, breaks: {every: 1h}}]\n",
            "agents[0].breaks.length",
            "missing",
        ),
        (
            BASE + "agents: [{count: 1}, {count: 2, name: agent1}]\n",
            "agents[1].name",
            "duplicate",
        ),
        (
            BASE + "config: {timers: {agent_sla: {secnds: 5}}}\n",
            "config.timers.agent_sla.secnds",
            "did you mean config.timers.agent_sla.seconds?",
        ),
        (
            BASE + "config: {routing: {request_ttl_seconds: -1}}\n",
            "config.routing.request_ttl_seconds",
            "expected a number of seconds",
        ),
        (BASE + "config: {storage: {fsync: always}}\n", "config.storage", "set by the simulator"),
    ],
)
def test_a_bad_scenario_is_reported_with_its_file_and_key(
    tmp_path: Path, text: str, key: str, problem: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    error = caught.value
    assert error.source == str(path)
    assert error.key == key
    assert problem in error.problem
    assert str(error).startswith(f"{path}: {key}: ")


def test_a_missing_file_and_a_dict_scenario() -> None:
    with pytest.raises(ScenarioError, match="file not found"):
        load_scenario("no/such/scenario.yaml")
    with pytest.raises(ScenarioError) as caught:
        load_scenario({"seed": 1, "duration": "1h", "arrivals": {"per_hour": "many"}})
    assert caught.value.source == "<dict>"
    assert caught.value.key == "arrivals.per_hour"


def test_durations() -> None:
    assert parse_duration(90) == 90.0
    assert parse_duration("90") == 90.0
    assert parse_duration("1h30m") == 5400.0
    assert parse_duration("1d 2h") == 93600.0
    assert parse_duration("250ms") == 0.25
    for bad in ("1x", "h1", "", "1h 30", True, None):
        with pytest.raises(Exception, match="duration"):
            parse_duration(bad)


def test_overrides_of_the_command_line_are_checked() -> None:
    with pytest.raises(ScenarioError, match="duration"):
        run(tiny(), duration="forever")


# ------------------------------------------------------------------------------ cx simulate


def test_cx_simulate_prints_the_table_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(json.dumps(tiny(duration="5m", drain="20m")))  # JSON is YAML
    out_json = tmp_path / "summary.json"
    events = tmp_path / "events.jsonl"
    code = main(
        ["simulate", str(path), "--json", str(out_json), "--events", str(events), "--no-progress"]
    )
    assert code == 0
    table = capsys.readouterr().out
    summary = json.loads(out_json.read_text())
    assert f"conversations                 {summary['conversations']['total']}" in table
    assert "agent SLA breaches" in table and "waiting time (s)" in table
    assert summary["event_log_sha256"] == sha256_of(events)

    code = main(["simulate", str(path), "--json", "--seed", "5", "--progress"])
    captured = capsys.readouterr()
    assert code == 0
    assert json.loads(captured.out)["seed"] == 5  # only JSON on stdout
    assert "virtual" in captured.err  # the progress bar went to stderr


def test_the_progress_bar_shows_the_virtual_time_done_and_the_wall_time_left() -> None:
    stream = io.StringIO()
    bar = ProgressBar(stream, per_second=1e9)  # draws at every call
    bar(900_000, 3_600_000, 12, 4)
    bar(1_800_000, 3_600_000, 20, 5)
    bar.finish()
    last = stream.getvalue().split("\r")[-1]
    assert last.startswith(" 50.0%|")
    assert "virtual 0:30:00/1:00:00" in last
    assert "conversations 20 (5 open)" in last
    assert re.search(r"<\d\d:\d\d left\]", last), last


def test_cx_simulate_keeps_the_archive_on_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "tiny.yaml"
    path.write_text(json.dumps(tiny(duration="5m", drain="20m")))
    assert main(["simulate", str(path), "--archive", "--no-progress"]) == 0
    assert (tmp_path / "tiny-seed3.sqlite3").exists()
    assert "archive kept at" in capsys.readouterr().out
    assert main(["simulate", str(path), "--archive", "--no-progress"]) == 2  # not overwritten
    assert "already exists" in capsys.readouterr().err


def test_cx_simulate_reports_a_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, BASE + "agents: [{count: 1, reply_tme: 5}]\n")
    assert main(["simulate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: agents[0].reply_tme: unknown key (did you mean agents[0].reply_time?)" in err
