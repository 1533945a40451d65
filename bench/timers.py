"""Timer precision with many pending timers on one host.

Method: ``timers`` conversations are opened on one host (pipelined), each with its customer
inactivity timer of ``seconds`` and one threshold at ``percent`` of it (action NONE: it only
publishes CUSTOMER_SLA_THRESHOLD, and closes nothing). Every conversation therefore has two
alarms on the host's heap: the threshold and the expiry, which stays pending throughout. The
thresholds come due in the order the conversations were opened, from about ``first_due_s``
after the start, once every conversation is open.

The lag of each threshold is read from the host's journal (on disk before anything leaves the
host): the journaled CUSTOMER_SLA_THRESHOLD event's timestamp (the host's clock when the alarm
fired, in ms) minus its deadline (the timer's start, from its CUSTOMER_SLA_STARTED event or the
conversation's open record, plus ``percent`` of ``seconds``). Resolution: 1 ms.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from bench import support
from bench.common import open_conversations, wait_live
from infra.journal_read import read_directory
from infra.timefmt import wall_ms
from runtime.gateway import Gateway

PERCENT = 25


def timer_lag(
    timers: int, *, first_due_s: float, open_rate_guess: float = 1000.0
) -> dict[str, Any]:
    """``first_due_s``: seconds from the start to the first threshold; it should exceed the
    time to open every conversation (``timers / open_rate_guess``)."""
    threshold_s = max(first_due_s, timers / open_rate_guess + 5)
    seconds = math.ceil(threshold_s * 100 / PERCENT)
    sections = {
        "placement": {"per_host": max(100_000, 10 * timers)},
        "timers": {
            "customer_inactivity": {
                "seconds": seconds,
                "thresholds": [{"percent": PERCENT, "action": "NONE"}],
            }
        },
    }
    with support.scratch("timers") as directory:
        config = support.write_config(directory, sections)
        journal = directory / "journal"
        with support.engine(config, shutdown_timeout=30) as running, Gateway.connect(config) as gw:
            started = wall_ms()
            population = open_conversations(gw, timers, prefix="tm")
            wait_live(gw, timers)
            filled = wall_ms()
            # the last threshold is due about (filled - started) after the first one
            last_due = started + threshold_s * 1000 + (filled - started)
            with support.profiled(running, "timers"):
                while wall_ms() < last_due + 2000:
                    time.sleep(0.2)
            lags, fired_before_filled = _lags(journal, seconds * 1000 * PERCENT // 100, filled)
    after = [lag for lag, early in zip(lags, fired_before_filled, strict=True) if not early]
    return {
        "timers": timers,
        "pending_alarms_at_start": 2 * len(population),
        "seconds": seconds,
        "percent": PERCENT,
        "fired": len(lags),
        "fired_during_fill": sum(fired_before_filled),
        "open_s": population.open_seconds,
        "p50_ms": support.percentile(after, 50),
        "p99_ms": support.percentile(after, 99),
        "max_ms": max(after, default=math.nan),
        "p99_all_ms": support.percentile(lags, 99),
    }


def _lags(journal: Path, offset_ms: int, filled: int) -> tuple[list[float], list[bool]]:
    started: dict[str, int] = {}
    lags: list[float] = []
    early: list[bool] = []
    for directory in sorted(p for p in journal.iterdir() if p.is_dir()):
        for record in read_directory(directory).records:
            conversation = record.get("c")
            if record.get("k") == "open":
                started.setdefault(conversation, int(record["t"]))
                continue
            for event in record.get("ev", []):
                name, timestamp = event[1], int(event[3])
                if name == "CUSTOMER_SLA_STARTED":
                    started[conversation] = timestamp
                elif name == "CUSTOMER_SLA_THRESHOLD" and conversation in started:
                    lags.append(float(timestamp - (started[conversation] + offset_ms)))
                    early.append(timestamp < filled)
    return lags, early
