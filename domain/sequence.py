"""Event numbering: the one rule for a conversation's sequence numbers.

A conversation numbers the events it publishes 1, 2, 3, ... in publishing order: no gap, no
repeat, never renumbered (a conversation rebuilt from the journal or read from the archive has
the same numbers). ``BEFORE_FIRST`` (0) is the position before any event: a conversation that
has published nothing, a subscription that wants everything. So:

- the next event of a conversation whose last is ``last`` is ``next_seq(last)``;
- the event a conversation's event follows is ``previous_seq(seq)`` (a reader that saw it has
  missed nothing before ``seq``);
- a reader that has seen every event through ``after_seq`` is owed those with
  ``is_after(seq, after_seq)``: ``events_after`` over a list, the archive's
  ``WHERE seq > after_seq`` over its table.

A stream that shows only some of a conversation's events (an agent's desk; a channel session,
which is never shown a whisper) names the seq of the previous one it was shown instead, ``BEFORE_FIRST`` for the first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Protocol, TypeVar

#: The position before a conversation's first event.
BEFORE_FIRST: Final = 0


class _Numbered(Protocol):
    @property
    def seq(self) -> int: ...


_N = TypeVar("_N", bound=_Numbered)


def next_seq(last: int) -> int:
    """The number of the event published after the one numbered ``last``."""
    return last + 1


def previous_seq(seq: int) -> int:
    """The number of the event that the one numbered ``seq`` follows in its conversation."""
    return seq - 1


def is_after(seq: int, after_seq: int) -> bool:
    """Is the event numbered ``seq`` owed to a reader that has seen through ``after_seq``?"""
    return seq > after_seq


def events_after(events: Sequence[_N], after_seq: int) -> list[_N]:
    """The events numbered after ``after_seq``, from ``events`` in seq order (the new ones are
    at the end, so the walk is as long as what is returned)."""
    start = len(events)
    while start > 0 and is_after(events[start - 1].seq, after_seq):
        start -= 1
    return list(events[start:])
