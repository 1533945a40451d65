"""``cx simulate SCENARIO``: run a scenario file and print its summary; with ``--sweep``, run
one variant per value in parallel and write the sweep's report."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from runtime.simulation.kpi_table import format_kpis
from runtime.simulation.report import ProgressBar, format_summary
from runtime.simulation.runner import STORAGE_MODES, run
from runtime.simulation.scenario import load_scenario
from runtime.simulation.sweep import find_values, run_sweep
from runtime.simulation.sweep_report import format_sweep, write_sweep
from runtime.simulation.sweep_spec import SweepError, parse_find, parse_sweep, parse_target

__all__ = ["add_arguments", "simulate"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", metavar="SCENARIO", help="a scenario file (scenarios/*.yaml)")
    parser.add_argument("--seed", type=int, help="use this seed instead of the scenario's")
    parser.add_argument(
        "--duration", help="arrivals for this long instead (seconds, or e.g. 30m, 2h)"
    )
    parser.add_argument("--drain", help="time after the arrivals stop (seconds, or e.g. 1h)")
    parser.add_argument(
        "--json",
        nargs="?",
        const="-",
        metavar="FILE",
        help="write the summary as JSON to FILE (or to standard output instead of the table)",
    )
    parser.add_argument(
        "--events",
        metavar="FILE",
        help="write the full event log: JSON lines, or msgpack if FILE ends in .msgpack",
    )
    parser.add_argument(
        "--events-format",
        choices=("jsonl", "msgpack"),
        help="format of --events (default: by suffix)",
    )
    parser.add_argument(
        "--archive",
        nargs="?",
        const="",
        metavar="PATH",
        help="keep the SQLite archive (default path: <scenario name>-seed<seed>.sqlite3)",
    )
    parser.add_argument(
        "--storage",
        choices=STORAGE_MODES,
        help="memory: no journal, the archive in memory (the default without --archive);"
        " files: journal and SQLite archive on disk, as a running engine keeps them",
    )
    parser.add_argument(
        "--sweep",
        metavar="KEY=FROM:TO:STEP",
        help="run a variant for each value of KEY (agents, arrivals, handling_time or a dotted"
        " scenario key; values FROM:TO:STEP or A,B,C) in parallel, and write a report",
    )
    parser.add_argument(
        "--find",
        metavar="[min:|max:]KEY",
        help="with --sweep KEY=...: per interval, the value meeting --target in the direction"
        " that makes it easier (the smallest agents, the largest arrivals or handling_time and"
        " dotted keys), or the one named by min: or max:",
    )
    parser.add_argument(
        "--target", metavar="SPEC", help='e.g. "sl(20s)>=0.8", "abandonment<0.05", "asa<=30"'
    )
    parser.add_argument(
        "--out", metavar="DIR", help="where a sweep writes its report (default <name>-sweep)"
    )
    parser.add_argument(
        "--workers", type=int, metavar="N", help="processes for a sweep (default: one per core)"
    )
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress", action="store_true", default=None, help="show the progress bar on stderr"
    )
    progress.add_argument(
        "--no-progress",
        action="store_false",
        dest="progress",
        help="no progress bar (the default when stderr is not a terminal)",
    )


def simulate(args: argparse.Namespace) -> int:
    """The ``simulate`` command; ScenarioError (a ConfigError) is left to the caller."""
    if args.sweep is not None or args.find is not None or args.target is not None:
        return _sweep(args)
    scenario = load_scenario(args.scenario)
    seed = scenario.seed if args.seed is None else args.seed
    archive: str | None = args.archive
    if archive == "":
        archive = f"{scenario.name}-seed{seed}.sqlite3"
    show = sys.stderr.isatty() if args.progress is None else args.progress
    bar = ProgressBar(sys.stderr) if show else None
    try:
        result = run(
            scenario,
            seed=args.seed,
            duration=args.duration,
            drain=args.drain,
            archive=archive,
            events=args.events,
            events_format=args.events_format,
            progress=bar,
            storage=args.storage,
        )
    except FileExistsError as error:
        print(f"cx simulate: {error}", file=sys.stderr)
        return 2
    finally:
        if bar is not None:
            bar.finish()
    summary: dict[str, Any] = result.summary
    if args.json is not None:
        text = json.dumps(summary, indent=2) + "\n"
        if args.json == "-":
            sys.stdout.write(text)
        else:
            with open(args.json, "w", encoding="utf-8") as out:
                out.write(text)
    if args.json != "-":
        sys.stdout.write(format_summary(summary))
        sys.stdout.write("\n" + format_kpis(summary["kpis"]))
        if result.archive_path is not None:
            sys.stdout.write(f"archive kept at {result.archive_path}\n")
        if result.events_path is not None:
            sys.stdout.write(f"event log written to {result.events_path}\n")
    if not summary["invariants"]["held"]:
        violated = ", ".join(summary["invariants"]["violated"])
        print(f"cx simulate: invariants violated: {violated}", file=sys.stderr)
        return 1
    return 0


def _sweep(args: argparse.Namespace) -> int:
    try:
        if args.sweep is None:
            raise SweepError("--sweep", "--find and --target go with --sweep KEY=FROM:TO:STEP")
        key, values = parse_sweep(args.sweep)
        target = None if args.target is None else parse_target(args.target)
        find = None
        if args.find is not None:
            if target is None:
                raise SweepError("--target", "--find needs a --target such as sl(20s)>=0.8")
            find = parse_find(args.find, target)
            if find.key != key:
                raise SweepError(find.key, f"--find {args.find} needs --sweep {find.key}=...")
        for option, given in (("--events", args.events), ("--archive", args.archive)):
            if given is not None:
                raise SweepError(option, "keeps one run's data: not with --sweep")
        if args.workers is not None and args.workers < 1:
            raise SweepError("--workers", f"expected a number >= 1, got {args.workers}")
        result = run_sweep(
            args.scenario,
            key,
            values,
            seed=args.seed,
            duration=args.duration,
            drain=args.drain,
            target=target,
            workers=args.workers,
        )
    except SweepError as error:
        print(f"cx simulate: {error}", file=sys.stderr)
        return 2
    found = None if find is None or target is None else find_values(result, target, find)
    out = args.out or f"{result.scenario}-sweep"
    written = write_sweep(result, out, found)
    sys.stdout.write(format_sweep(result, found))
    sys.stdout.write("written: " + ", ".join(str(path) for path in written) + "\n")
    return 0
