"""Rebuilding a conversation from its journal records, by replaying its commands; reading
the events a conversation published back from those records.

The state machine is deterministic: the same commands at the same times give the same state,
the same timer tokens and the same events. The events replayed are compared with the events
journaled; a difference (a journal written by other code) is reported, and the journaled
events are kept as the conversation's log, since those are what subscribers were sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from domain.conversation import ConversationMachine
from domain.effects import Publish
from domain.errors import Refused
from domain.records import Event
from infra.codec import CodecError
from infra.journal_records import (
    Record,
    RecordKind,
    journaled_events,
    kind_of,
    parse_command,
    parse_open,
    time_of,
)


@dataclass
class Rebuilt:
    machine: ConversationMachine
    log: list[Event]  # every event, while the conversation is rebuilt
    records: list[Record]  # the records to journal again on the new host
    problems: list[str] = field(default_factory=list)


def rebuild(opened: Record, commands: list[Record]) -> Rebuilt:
    """Replay a conversation's records; raises RecordError if its open record is unusable."""
    machine, log = _reopen(opened)
    rebuilt = Rebuilt(machine, log, [opened])
    for record in commands:
        try:
            applied = parse_command(record)
            command = applied.command
            effects = machine.handle(command, applied.at)
        except (CodecError, Refused) as error:
            rebuilt.problems.append(f"record at t={time_of(record)} not replayed: {error}")
            continue
        produced = [e.event for e in effects if isinstance(e, Publish)]
        journaled = journaled_events(record, machine.room_id)
        if produced != journaled:
            rebuilt.problems.append(
                f"replay of {type(command).__name__} at t={applied.at} differs from the journal"
            )
        rebuilt.log.extend(journaled)
        rebuilt.records.append(record)
    return rebuilt


def _reopen(opened: Record) -> tuple[ConversationMachine, list[Event]]:
    start = parse_open(opened)
    machine, effects = ConversationMachine.open(
        conversation_id=start.conversation_id,
        room_id=start.room_id,
        customer_id=start.customer_id,
        first=start.first,
        policy=start.policy,
        now=start.at,
        direction=start.direction,
    )
    return machine, [e.event for e in effects if isinstance(e, Publish)]


def published_events(records: list[Record]) -> list[Event]:
    """Every event a conversation published, in order, from its journal records: those of its
    opening by replaying the open record (the machine is deterministic), the others as they
    were journaled. Raises CodecError (RecordError) if a record is unusable."""
    events: list[Event] = []
    room_id = ""
    for record in records:
        kind = kind_of(record)
        if kind is RecordKind.OPEN:
            machine, events = _reopen(record)
            room_id = machine.room_id
        elif kind is RecordKind.COMMAND:
            events += journaled_events(record, room_id)
    return events
