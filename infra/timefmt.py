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


_day_prefixes: dict[int, str] = {}


def iso(ms: int | None) -> str | None:
    """``ms`` as ``YYYY-MM-DDTHH:MM:SS.mmmZ``.

    Every event leaves the engine with one of these, so the date part is formatted once per day
    (``strftime`` per call was 5 % of a simulation run), the time of day by arithmetic, and the
    last second's text is kept (a trigger's events share their timestamp).
    """
    if ms is None:
        return None
    second, millis = divmod(ms, 1000)
    global _last  # noqa: PLW0603 (a one-entry cache; one tuple, so threads see a whole entry)
    last = _last
    if last[0] == second:
        prefix = last[1]
    else:
        day, in_day = divmod(second, 86_400)
        date = _day_prefixes.get(day)
        if date is None:
            if len(_day_prefixes) > 4096:
                _day_prefixes.clear()
            date = _day_prefixes[day] = datetime.fromtimestamp(day * 86_400, tz=UTC).strftime(
                "%Y-%m-%dT"
            )
        minutes, sec = divmod(in_day, 60)
        hour, minute = divmod(minutes, 60)
        prefix = f"{date}{hour:02d}:{minute:02d}:{sec:02d}."
        _last = (second, prefix)
    return f"{prefix}{millis:03d}Z"


_last: tuple[int | None, str] = (None, "")


def wall_ms() -> int:
    return time.time_ns() // 1_000_000
