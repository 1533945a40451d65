"""Event numbering (domain.sequence): one rule for assigning seq and for reading after one."""

from __future__ import annotations

from dataclasses import dataclass

from domain.sequence import BEFORE_FIRST, events_after, is_after, next_seq, previous_seq


@dataclass(frozen=True)
class Numbered:
    seq: int


def test_a_conversations_first_event_is_numbered_one() -> None:
    assert next_seq(BEFORE_FIRST) == 1


def test_an_event_follows_the_one_numbered_before_it() -> None:
    assert [previous_seq(next_seq(n)) for n in range(4)] == [0, 1, 2, 3]


def test_a_reader_through_n_is_owed_only_the_events_numbered_above_n() -> None:
    assert [is_after(seq, 2) for seq in (1, 2, 3)] == [False, False, True]


def test_events_after_returns_the_tail_numbered_above_after_seq() -> None:
    events = tuple(Numbered(n) for n in range(1, 6))
    assert [e.seq for e in events_after(events, 3)] == [4, 5]
    assert [e.seq for e in events_after(events, BEFORE_FIRST)] == [1, 2, 3, 4, 5]
    assert events_after(events, 5) == []


def test_events_after_a_list_that_starts_late_returns_all_of_it() -> None:
    # a conversation that keeps only its recent events: an older after_seq gets what is kept
    events = [Numbered(n) for n in (7, 8, 9)]
    assert [e.seq for e in events_after(events, 2)] == [7, 8, 9]
