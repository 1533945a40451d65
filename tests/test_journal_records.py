"""The journal record format: records built by one module read back by it; malformed ones refused
with a typed error naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from actors.restore import rebuild
from domain.commands import CustomerMessage, StartSession
from domain.conversation import ConversationMachine
from domain.enums import Channel
from domain.policy import Policy
from infra.journal_records import (
    OpenRecord,
    RecordError,
    RecordKind,
    closed_record,
    command_record,
    kind_of,
    open_record,
    parse_command,
    parse_open,
    started_sessions,
)

FIRST = StartSession("sess-1", Channel.WEB, "visitor")


def opened() -> tuple[ConversationMachine, dict[str, Any]]:
    machine, _ = ConversationMachine.open(
        conversation_id="conv-1",
        room_id="room-1",
        customer_id="cust-1",
        first=FIRST,
        policy=Policy(),
        now=5,
    )
    return machine, open_record(machine, FIRST, 5)


def test_an_open_record_reads_back_as_the_conversation_it_opened() -> None:
    machine, record = opened()
    assert kind_of(record) is RecordKind.OPEN
    assert parse_open(record) == OpenRecord(
        "conv-1", "room-1", "cust-1", machine.direction, 5, machine.policy, FIRST
    )


def test_a_command_record_reads_back_as_its_command_and_time() -> None:
    machine, _ = opened()
    command = CustomerMessage("sess-1", "hello", "m-1")
    record = command_record("conv-1", command, 9, machine.handle(command, 9))
    parsed = parse_command(record)
    assert (kind_of(record), parsed.conversation_id, parsed.at, parsed.command) == (
        RecordKind.COMMAND,
        "conv-1",
        9,
        command,
    )


def test_a_record_of_an_unknown_kind_has_no_kind() -> None:
    assert kind_of({"k": "renamed", "c": "conv-1"}) is None
    assert kind_of(closed_record("conv-1")) is RecordKind.CLOSED


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("room", None, "is missing"),
        ("room", 7, "is not a string"),
        ("t", "soon", "is not a time in ms"),
        ("dir", "SIDEWAYS", "is not a direction"),
        ("policy", [1, 2], "does not decode"),
        ("first", ["EndConversation", {}], "is not a StartSession"),
    ],
)
def test_a_malformed_open_record_raises_the_typed_error_naming_its_field(
    field: str, value: Any, problem: str
) -> None:
    _, record = opened()
    if value is None:
        del record[field]
    else:
        record[field] = value
    with pytest.raises(RecordError, match=problem) as raised:
        parse_open(record)
    assert (raised.value.record_kind, raised.value.conversation_id, raised.value.field) == (
        "open",
        "conv-1",
        field,
    )


def test_a_command_record_without_its_command_names_the_cmd_field() -> None:
    with pytest.raises(RecordError, match="cmd record of conv-1: field 'cmd' is missing"):
        parse_command({"k": "cmd", "c": "conv-1", "t": 3})


def test_a_rebuild_from_an_unusable_open_record_raises_the_typed_error() -> None:
    _, record = opened()
    record["customer"] = None
    with pytest.raises(RecordError) as raised:
        rebuild(record, [])
    assert raised.value.field == "customer"


def test_a_malformed_command_record_is_a_replay_problem_naming_its_field() -> None:
    _, record = opened()
    problems = rebuild(record, [{"k": "cmd", "c": "conv-1", "t": 4}]).problems
    assert problems == ["record at t=4 not replayed: cmd record of conv-1: field 'cmd' is missing"]


def test_the_sessions_a_conversation_started_are_read_from_its_records() -> None:
    machine, record = opened()
    second = StartSession("sess-2", Channel.SMS, "+1")
    later = command_record("conv-1", second, 7, machine.handle(second, 7))
    assert started_sessions(record, [later]) == ["sess-1", "sess-2"]
