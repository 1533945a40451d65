"""The summary's input, taken from the events the driver reads while the run goes on.

The driver reads every conversation's events incrementally (``gw.events(cid, after_seq=...)``),
from seq 1 without a gap, and stops at the change to CLOSING or CLOSED. :class:`EventStream`
keeps what it read, and as soon as the oldest conversations not yet written are over (a read
of the driver brought the change to CLOSED, with the rest of what the closing command
published), writes them to the event log and turns them into outcomes, in creation order, and
forgets their events. At the end of the run, every
conversation left is completed with the events the driver did not read (one read each, from
the seq after its last) and written the same way.

The log and the outcomes are those of reading every conversation back whole after the run
(from the archive, or from the engine for the open ones), which ``tests/test_simulation.py``
checks: the driver's reads return exactly those dicts. What the stream saves is the second
reading: the archive is never read back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from domain.events import closes_conversation
from runtime.simulation.checks import RunChecks
from runtime.simulation.metrics import ConversationOutcome, EventLog, analyse
from runtime.simulation.people import SimConversation

__all__ = ["EventStream"]

#: ``gw.events``: a conversation's events after a seq.
Fetch = Callable[..., list[dict[str, Any]]]


class EventStream:
    """Event log and outcomes from the driver's reads; see the module docstring."""

    def __init__(self, log: EventLog, fetch: Fetch) -> None:
        self.log = log
        self.outcomes: list[ConversationOutcome] = []
        self._fetch = fetch
        self._read: dict[str, list[dict[str, Any]]] = {}
        self._over: dict[int, SimConversation] = {}  # by ordinal: over, not yet written
        self._next = 0  # the ordinal of the next conversation to write
        #: checks each conversation's events as it is written (set once the driver exists)
        self.checks: RunChecks | None = None

    def read(self, c: SimConversation, events: list[dict[str, Any]]) -> None:
        """The driver read these events of ``c`` (the ones after those it read before)."""
        seen = self._read.get(c.cid)
        if seen is None:
            self._read[c.cid] = list(events)
        else:
            seen.extend(events)
        if c.done and any(closes_conversation(event) for event in events):
            # CLOSED and what the same command published after it (agents and bot
            # unsubscribed) came in this read; nothing follows in a simulation
            self._over[c.ordinal] = c
            while self._next in self._over:
                self._write(self._over[self._next])

    def finish(self, conversations: list[SimConversation]) -> list[ConversationOutcome]:
        """Write every conversation not written yet (``conversations``: all of them, in
        creation order), completing each with the events the driver did not read; the
        outcomes of all, in creation order. Call it while the engine still runs."""
        for c in conversations[self._next :]:
            self._write(c)
        return self.outcomes

    def _write(self, c: SimConversation) -> None:
        events = self._read.pop(c.cid, [])
        if self._over.pop(c.ordinal, None) is None:  # not known to be over: read the rest
            events.extend(self._fetch(c.cid, after_seq=events[-1]["seq"] if events else 0))
            if not events:
                raise RuntimeError(f"conversation {c.cid} has no events")
        add, cid = self.log.add, c.cid
        if self.checks is not None:
            self.checks.add(cid, events, live=not c.done)
        for event in events:
            add(cid, event)
        self.outcomes.append(analyse(cid, c.ordinal, events))
        self._next = c.ordinal + 1
