"""Where a simulated event's wall time goes: exclusive time per component of the engine.

    python -m bench.simulation --budget --duration 10h

Each component's entry points are wrapped for one run with a timer that charges the time to
the innermost component running (time spent in a nested component is charged to that one, not
to its caller), so the rows add up to the run. The wrappers cost about half a microsecond a
call, so the figures run about 20 % above an unmeasured run; the shares are what matter. The
originals are put back when the run ends.

cProfile (``--profile``) distorts this picture: it charges a fixed cost to every Python call,
which inflates code made of many small calls (the engine's shells) against C code (SQLite).
"""

from __future__ import annotations

import collections
import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from thespian import actors as thespian_actors

import actors.archivist
import actors.conversation
import actors.host
import actors.snapshots
from actors.base import EngineActor
from domain.conversation import ConversationMachine
from infra import archive, archive_reads, journal
from runtime.gateway import Gateway
from runtime.gateway_core import EngineLink
from runtime.simulation import driver, runner, stream

# (owner, attribute, component): the entry points of each component
ENTRY_POINTS: tuple[tuple[Any, str, str], ...] = (
    (thespian_actors.ActorSystem, "tell", "Thespian simpleSystemBase message passing"),
    (thespian_actors.ActorSystem, "listen", "Thespian simpleSystemBase message passing"),
    (EngineActor, "receiveMessage", "engine actor shells (hosts, entities, fan-out)"),
    (ConversationMachine, "handle", "state machine (pure model)"),
    (ConversationMachine, "open", "state machine (pure model)"),
    (archive.Archive, "store_conversation", "archive: storing closed conversations"),
    (archive.Archive, "create_room", "archive: rooms, identities, id checks, reads"),
    (archive.Archive, "record_customer_identity", "archive: rooms, identities, id checks, reads"),
    (archive_reads.ArchiveReads, "contact_center_room_of", "archive: rooms, identities, id checks, reads"),
    (archive_reads.ArchiveReads, "ids_taken", "archive: rooms, identities, id checks, reads"),
    (archive_reads.ArchiveReads, "events", "archive: rooms, identities, id checks, reads"),
    (archive_reads.ArchiveReads, "has_conversation", "archive: rooms, identities, id checks, reads"),
    (journal.JournalWriter, "add", "journal: encoding and writing records"),
    (journal.JournalWriter, "flush", "journal: encoding and writing records"),
    (actors.host, "command_record", "journal: encoding and writing records"),
    (actors.snapshots, "event_dict", "events as plain dicts for the gateway"),
    (actors.archivist, "event_dict", "events as plain dicts for the gateway"),
    (EngineLink, "call", "gateway (embedded)"),
    (Gateway, "advance", "gateway (embedded)"),
    (EngineLink, "at_conversation", "gateway (embedded)"),
    (driver.Driver, "run", "simulation driver (customers and agents)"),
    (stream.EventStream, "_write", "summary: outcomes and event log from the driver's reads"),
    (stream.EventStream, "finish", "summary: outcomes and event log from the driver's reads"),
)


class Budget:
    def __init__(self) -> None:
        self.spent: collections.defaultdict[str, float] = collections.defaultdict(float)
        self._nested: list[float] = []

    def _timed(self, component: str, function: Callable[..., Any]) -> Callable[..., Any]:
        spent, nested = self.spent, self._nested
        clock = time.perf_counter

        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = clock()
            nested.append(0.0)
            try:
                return function(*args, **kwargs)
            finally:
                inner = nested.pop()
                took = clock() - started
                spent[component] += took - inner
                if nested:
                    nested[-1] += took

        return timed

    @contextmanager
    def measuring(self) -> Iterator[Budget]:
        originals = [(owner, name, owner.__dict__[name]) for owner, name, _ in ENTRY_POINTS]
        try:
            for owner, name, component in ENTRY_POINTS:
                original = owner.__dict__[name]
                wrapped = self._timed(component, getattr(owner, name))
                if isinstance(original, staticmethod | classmethod):  # already bound: keep it so
                    wrapped = staticmethod(wrapped)
                setattr(owner, name, wrapped)
            yield self
        finally:
            for owner, name, original in originals:
                setattr(owner, name, original)

    def report(self, events: int, wall: float) -> list[str]:
        lines = [
            f"{events:,} events in {wall:.2f} s wall (measured run): {wall / events * 1e6:.1f} us"
            " per event, of which:"
        ]
        for component, seconds in sorted(self.spent.items(), key=lambda item: -item[1]):
            lines.append(
                f"  {seconds / events * 1e6:6.1f} us  {seconds / wall * 100:5.1f} %  {component}"
            )
        rest = wall - sum(self.spent.values())
        lines.append(f"  {rest / events * 1e6:6.1f} us  {rest / wall * 100:5.1f} %  the rest")
        return lines


def measure(scenario: str, duration: str | None) -> list[str]:
    budget = Budget()
    with budget.measuring():
        started = time.perf_counter()
        result = runner.run(scenario, duration=duration)
        wall = time.perf_counter() - started
    return budget.report(int(result.summary["events"]), wall)
