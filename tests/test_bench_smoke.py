"""The benchmarks' smallest cases run, so that their code cannot rot (no timing asserted)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from bench import against, budget, journal


def test_journal_benchmark_smallest_case_runs(capsys: object) -> None:
    assert journal.main(["--runs", "1", "--events", "300", "--conversations", "50"]) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "journal: microseconds per event" in out and "raw sqlite" in out


def test_simulation_budget_splits_a_run_and_puts_the_engine_back() -> None:
    originals = {(owner, name): owner.__dict__[name] for owner, name, _ in budget.ENTRY_POINTS}
    scenario = Path(__file__).resolve().parent.parent / "scenarios" / "web_chat_team.yaml"
    lines = budget.measure(str(scenario), "20m")
    assert "us per event" in lines[0]
    shares = {
        line.split("%", 1)[1].strip(): float(line.split("us")[1].split("%")[0])
        for line in lines[1:]
    }
    assert (
        shares["state machine (pure model)"] > 0
        and shares["engine actor shells (hosts, entities, fan-out)"] > 0
    )
    assert 99.0 <= sum(shares.values()) <= 101.0  # exclusive times: the rows add up to the run
    assert all(owner.__dict__[name] is original for (owner, name), original in originals.items())


@pytest.mark.skipif(
    not (Path(__file__).resolve().parent.parent / ".git").exists(), reason="not a git checkout"
)
def test_simulation_against_a_revision_runs_both_and_cleans_up() -> None:
    root = Path(__file__).resolve().parent.parent
    scenario = root / "scenarios" / "web_chat_team.yaml"

    def worktrees() -> list[Path]:
        return sorted((root / ".git" / "worktrees").glob("*"))

    before = worktrees()
    lines = list(against.compare("HEAD", str(scenario), "10m", 1))
    assert [line.split(":")[0] for line in lines] == [
        "run 1 HEAD",
        "run 1 this tree",
        "median",
        "median per CPU second",
    ]
    for line in lines[:2]:  # each run reports its events and its own event log hash
        events = int(line.split(": ")[1].split()[0].replace(",", ""))
        assert events > 0 and len(line.rsplit("log ", 1)[1]) == 16
    assert worktrees() == before  # the temporary worktree is gone


@pytest.mark.multiproc
def test_performance_suite_smallest_case_runs(tmp_path: Path, capsys: object) -> None:
    """``python -m bench --smoke``: every row of the suite (engine and raw Thespian reference)
    at its smallest size, on real multiprocTCPBase systems; every process is gone afterwards
    (``main`` returns 1 if it had to kill any)."""
    from bench import __main__ as suite

    results = tmp_path / "results.json"
    assert suite.main(["--smoke", "--json", str(results), "--markdown"]) == 0
    rows = json.loads(results.read_text())["rows"]
    assert [row["key"] for row in rows] == list(suite.ROWS)
    assert all(row["ours"] and "nan" not in row["ours"] for row in rows)
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "| what | target | ours |" in out


@pytest.mark.multiproc
def test_benchmark_engine_moves_to_a_free_port_when_its_port_was_taken(tmp_path: Path) -> None:
    """A port written into a benchmark's configuration may be bound by another process before
    the engine's admin starts: the engine starts on another port, written back into the file."""
    import socket

    import yaml

    from bench import support

    config = support.write_config(tmp_path)
    taken = yaml.safe_load(config.read_text())["system"]["admin_port"]
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        with support.engine(config) as running:
            moved = yaml.safe_load(config.read_text())["system"]["admin_port"]
            assert moved != taken and running.port == moved
            assert running.pids()
    assert not support.leftovers()


