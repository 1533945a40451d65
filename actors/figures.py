"""What an actor counts about its writes to storage, for the engine's metrics: how many, how
many failed, and the time they took (wall clock, also under a virtual clock: it measures the
storage, not the conversations)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["WriteTally"]


@dataclass(slots=True)
class WriteTally:
    """Counts of one kind of write since the actor started (they only grow)."""

    writes: int = 0
    failures: int = 0  # the writes that raised
    seconds: float = 0.0  # the time every write took, failed ones included

    @contextmanager
    def timed(self, count: int = 1) -> Iterator[None]:
        """Count the write run inside as ``count`` writes (the items one transaction holds):
        failures if it raises (the exception goes on)."""
        started = time.perf_counter()
        try:
            yield
        except Exception:
            self.failures += count
            raise
        finally:
            self.writes += count
            self.seconds += time.perf_counter() - started

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
