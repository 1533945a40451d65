"""A command that fails inside the state machine (a bug, a payload that should never have got
that far) never loops and never corrupts the conversation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from domain.commands import SetData
from domain.conversation import ConversationMachine
from runtime.gateway import Gateway, GatewayError


def test_a_failing_command_changes_nothing_and_is_not_retried(
    make_gateway: Callable[..., Gateway], monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = make_gateway()
    ref = gw.start_session("cust-1", "WEB", "v")
    gw.set_data(ref.conversation_id, "tier", "gold")
    events, snapshot = gw.events(ref.conversation_id), gw.conversation(ref.conversation_id)

    calls: list[Any] = []
    original = ConversationMachine.HANDLERS[SetData]

    def broken(machine: ConversationMachine, command: SetData, now: int) -> Any:
        if command.key != "vip":  # a bug that only this payload reaches
            return original(machine, command, now)
        calls.append(command)
        machine.data[command.key] = command.value  # half-way through...
        machine.seq += 3
        raise RuntimeError("a bug")

    monkeypatch.setitem(ConversationMachine.HANDLERS, SetData, broken)
    with pytest.raises(GatewayError, match="not applied and the conversation is unchanged"):
        gw.set_data(ref.conversation_id, "vip", True)
    assert len(calls) == 1  # handled once: no redelivery, no loop
    assert gw.events(ref.conversation_id) == events
    assert gw.conversation(ref.conversation_id) == snapshot

    monkeypatch.undo()
    gw.set_data(ref.conversation_id, "vip", True)  # the conversation goes on
    gw.customer_message(ref.channel_session_id, "still here")
    after = gw.events(ref.conversation_id)
    assert [e["seq"] for e in after] == list(range(1, len(after) + 1))
    assert gw.conversation(ref.conversation_id)["data"] == {"tier": "gold", "vip": True}