@pytest.mark.multiproc
def test_node_loss_benchmark_smallest_case_loses_nothing_acknowledged(
    postgres_server: str, capsys: object
) -> None:
    """``python -m bench.node_loss`` at its smallest: two nodes, the member killed, every one
    of its conversations answering again from the leader, and each customer message
    acknowledged before the kill (on both nodes) read back once (no timing asserted)."""
    from bench import node_loss, support

    assert node_loss.main(["--conversations", "20", "--postgres", postgres_server]) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "20 conversations on the member killed with SIGKILL" in out and "0 unanswered" in out
    assert "storage.fsync: always" in out and "40 of 40 sent, 40 conversations read back" in out
    assert "0 lost, 0 duplicated" in out and "0 problems" in out
    assert "0 in unanswered conversations and 0 past the reading's time limit" in out
    assert not support.leftovers()


@pytest.mark.multiproc
def test_serial_fraction_benchmark_smallest_case_runs(capsys: object) -> None:
    """``python -m bench.serial`` at its smallest: one host, one sender, one run; it prints
    the rate, the CPU per message and the busiest processes, and leaves no process behind."""
    from bench import serial, support

    serial.main(
        ["--hosts", "1", "--runs", "1", "--conversations", "20", "--messages", "200",
         "--senders", "1", "--batch", "50"]
    )  # fmt: skip
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert out.startswith("hosts 1, spread 1: ") and "messages/s" in out
    assert "us engine CPU per message" in out and "cx: host conversations" in out
    assert not support.leftovers()


@pytest.mark.multiproc
def test_routing_benchmark_smallest_case_runs(capsys: object) -> None:
    """``python -m bench.routing`` at its smallest: 16 requests over one Router and over two;
    it prints a line for each with the Routers' share of the engine's CPU."""
    from bench import routing, support

    routing.main(["--requests", "16", "--routers", "1", "2"])
    lines = capsys.readouterr().out.splitlines()  # type: ignore[attr-defined]
    assert [line.split(":")[0] for line in lines] == ["routers 1", "routers 2"]
    assert all("16 requests" in line and "busiest Router" in line for line in lines)
    assert not support.leftovers()


def test_node_loss_read_back_counts_lost_and_duplicated_messages() -> None:
    """Each acknowledged message is looked for in its conversation's events: stored once is
    fine, twice duplicated, never (or its conversation unreadable) lost."""
    from bench import node_loss

    def message(seq: int, message_id: str) -> dict[str, object]:
        return {"seq": seq, "name": "CUSTOMER_MESSAGE", "data": {"message_id": message_id}}

    stored = {
        "once": [message(1, "m-once")],
        "twice": [message(1, "m-twice"), message(2, "m-twice")],
        "missing": [message(1, "another")],
    }

    class Events:
        def events(self, conversation_id: str) -> list[dict[str, object]]:
            if conversation_id not in stored:
                raise LookupError(conversation_id)
            return stored[conversation_id]

    acked = {"once": "m-once", "twice": "m-twice", "missing": "m-missing", "gone": "m-gone"}
    figures = node_loss.stored_check(Events(), acked)  # type: ignore[arg-type]
    assert (figures["checked"], figures["lost"], figures["duplicated"]) == (3, 2, 1)
    assert figures["gone"] == 1 and figures["unread"] == 0 and figures["problems"] == 3


