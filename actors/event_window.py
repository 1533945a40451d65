"""A conversation's recent events in memory; every older one from its host's journal.

A conversation keeps its last :data:`RECENT_EVENTS` published events in memory, so that its
memory stays bounded however long it lives (a WhatsApp conversation can live for days). The
journal already holds every event it published (the ``ev`` of each ``cmd`` record; the first
command's by replaying the ``open`` record, which the machine does deterministically), so an
older event is read from there when someone asks for it: a snapshot or replay after a sequence
number older than the window, and the close-out, whose archive write needs every event. A
conversation that never outgrows the window never reads its journal.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence

from domain.errors import CxError
from domain.records import Event

#: How many of its most recent events a conversation keeps in memory.
RECENT_EVENTS = 128


class EventsUnavailable(CxError):
    """Events older than the window were asked for and the journal cannot supply them."""


def events_after(events: Sequence[Event], after_seq: int) -> list[Event]:
    """The events with seq > ``after_seq`` (``events`` in seq order: the new ones are at the
    end, so the walk is as long as what is returned)."""
    start = len(events)
    while start > 0 and events[start - 1].seq > after_seq:
        start -= 1
    return [events[i] for i in range(start, len(events))]


class EventWindow:
    """``bounded`` false: every event stays (the host's journal cannot give them back)."""

    def __init__(
        self, events: Iterable[Event] = (), size: int | None = None, *, bounded: bool = True
    ) -> None:
        maxlen = (size or RECENT_EVENTS) if bounded else None
        self._recent: deque[Event] = deque(events, maxlen=maxlen)

    def __len__(self) -> int:
        return len(self._recent)

    @property
    def size(self) -> int:
        """How many events it keeps; 0: all of them."""
        return self._recent.maxlen or 0

    def append(self, event: Event) -> None:
        self._recent.append(event)

    def after(self, after_seq: int, journaled: Callable[[], list[Event]]) -> list[Event]:
        """Every event with seq > ``after_seq``: from memory if the window reaches back that
        far, else from ``journaled()`` (every event of the conversation, in order), which
        must hold them all; raises EventsUnavailable otherwise."""
        recent = self._recent
        if not recent or recent[0].seq <= after_seq + 1:
            return events_after(recent, after_seq)
        events = [e for e in journaled() if e.seq > after_seq]
        wanted = list(range(after_seq + 1, recent[-1].seq + 1))
        if [e.seq for e in events[: len(wanted)]] != wanted:
            raise EventsUnavailable(
                f"events {after_seq + 1}..{recent[0].seq - 1} are not in memory and the journal"
                " does not hold them all"
            )
        return events[: len(wanted)]
