"""What faults cost a simulation: a scenario with its ``faults:`` and without, interleaved.

    python -m bench.simulation_faults                     # scenarios/faults_day.yaml, 3 runs each
    python -m bench.simulation_faults --runs 5 SCENARIO

Each run prints its wall time, events and whether every invariant held; then the medians and
their ratio. The run without faults is the same scenario with ``faults`` removed (same seed).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from infra.yamlfile import read_yaml
from runtime.simulation import run

DEFAULT_SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "faults_day.yaml"


def one(document: dict[str, Any]) -> tuple[float, int, bool]:
    started = time.perf_counter()
    result = run(document)
    wall = time.perf_counter() - started
    return wall, int(result.summary["events"]), bool(result.summary["invariants"]["held"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.simulation_faults")
    parser.add_argument("scenario", nargs="?", default=str(DEFAULT_SCENARIO))
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args(argv)
    with_faults = dict(read_yaml(options.scenario))
    without = {k: v for k, v in with_faults.items() if k != "faults"}
    walls: dict[str, list[float]] = {"faults": [], "no faults": []}
    for n in range(options.runs):
        for label, document in (("faults", with_faults), ("no faults", without)):
            wall, events, held = one(document)
            walls[label].append(wall)
            print(
                f"run {n + 1} {label:>9}: {wall:6.2f} s  {events} events  invariants held: {held}"
            )
    faults, plain = (statistics.median(walls[k]) for k in ("faults", "no faults"))
    print(f"median: faults {faults:.2f} s, no faults {plain:.2f} s, ratio {faults / plain:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
