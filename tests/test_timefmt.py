"""Engine timestamps: the fast ISO-8601 formatter agrees with datetime's own."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from infra.timefmt import iso

# 1900-01-01 to 2200-01-01, in ms: before and after the epoch, leap years, century rules
_RANGE = st.integers(min_value=-2_208_988_800_000, max_value=7_258_118_400_000)


def _reference(ms: int) -> str:
    moment = datetime.fromtimestamp(ms // 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


@given(_RANGE)
def test_iso_matches_datetime(ms: int) -> None:
    assert iso(ms) == _reference(ms)


def test_iso_edges() -> None:
    assert iso(None) is None
    assert iso(0) == "1970-01-01T00:00:00.000Z"
    assert iso(-1) == "1969-12-31T23:59:59.999Z"
    assert iso(951_782_399_999) == "2000-02-28T23:59:59.999Z"
    assert iso(951_782_400_000 + 86_400_000) == "2000-03-01T00:00:00.000Z"
    assert iso(86_399_999) == "1970-01-01T23:59:59.999Z"


def test_iso_of_consecutive_instants_across_seconds_and_days() -> None:
    # the formatter keeps the last second's text: runs of one second, and the day's end
    for start in (0, 86_399_000, 951_868_799_500, 1_700_000_000_000):
        for ms in range(start, start + 2_500, 7):
            assert iso(ms) == _reference(ms)
