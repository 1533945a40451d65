"""What the fuzz tests share: Hypothesis settings, the strategies of bench.fuzz, and how an
oracle's failure that is already a known finding is counted rather than raised."""

from __future__ import annotations

import os
from collections.abc import Callable

from hypothesis import HealthCheck, settings

from bench.fuzz import Hung, Violation, known_finding, strategies

EXAMPLES = int(os.environ.get("CX_FUZZ_EXAMPLES", "400"))
STRATEGIES = strategies()
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def held(check: Callable[[], str]) -> str:
    """Run an oracle; a failure already reported (bench.fuzz.KNOWN_FINDINGS) is counted as
    ``known:<name>``, not raised here: its own regression test is what fails if it comes back."""
    try:
        return check()
    except (Hung, Violation) as error:
        name = known_finding(error)
        if name is None:
            raise
        return f"known:{name}"