def test_node_loss_times_the_answers_when_they_came_not_when_their_round_ended(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A conversation that answered early in a slow round of queries counts from its answer."""
    from bench import node_loss

    killed_at = time.monotonic()
    rounds = [{"a": killed_at + 3.0}, {"b": killed_at + 4.5, "c": killed_at + 5.0}]
    monkeypatch.setattr(node_loss, "answering", lambda gw, pending: rounds.pop(0))
    first, last, seen, pending = node_loss.recovered(None, {"a", "b", "c"}, killed_at)  # type: ignore[arg-type]
    assert (first, last, pending) == (pytest.approx(3.0), pytest.approx(5.0), set())
    assert seen is not None  # when the round that got the last answer ended


def test_simulation_benchmark_smallest_case_runs(capsys: object) -> None:
    """``python -m bench.simulation`` at its smallest: one run of ten simulated minutes; it
    prints the raw Thespian reference, the run and the median."""
    from bench import simulation

    scenario = Path(__file__).resolve().parent.parent / "scenarios" / "web_chat_team.yaml"
    assert simulation.main([str(scenario), "--runs", "1", "--duration", "10m"]) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "raw Thespian simpleSystemBase:" in out and "run 1: " in out
    assert "median: " in out and "ratio to raw Thespian: " in out


def test_simulation_with_faults_benchmark_smallest_case_runs(capsys: object) -> None:
    """``python -m bench.simulation_faults`` at its smallest: one run of its scenario with and
    one without the faults; the invariants held in both."""
    from bench import simulation_faults

    assert simulation_faults.main(["--runs", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()  # type: ignore[attr-defined]
    assert [line.split(":")[0].split() for line in lines[:2]] == [
        ["run", "1", "faults"],
        ["run", "1", "no", "faults"],
    ]
    assert all(line.endswith("invariants held: True") for line in lines[:2])
    assert lines[2].startswith("median: faults ")


@pytest.mark.multiproc
def test_idle_benchmark_smallest_case_runs(capsys: object) -> None:
    """``python -m bench.idle`` at its smallest: one slice of lifecycles, half a second idle;
    it prints the slice's rate and the engine's idle CPU."""
    from bench import idle, support

    assert idle.main(["--lifecycles", "250", "--idle", "0.5", "--fsync", "never"]) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert out.startswith("fsync never    lifecycles/s per 250: [") and "% of a core" in out
    assert not support.leftovers()


@pytest.mark.multiproc
def test_asyncio_client_benchmark_smallest_case_runs(capsys: object) -> None:
    """``python -m bench.aio`` at its smallest: its references, the AsyncGateway's rate and
    its latency at a fixed rate, each printed."""
    from bench import aio, support

    aio.main(
        ["--conversations", "20", "--messages", "200", "--senders", "10", "--rate", "100",
         "--seconds", "1"]
    )  # fmt: skip
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert [line.split()[0] for line in out.splitlines()] == [
        "conversations", "raw", "blocking", "AsyncGateway", "AsyncGateway", "CPU"
    ]  # fmt: skip
    assert "killed leftover" not in out and not support.leftovers()


def test_archive_lock_benchmark_smallest_case_runs(capsys: object) -> None:
    """``python -m bench.archive_lock`` at its smallest, embedded: one live and three closing
    conversations, half a second locked; it prints each phase, the last after the release."""
    from bench import archive_lock

    archive_lock.main(["--closing", "3", "--live", "1", "--seconds", "0.5", "--after", "1"])
    lines = capsys.readouterr().out.splitlines()  # type: ignore[attr-defined]
    assert [line.split(":")[0] for line in lines] == [
        "ending 3 conversations",
        "customer messages in 0.5 s",
        "returning customer",
        "new customer",
        "while locked",
        "1 s after the release",
    ]


@pytest.mark.multiproc
def test_soak_benchmark_smallest_case_runs(capsys: object) -> None:
    """``python -m bench.soak`` at its smallest: two batches of lifecycles, then a second of
    push flood through ``cx gateway``, whose stream is gap-free and in order."""
    from bench import soak, support

    assert soak.main(["--lifecycles", "200", "--batch", "100", "--flood", "1"]) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    lines = out.splitlines()
    assert lines[0].startswith("lifecycles: 200 at ") and lines[-1].startswith("push flood: 1 s, ")
    assert all(line.count(" MB -> ") == 2 for line in lines[1:-1]) and len(lines) > 3
    assert "push flood: 1 s, " in out and "gap-free and in order: True" in out
    assert not support.leftovers()


def test_memory_benchmark_smallest_case_runs(capsys: object) -> None:
    """``python -m bench.memory`` with two small counts: a row for each, its events counted."""
    from bench import memory

    assert memory.main(["--messages", "10,20"]) == 0
    lines = capsys.readouterr().out.splitlines()  # type: ignore[attr-defined]
    assert lines[0].startswith("one conversation (RECENT_EVENTS = ") and len(lines) == 4
    assert [line.split()[0] for line in lines[2:]] == ["10", "20"]
    assert all(int(line.split()[1]) > int(line.split()[0]) for line in lines[2:])
