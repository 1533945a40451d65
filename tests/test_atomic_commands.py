"""Atomic commands and the lifecycle table's lookups: validate, plan the whole command on a
working copy, commit; a missing table row or a failure half-way changes nothing."""

from __future__ import annotations

import pytest

from actors.conversation import ConversationEntity
from actors.messages import ReplyTo
from domain import transitions
from domain.commands import CustomerMessage, Hold
from domain.conversation import ConversationMachine
from domain.effects import Effect
from domain.enums import State
from domain.transitions import MissingTransition, Trigger, transition_for
from tests.entity_host import RecordingHost
from tests.model_driver import AGENT, FIRST_SESSION, active, fingerprint


def _fail_midway(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make a customer message raise after its handler has run on the working copy: by then
    it has emitted its event and stopped the customer's inactivity timer."""
    handler = ConversationMachine.HANDLERS[CustomerMessage]

    def boom(machine: ConversationMachine, command: CustomerMessage, now: int) -> list[Effect]:
        handler(machine, command, now)
        raise RuntimeError("injected failure")

    monkeypatch.setitem(ConversationMachine.HANDLERS, CustomerMessage, boom)


def test_a_trigger_without_a_table_row_raises_missing_transition() -> None:
    machine = active().machine
    with pytest.raises(MissingTransition) as missing:
        transition_for(State.ACTIVE, Trigger.AGENT_ARRIVED, machine)
    assert (missing.value.state, missing.value.trigger) == (State.ACTIVE, Trigger.AGENT_ARRIVED)


def test_a_command_whose_trigger_has_no_row_raises_and_changes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    driver = active()
    without_hold = tuple(r for r in transitions.TRANSITIONS if r.trigger is not Trigger.HOLD)
    monkeypatch.setattr(transitions, "TRANSITIONS", without_hold)
    before = fingerprint(driver.machine)
    with pytest.raises(MissingTransition):
        driver.machine.handle(Hold(AGENT, 30), driver.now)
    assert fingerprint(driver.machine) == before


def test_a_command_failing_midway_leaves_the_machine_unchanged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    driver = active()
    before = fingerprint(driver.machine)
    _fail_midway(monkeypatch)
    with pytest.raises(RuntimeError, match="injected failure"):
        driver.machine.handle(CustomerMessage(FIRST_SESSION, "hello", "m1"), driver.now)
    assert fingerprint(driver.machine) == before


def test_a_failing_command_is_answered_internal_without_a_replay_of_history(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    machine = active().machine
    entity = ConversationEntity(machine)
    host = RecordingHost()
    before = fingerprint(machine)

    def no_replay(*args: object, **kwargs: object) -> None:
        raise AssertionError("the conversation was rebuilt by replaying its history")

    monkeypatch.setattr(ConversationMachine, "open", no_replay)
    _fail_midway(monkeypatch)
    reply_to = ReplyTo("gateway", "call-1")
    assert not entity.apply(CustomerMessage(FIRST_SESSION, "hello", "m1"), reply_to, host)
    assert [f.kind for f in host.failures] == ["internal"]
    assert entity.machine is machine
    assert fingerprint(machine) == before
    assert host.journaled == [] and host.posted == []
