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
from domain.effects import Effect, Publish
from domain.enums import Direction
from domain.errors import Refused
from domain.records import Event
from infra.codec import (
    CodecError,
    decode_command,
    decode_event,
    decode_policy,
    encode_command,
    encode_event,
    encode_policy,
)


@dataclass
class Rebuilt:
    machine: ConversationMachine
    first: Any  # the StartSession that opened it
    opened_at: int
    log: list[Event]
    records: list[dict[str, Any]]  # the records to journal again on the new host
    applied: list[tuple[Any, int]] = field(default_factory=list)  # commands replayed, with times
    problems: list[str] = field(default_factory=list)


def open_record(machine: ConversationMachine, first: Any, now: int) -> dict[str, Any]:
    return {
        "k": "open",
        "c": machine.id,
        "room": machine.room_id,
        "customer": machine.customer_id,
        "dir": machine.direction.value,
        "t": now,
        "policy": encode_policy(machine.policy),
        "first": encode_command(first),
    }


def command_record(
    conversation_id: str, command: Any, now: int, effects: list[Effect]
) -> dict[str, Any]:
    return {
        "k": "cmd",
        "c": conversation_id,
        "t": now,
        "cmd": encode_command(command),
        "ev": [encode_event(e.event) for e in effects if isinstance(e, Publish)],
    }


def rebuild(opened: dict[str, Any], commands: list[dict[str, Any]]) -> Rebuilt:
    """Replay a conversation's records; raises CodecError if its open record is unusable."""
    first = decode_command(opened["first"])
    machine, effects = ConversationMachine.open(
        conversation_id=opened["c"],
        room_id=opened["room"],
        customer_id=opened["customer"],
        first=first,
        policy=decode_policy(opened["policy"]),
        now=opened["t"],
        direction=Direction(opened["dir"]),
    )
    log = [e.event for e in effects if isinstance(e, Publish)]
    rebuilt = Rebuilt(machine, first, opened["t"], log, [opened])
    for record in commands:
        try:
            command = decode_command(record["cmd"])
            effects = machine.handle(command, record["t"])
        except (CodecError, Refused, KeyError) as error:
            rebuilt.problems.append(f"record at t={record.get('t')} not replayed: {error}")
            continue
        produced = [e.event for e in effects if isinstance(e, Publish)]
        journaled = [decode_event(machine.id, machine.room_id, e) for e in record.get("ev", [])]
        if produced != journaled:
            rebuilt.problems.append(
                f"replay of {type(command).__name__} at t={record['t']} differs from the journal"
            )
        rebuilt.log.extend(journaled)
        rebuilt.records.append(record)
        rebuilt.applied.append((command, record["t"]))
    return rebuilt
