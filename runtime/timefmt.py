"""Time as the engine keeps it: integer milliseconds since the Unix epoch.

Integers keep the virtual clock exact (no float drift over a simulated day) and make
"due when deadline <= now" comparisons deterministic. Timestamps leave the engine as
ISO-8601 UTC strings with millisecond precision, e.g. ``1970-01-01T00:00:00.000Z``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


def seconds_to_ms(seconds: float) -> int:
    return round(seconds * 1000)


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def wall_ms() -> int:
    return time.time_ns() // 1_000_000
