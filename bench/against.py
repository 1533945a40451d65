"""This tree against an earlier revision, on the same scenario, in interleaved runs.

    python -m bench.simulation --against 6cdb469 --duration 10h --runs 3

The machine's speed drifts (it is shared), so two releases measured minutes apart are not
comparable; alternating them run by run is. The revision is checked out into a temporary git
worktree, removed afterwards. Each run is a fresh Python process (no warm caches shared between
the two), running the scenario with the revision's own engine; both event log hashes are
printed, so a change that alters the simulation's outcome shows. Besides events per second of
wall time, each run reports events per second of its process's CPU time, which another load on
a shared machine disturbs far less.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent

# runs in the tree under test; uses only runtime.simulation.run, which every release has
_ONE_RUN = """
import json, sys, time
from runtime.simulation import run
duration = sys.argv[2] or None
cpu = time.process_time()
summary = run(sys.argv[1], duration=duration).summary
cpu = time.process_time() - cpu
print(json.dumps({"events": summary["events"], "rate": summary["performance"]["events_per_second"],
                  "wall": summary["performance"]["wall_seconds"], "log": summary["event_log_sha256"],
                  "cpu_rate": summary["events"] / cpu}))
"""


@contextmanager
def _worktree(revision: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="cx-against-") as scratch:
        tree = Path(scratch) / "tree"
        subprocess.run(
            [
                "git",
                "-C",
                str(_ROOT),
                "worktree",
                "add",
                "--detach",
                "--quiet",
                str(tree),
                revision,
            ],
            check=True,
        )
        try:
            yield tree
        finally:
            subprocess.run(
                ["git", "-C", str(_ROOT), "worktree", "remove", "--force", str(tree)], check=False
            )


def _run(tree: Path, scenario: str, duration: str | None) -> dict[str, float | str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, "-c", _ONE_RUN, scenario, duration or ""],
        cwd=tree,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float | str] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def compare(revision: str, scenario: str, duration: str | None, runs: int) -> Iterator[str]:
    """Lines to print, one per run as it ends, then the medians."""
    scenario = str(Path(scenario).resolve())
    rates: dict[str, list[float]] = {revision: [], "this tree": []}
    cpu_rates: dict[str, list[float]] = {revision: [], "this tree": []}
    with _worktree(revision) as base:
        for index in range(runs):
            for name, tree in ((revision, base), ("this tree", _ROOT)):
                one = _run(tree, scenario, duration)
                rates[name].append(float(one["rate"]))
                cpu_rates[name].append(float(one["cpu_rate"]))
                yield (
                    f"run {index + 1} {name}: {int(one['events']):,} events,"
                    f" {float(one['rate']):,.0f} events/s, {float(one['wall']):.2f} s wall,"
                    f" {float(one['cpu_rate']):,.0f} events per CPU second,"
                    f" log {str(one['log'])[:16]}"
                )
    before, after = statistics.median(rates[revision]), statistics.median(rates["this tree"])
    pairs = [b / a - 1 for a, b in zip(rates[revision], rates["this tree"], strict=True)]
    yield (
        f"median: {revision} {before:,.0f} events/s, this tree {after:,.0f} events/s:"
        f" {after / before - 1:+.0%} (pair by pair: {', '.join(f'{p:+.0%}' for p in pairs)})"
    )
    before, after = statistics.median(cpu_rates[revision]), statistics.median(cpu_rates["this tree"])
    yield (
        f"median per CPU second: {revision} {before:,.0f} events, this tree {after:,.0f}:"
        f" {after / before - 1:+.0%} (steadier than wall time on a loaded machine)"
    )
