"""Rebuilding a conversation from its journal records, by replaying its commands; reading
the events a conversation published back from those records.

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
    log: list[Event]  # every event, while the conversation is rebuilt
    records: list[dict[str, Any]]  # the records to journal again on the new host
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
    machine, log = _reopen(opened)
    rebuilt = Rebuilt(machine, log, [opened])
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
    return rebuilt


def _reopen(opened: dict[str, Any]) -> tuple[ConversationMachine, list[Event]]:
    machine, effects = ConversationMachine.open(
        conversation_id=opened["c"],
        room_id=opened["room"],
        customer_id=opened["customer"],
        first=decode_command(opened["first"]),
        policy=decode_policy(opened["policy"]),
        now=opened["t"],
        direction=Direction(opened["dir"]),
    )
    return machine, [e.event for e in effects if isinstance(e, Publish)]


def journaled_events(records: list[dict[str, Any]]) -> list[Event]:
    """Every event a conversation published, in order, from its journal records: those of its
    opening by replaying the open record (the machine is deterministic), the others as they
    were journaled. Raises CodecError or KeyError if a record is unusable."""
    events: list[Event] = []
    conversation_id = room_id = ""
    for record in records:
        if record["k"] == "open":
            machine, events = _reopen(record)
            conversation_id, room_id = machine.id, machine.room_id
        elif record["k"] == "cmd":
            events += [decode_event(conversation_id, room_id, e) for e in record.get("ev", [])]
    return events
