"""What crosses between actor processes pickles to equal values, with the cheap state functions."""

from __future__ import annotations

import dataclasses
import pickle
from types import ModuleType

import pytest

import actors.messages.agents
import actors.messages.conversations
import actors.messages.envelope
import actors.messages.monitor
import actors.messages.operations
import actors.messages.system
import domain.commands
import domain.records
from actors.messages import Apply, Batch, Deliver, EventDelivery, Ref, ReplyTo
from domain.commands import CustomerMessage, EndSession, TimerFired
from domain.enums import EventType, ParticipantType, SessionEndReason
from domain.records import Emitter, Event
from domain.timers import TimerKey, TimerKind

MODULES = (
    actors.messages.envelope,
    actors.messages.system,
    actors.messages.monitor,
    actors.messages.operations,
    actors.messages.conversations,
    actors.messages.agents,
    domain.commands,
    domain.records,
)


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_every_slotted_dataclass_uses_the_cached_field_names(module: ModuleType) -> None:
    classes = [
        v
        for v in vars(module).values()
        if isinstance(v, type)
        and dataclasses.is_dataclass(v)
        and v.__module__ == module.__name__
        and "__slots__" in vars(v)
    ]
    assert classes
    # a class defined after the module's pickle_by_field_names(globals()) call would miss it
    assert all(c.__getstate__.__module__ == "domain.pickling" for c in classes), [
        c.__name__ for c in classes if c.__getstate__.__module__ != "domain.pickling"
    ]


def test_messages_commands_and_events_survive_pickling() -> None:
    event = Event(
        "conv-1",
        "room-1",
        3,
        "CUSTOMER_MESSAGE",
        EventType.MESSAGE,
        1_000,
        Emitter("cust-1", ParticipantType.CUSTOMER),
        "cs-1",
        {"text": "hi", "message_id": "m-1"},
    )
    here = Ref(None, "c:conv-1")
    batch = Batch(
        1_000,
        (
            Deliver("s:cs-1", Apply(CustomerMessage("cs-1", "hi", "m-1")), ReplyTo(None, "call-1")),
            Deliver("s:cs-1", Apply(EndSession("cs-1", SessionEndReason.CUSTOMER))),
            Deliver("c:conv-1", Apply(TimerFired(TimerKey(TimerKind.AGENT_SLA, ""), 7, 100))),
            Deliver("a:agent-1", EventDelivery((event, event), here)),
        ),
    )
    copy = pickle.loads(pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL))
    assert copy == batch and copy is not batch
    assert copy.items[3].payload.events[0].data == {"text": "hi", "message_id": "m-1"}
    assert repr(batch) == "Batch(now=1000, 4 items)"
