"""Benchmark of simulation runs, beside raw Thespian ``simpleSystemBase`` throughput.

    python -m bench.simulation                      # the 200-agent day, 3 runs
    python -m bench.simulation --runs 5 --duration 6h
    python -m bench.simulation --budget --duration 10h  # where an event's time goes
    python -m bench.simulation --profile            # cProfile of one run
    python -m bench.simulation --against REV --duration 10h  # this tree against a revision

Each run prints its simulated events, wall time and events per second of wall time; then the
medians, and their ratio to the raw Thespian reference measured in the same process: one actor
sending itself N messages under ``simpleSystemBase`` (the engine's embedded base), and N
``ask`` round trips from outside. The machine's load is printed too: on a shared machine the
ratio is the steadier figure.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import os
import platform
import pstats
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import thespian
from thespian.actors import Actor, ActorSystem

from bench import against, budget
from runtime.simulation import run

DEFAULT_SCENARIO = (
    Path(__file__).resolve().parent.parent / "scenarios" / "center_day_200_agents.yaml"
)
TARGET_EVENTS_PER_SECOND = 50_000
TARGET_DAY_SECONDS = 120


class _Countdown(Actor):  # type: ignore[misc]
    """Sends itself ``n - 1`` until 0: pure actor-to-actor message passing."""

    def receiveMessage(self, message: Any, sender: Any) -> None:  # noqa: N802 (Thespian)
        if isinstance(message, int) and message > 0:
            self.send(self.myAddress, message - 1)
        elif isinstance(message, str):
            self.send(sender, message)


def thespian_reference(messages: int = 200_000, asks: int = 20_000) -> dict[str, float]:
    """Raw simpleSystemBase throughput: messages/s between actors, and ask round trips/s."""
    system = ActorSystem("simpleSystemBase", transientUnique=True)
    try:
        actor = system.createActor(_Countdown)
        started = time.perf_counter()
        system.tell(actor, messages)  # returns when the actor has sent them all
        sends = messages / (time.perf_counter() - started)
        started = time.perf_counter()
        for _ in range(asks):
            system.ask(actor, "ping", 5)
        round_trips = asks / (time.perf_counter() - started)
    finally:
        system.shutdown()
    return {"messages_per_second": sends, "asks_per_second": round_trips}


def _load() -> str:
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


def _profile(scenario: str, duration: str | None) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    result = run(scenario, duration=duration)
    profiler.disable()
    stats = pstats.Stats(profiler)
    groups: collections.Counter[str] = collections.Counter()
    functions: list[tuple[float, str]] = []
    total = 0.0
    for (filename, line, name), (_, _, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        total += own
        path = filename.replace(os.sep, "/")
        if "thespian" in path:
            group = "thespian (simpleSystemBase message passing)"
        elif "/domain/" in path:
            group = "engine: domain (state machine, routing book)"
        elif "/actors/" in path:
            group = "engine: actors (hosts, entities, actor shells)"
        elif "/runtime/simulation/" in path:
            group = "simulation driver and metrics"
        elif "/runtime/" in path:
            group = "runtime: " + path.rsplit("/runtime/", 1)[1]
        elif "logging" in path or "structlog" in path:
            group = "logging (Thespian's getLogger per message)"
        elif filename == "~":
            group = "builtins: " + name
        else:
            group = "stdlib/other: " + path.rsplit("/", 1)[-1]
        groups[group] += own
        short = "/".join(path.split("/")[-2:])
        functions.append((own, f"{short}:{line} {name}"))
    print(f"\nprofile of one run ({result.summary['events']} events), own time by component:")
    for group, own in groups.most_common(18):
        print(f"  {own / total * 100:5.1f} %  {group}")
    print("\nfunctions with the most own time:")
    for own, where in sorted(functions, reverse=True)[:25]:
        print(f"  {own / total * 100:5.1f} %  {where}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.simulation", description=__doc__)
    parser.add_argument("scenario", nargs="?", default=str(DEFAULT_SCENARIO))
    parser.add_argument("--runs", type=int, default=3, help="runs of the scenario (median)")
    parser.add_argument("--duration", help="override the scenario's duration (e.g. 6h)")
    parser.add_argument("--profile", action="store_true", help="profile one run instead")
    parser.add_argument(
        "--budget", action="store_true", help="one run, its wall time split by component"
    )
    parser.add_argument(
        "--against", metavar="REV", help="interleaved runs of this tree and a git revision"
    )
    args = parser.parse_args(argv)
    print(
        f"machine: {os.cpu_count()} cores, Python {platform.python_version()},"
        f" Thespian {getattr(thespian, '__version__', '4.0.1')}; load {_load()}"
    )
    if args.profile:
        _profile(args.scenario, args.duration)
        return 0
    if args.budget:
        print("\n".join(budget.measure(args.scenario, args.duration)))
        return 0
    if args.against:
        for line in against.compare(args.against, args.scenario, args.duration, args.runs):
            print(line, flush=True)
        return 0
    reference = thespian_reference()
    print(
        f"raw Thespian simpleSystemBase: {reference['messages_per_second']:,.0f} messages/s"
        f" between actors, {reference['asks_per_second']:,.0f} ask round trips/s"
    )
    rates: list[float] = []
    walls: list[float] = []
    summary: dict[str, Any] = {}
    for index in range(args.runs):
        result = run(args.scenario, duration=args.duration)
        summary = result.summary
        performance = summary["performance"]
        rates.append(performance["events_per_second"])
        walls.append(performance["wall_seconds"])
        print(
            f"run {index + 1}: {summary['conversations']['total']:,} conversations,"
            f" {summary['events']:,} events in {performance['wall_seconds']:.2f} s wall"
            f" ({performance['simulate_seconds']:.2f} s driving the engine):"
            f" {performance['events_per_second']:,} events/s;"
            f" log {summary['event_log_sha256'][:16]}"
        )
    rate = statistics.median(rates)
    wall = statistics.median(walls)
    virtual_hours = summary["virtual_seconds"]["total"] / 3600
    print(
        f"median: {rate:,.0f} simulated events/s of wall time, {wall:.1f} s for"
        f" {virtual_hours:g} virtual hours with {summary['agents_configured']} agents"
    )
    print(
        f"ratio to raw Thespian: {rate / reference['messages_per_second']:.3f} events per"
        f" actor message, {rate / reference['asks_per_second']:.2f} events per ask round trip"
    )
    print(
        f"targets: {TARGET_EVENTS_PER_SECOND:,} events/s -> {rate / TARGET_EVENTS_PER_SECOND:.0%}"
        f" of it; a day in under {TARGET_DAY_SECONDS} s -> "
        + ("met" if wall < TARGET_DAY_SECONDS or virtual_hours < 24 else "not met")
        + ("" if virtual_hours >= 24 else " (not a full day: --duration was shortened)")
    )
    print(f"load now: {_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
