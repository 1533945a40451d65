"""Where a waiting request stands: its position in its queue, the estimated wait, and when a
change may be told (the rules: :mod:`domain.routing`).

The estimate is the position times the mean time between the queue's last answers: with the
answer times ``t1 < ... < tn`` of its last :data:`ANSWERS_KEPT` answered requests (n >= 2),
``ceil(position * (tn - t1) / (n - 1) / 1000)`` seconds; None (no estimate) while the queue
has fewer than two answers.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from domain.routing.entries import Lane

__all__ = ["ANSWERS_KEPT", "PositionNotices", "Told"]

#: How many of a queue's latest answers the estimate is taken from.
ANSWERS_KEPT = 10


@dataclass(frozen=True, slots=True)
class Told:
    """What a request's conversation was last told, and when (ms)."""

    position: int
    estimate: int | None
    at: int


class PositionNotices:
    """The queues' recent answer times and what each waiting request was last told."""

    def __init__(self) -> None:
        self._answers: dict[str, deque[int]] = {}
        self._told: dict[str, Told] = {}

    def answered(self, queue: str, now: int) -> None:
        """A request of ``queue`` was answered (its agent subscribed) at ``now``."""
        answers = self._answers.get(queue)
        if answers is None:
            answers = self._answers[queue] = deque(maxlen=ANSWERS_KEPT)
        answers.append(now)

    def estimate(self, queue: str, position: int) -> int | None:
        """The estimated wait in seconds of the request at ``position`` of ``queue``."""
        answers = self._answers.get(queue)
        if answers is None or len(answers) < 2:
            return None
        total_ms = position * (answers[-1] - answers[0])
        per = (len(answers) - 1) * 1000
        return -(-total_ms // per)  # rounded up

    def due(
        self, request_id: str, position: int, estimate: int | None, now: int, interval: int
    ) -> int | None:
        """When the request's position and estimate may be told: ``now`` (told from now on),
        a later time (the interval since the last notice has not passed), or None (nothing
        changed since the last notice)."""
        told = self._told.get(request_id)
        if told is not None and (told.position, told.estimate) == (position, estimate):
            return None
        if told is not None and now < told.at + interval:
            return told.at + interval
        self._told[request_id] = Told(position, estimate, now)
        return now

    def changes(
        self,
        lanes: Mapping[Lane, list[tuple[int, int, str]]],
        now: int,
        interval: int,
    ) -> Iterator[tuple[str, str, int, int | None, int]]:
        """Every request waiting in a queue lane (not one for a named agent) whose position
        or estimate changed since it was last told: ``(request id, queue, position,
        estimate, when it may be told)``; one told ``now`` counts as told."""
        for (queue, target), places in lanes.items():
            if target is not None:
                continue
            for index, (_, _, request_id) in enumerate(places):
                estimate = self.estimate(queue, index + 1)
                due = self.due(request_id, index + 1, estimate, now, interval)
                if due is not None:
                    yield request_id, queue, index + 1, estimate, due

    def forget(self, request_id: str) -> None:
        """The request is over: nothing more is told about it."""
        self._told.pop(request_id, None)
