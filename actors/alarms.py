"""A heap of alarms with one wakeup: how an actor keeps thousands of timers cheaply.

Thespian's ``wakeupAfter`` cannot be cancelled and gets slow with many pending wakeups, so an
actor keeps its alarms here and asks Thespian for one wakeup (the earliest). Alarms due at the
same instant come out in the order they were armed. A disarmed key is dropped lazily: its
entries stay in the heap until they surface and are then skipped.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any


@dataclass(order=True, slots=True)
class _Entry:
    at: int
    order: int
    key: Hashable = field(compare=False)
    token: int = field(compare=False)
    payload: Any = field(compare=False)


class AlarmHeap:
    def __init__(self) -> None:
        self._heap: list[_Entry] = []
        self._live: dict[Hashable, int] = {}  # key -> the token whose alarms are valid
        self._order = 0

    def __len__(self) -> int:
        return len(self._heap)

    def arm(self, key: Hashable, token: int, at: int, payload: Any) -> None:
        self._order += 1
        self._live[key] = token
        heapq.heappush(self._heap, _Entry(at, self._order, key, token, payload))

    def disarm(self, key: Hashable) -> None:
        self._live.pop(key, None)

    def purge(self, doomed: Callable[[Hashable], bool]) -> None:
        """Drop every alarm whose key is ``doomed``, disarmed entries included, so that arming
        such a key again with an old token cannot revive one. Costs a pass over the heap."""
        for key in [k for k in self._live if doomed(k)]:
            del self._live[key]
        self._heap = [e for e in self._heap if not doomed(e.key)]
        heapq.heapify(self._heap)

    def next_at(self) -> int | None:
        self._drop_stale()
        return self._heap[0].at if self._heap else None

    def pop_due(self, now: int) -> tuple[Hashable, Any] | None:
        """The next alarm due by ``now`` (its key and payload), or None."""
        self._drop_stale()
        if not self._heap or self._heap[0].at > now:
            return None
        entry = heapq.heappop(self._heap)
        return entry.key, entry.payload

    def _drop_stale(self) -> None:
        heap = self._heap
        while heap and self._live.get(heap[0].key) != heap[0].token:
            heapq.heappop(heap)
        # Stale entries deeper in the heap are left for later; compact when they dominate.
        if len(heap) > 1024 and len(heap) > 4 * len(self._live):
            self._heap = [e for e in heap if self._live.get(e.key) == e.token]
            heapq.heapify(self._heap)
