"""Rebuilding a conversation from its journal records, by replaying its commands.

The state machine is deterministic: the same commands at the same times give the same state,
the same timer tokens and the same events. The events replayed are compared with the events
journaled; a difference (a journal written by other code) is reported, and the journaled
events are kept as the conversation's log, since those are what subscribers were sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from domain.conversation import ConversationMachine
from domain.effects import Publish
from domain.errors import Refused
from domain.records import Event
from infra.codec import CodecError
from infra.journal_records import Record, journaled_events, parse_command, parse_open, time_of


@dataclass
class Rebuilt:
    machine: ConversationMachine
    first: Any  # the StartSession that opened it
    opened_at: int
    log: list[Event]
    records: list[Record]  # the records to journal again on the new host
    applied: list[tuple[Any, int]] = field(default_factory=list)  # commands replayed, with times
    problems: list[str] = field(default_factory=list)


def rebuild(opened: Record, commands: list[Record]) -> Rebuilt:
    """Replay a conversation's records; raises RecordError if its open record is unusable."""
    start = parse_open(opened)
    first = start.first
    machine, effects = ConversationMachine.open(
        conversation_id=start.conversation_id,
        room_id=start.room_id,
        customer_id=start.customer_id,
        first=first,
        policy=start.policy,
        now=start.at,
        direction=start.direction,
    )
    log = [e.event for e in effects if isinstance(e, Publish)]
    rebuilt = Rebuilt(machine, first, start.at, log, [opened])
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
        rebuilt.applied.append((command, applied.at))
    return rebuilt
