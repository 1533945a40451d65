"""A conversation keeps a bounded window of recent events in memory; older events are read
from its journal when a snapshot, a replay or the archive write asks for them."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from actors import event_window
from actors.conversation import ConversationEntity
from actors.messages import EventsQuery, ReplyTo
from bench.memory import measure
from domain.commands import AgentMessage, CustomerMessage, StartSession
from domain.conversation import ConversationMachine
from domain.enums import Channel
from domain.policy import Policy
from infra.journal_records import open_record
from runtime.gateway import Gateway
from tests.entity_host import RecordingHost
from tests.model_driver import AGENT, FIRST_SESSION, active

WINDOW = 8


def test_a_long_conversation_keeps_only_a_bounded_window_of_events() -> None:
    driver = active()
    entity = ConversationEntity(driver.machine, driver.events)
    host = RecordingHost()
    for n in range(1_000):
        host.clock += 1_000
        command = (
            CustomerMessage(FIRST_SESSION, f"q{n}", f"m{n}")
            if n % 2 == 0
            else AgentMessage(AGENT, f"a{n}", f"r{n}")
        )
        assert entity.apply(command, None, host)
    assert entity.machine.seq > 2_000
    assert len(entity.events) == event_window.RECENT_EVENTS


@pytest.fixture
def small_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(event_window, "RECENT_EVENTS", WINDOW)


@pytest.mark.usefixtures("small_window")
def test_an_events_query_older_than_the_window_reads_the_journal() -> None:
    host = RecordingHost()
    first = StartSession(FIRST_SESSION, Channel.WEB, "web-1")
    machine, effects = ConversationMachine.open(
        conversation_id="c1",
        room_id="r1",
        customer_id="cust-1",
        first=first,
        policy=Policy(),
        now=host.clock,
    )
    host.journal(machine.id, open_record(machine, first, host.clock))
    entity = ConversationEntity(machine)
    entity.perform(effects, host)
    for n in range(3 * WINDOW):
        host.clock += 1_000
        assert entity.apply(CustomerMessage(FIRST_SESSION, f"q{n}", f"m{n}"), None, host)
    assert len(entity.events) == WINDOW < machine.seq
    entity.receive(EventsQuery(2), ReplyTo("gateway", "call-1"), host)
    [served] = host.replies
    assert [e["seq"] for e in served] == list(range(3, machine.seq + 1))


@pytest.mark.usefixtures("small_window")
def test_snapshots_and_replays_older_than_the_window_come_from_the_journal(
    make_gateway: Callable[..., Gateway],
) -> None:
    gw = make_gateway()
    ref = gw.start_session("cust-1", "WEB", "v")
    cid = ref.conversation_id
    for n in range(3 * WINDOW):
        gw.customer_message(ref.channel_session_id, f"question {n}")
    events = gw.events(cid)
    assert len(events) > 3 * WINDOW
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["seq"] for e in gw.events(cid, after_seq=3)] == list(range(4, len(events) + 1))
    gw.subscribe_session(ref.channel_session_id, after_seq=2)
    assert [p.event for p in gw.pushed()] == events[2:]


@pytest.mark.usefixtures("small_window")
def test_the_archive_of_a_conversation_longer_than_the_window_holds_every_event(
    make_gateway: Callable[..., Gateway],
) -> None:
    gw = make_gateway()
    ref = gw.start_session("cust-1", "WEB", "v")
    cid = ref.conversation_id
    for n in range(3 * WINDOW):
        gw.customer_message(ref.channel_session_id, f"question {n}")
    live = gw.events(cid)
    gw.end_session(ref.channel_session_id)
    assert gw.conversation(cid)["state"] == "CLOSED"
    archived = gw.events(cid)
    assert [e["seq"] for e in archived] == list(range(1, len(archived) + 1))
    assert archived[: len(live)] == live


def test_a_conversation_stops_growing_once_its_event_window_is_full() -> None:
    """2,000 messages hold about the memory of 300: the window is full from about 100 on."""
    at_300, at_2000 = measure([300, 2_000])
    assert at_300.events_in_memory == at_2000.events_in_memory == event_window.RECENT_EVENTS
    assert at_2000.events_published > 6 * at_300.events_in_memory
    assert at_2000.bytes < 1.1 * at_300.bytes
