"""Webhooks of live conversations: events reach the receiver while their conversation is live,
in order, once each by sequence number, across a receiver outage, a restart of the delivery
and the conversation's close (the rest then comes from the archive). The engine runs
embedded under virtual time; the upkeep is given each tick's ``now``: nothing sleeps."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from structlog.testing import capture_logs

from runtime.gateway import Gateway, UnavailableError
from runtime.upkeep import Upkeep
from runtime.webhooks import verify
from tests.conftest import MakeGateway
from tests.test_transfer import ready, routed_to
from tests.webhook_support import Receiver

SECRET = "a-secret-of-some-length"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver.on_free_port() as receiving:
        yield receiving


@pytest.fixture
def gw(make_gateway: MakeGateway, receiver: Receiver) -> Gateway:
    hook = {"name": "crm", "url": f"http://127.0.0.1:{receiver.port}/hook", "secret": SECRET,
            "backoff_seconds": 1, "max_backoff_seconds": 16}  # fmt: skip
    return make_gateway(webhooks=[hook])


class Lent:
    """The test's gateway lent to an upkeep: closing it is the test's business."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.fail = False

    def conversations(self, *, limit: int = 1000) -> list[dict[str, Any]]:
        if self.fail:
            raise UnavailableError("the engine's actor system does not answer")
        return self.gateway.conversations(limit=limit)

    def events(self, conversation_id: str, *, after_seq: int = 0) -> list[dict[str, Any]]:
        return self.gateway.events(conversation_id, after_seq=after_seq)

    def close(self) -> None:
        pass


def upkeep_of(gw: Gateway, lent: Lent | None = None) -> Upkeep:
    engine = Lent(gw) if lent is None else lent
    return Upkeep(gw.settings, clock=lambda: 0, connect=lambda: engine)


def every_event(gw: Gateway, conversation_id: str) -> list[tuple[str, int]]:
    return [(conversation_id, event["seq"]) for event in gw.events(conversation_id)]


def run_for(upkeep: Upkeep, start_ms: int, until_ms: int) -> int:
    """Tick the upkeep when it asks to be ticked, from ``start_ms`` to ``until_ms``."""
    now = start_ms
    while now < until_ms:
        now += max(upkeep.tick(now), 1)
    return now


def test_a_live_conversations_events_reach_the_receiver_before_it_closes(
    gw: Gateway, receiver: Receiver
) -> None:
    receiver.up()
    ref = gw.start_session("cust-1", "WEB", "visitor-1")
    gw.customer_message(ref.channel_session_id, "hello")

    upkeep_of(gw).tick(0)

    assert gw.conversation(ref.conversation_id)["state"] != "CLOSED"
    assert receiver.received == every_event(gw, ref.conversation_id)
    assert receiver.received  # the welcome and the message at least


def test_a_receiver_down_for_a_minute_gets_every_live_event_afterwards_in_order_once_each(
    gw: Gateway, receiver: Receiver
) -> None:
    upkeep = upkeep_of(gw)
    ref = gw.start_session("cust-1", "WEB", "visitor-1")
    gw.customer_message(ref.channel_session_id, "hello")
    now = run_for(upkeep, 0, 60_000)  # down for a minute: retried with backoff
    gw.customer_message(ref.channel_session_id, "anyone there?")
    assert receiver.received == []

    receiver.up()
    run_for(upkeep, now, now + 120_000)

    assert gw.conversation(ref.conversation_id)["state"] != "CLOSED"
    assert receiver.received == every_event(gw, ref.conversation_id)


def test_a_restarted_delivery_resumes_live_conversations_after_the_last_acknowledged_event(
    gw: Gateway, receiver: Receiver
) -> None:
    receiver.up()
    ref = gw.start_session("cust-1", "WEB", "visitor-1")
    upkeep_of(gw).tick(0)
    before = list(receiver.received)
    gw.customer_message(ref.channel_session_id, "one")
    gw.customer_message(ref.channel_session_id, "two")
    receiver.status = 503  # refuses what follows: not acknowledged
    upkeep_of(gw).tick(1_000)
    receiver.status = 200

    upkeep_of(gw).tick(2_000)  # a new process: its cursors from the archive

    assert before and receiver.received == every_event(gw, ref.conversation_id)


def test_a_conversation_closed_while_the_receiver_is_down_is_finished_from_the_archive(
    gw: Gateway, receiver: Receiver
) -> None:
    receiver.up()
    upkeep = upkeep_of(gw)
    ref = gw.start_session("cust-1", "WEB", "visitor-1")
    upkeep.tick(0)
    delivered_live = len(receiver.received)
    receiver.status = 503
    gw.customer_message(ref.channel_session_id, "bye")
    gw.end_conversation(ref.conversation_id)
    upkeep.tick(1_000)
    assert gw.conversation(ref.conversation_id)["state"] == "CLOSED"
    receiver.status = 200

    run_for(upkeep, 2_000, 60_000)

    assert delivered_live and receiver.received == every_event(gw, ref.conversation_id)


def test_while_the_engine_does_not_answer_the_archive_is_delivered_and_it_is_said_once(
    gw: Gateway, receiver: Receiver
) -> None:
    receiver.up()
    lent = Lent(gw)
    upkeep = upkeep_of(gw, lent)
    closed = gw.start_session("cust-1", "WEB", "visitor-1")
    gw.end_conversation(closed.conversation_id)
    lent.fail = True
    with capture_logs() as logs:
        upkeep.tick(0)
        upkeep.tick(1_000)
    live = gw.start_session("cust-2", "WEB", "visitor-2")
    lent.fail = False
    upkeep.tick(2_000)

    warnings = [line for line in logs if line["event"] == "webhook_engine_unavailable"]
    assert len(warnings) == 1
    assert receiver.received == [
        *every_event(gw, closed.conversation_id), *every_event(gw, live.conversation_id)
    ]


def test_a_live_events_body_names_its_conversation_room_and_seq_and_is_signed(
    gw: Gateway, receiver: Receiver
) -> None:
    receiver.up()
    ref = gw.start_session("cust-1", "WEB", "visitor-1")
    gw.customer_message(ref.channel_session_id, "hello")

    upkeep_of(gw).tick(7_000)

    body, signature = receiver.bodies[-1]
    document = json.loads(body)
    assert verify(SECRET, signature, body) and signature.startswith("t=7000,")
    assert (document["conversation_id"], document["room_id"]) == (ref.conversation_id, ref.room_id)
    assert document["event"] == gw.events(ref.conversation_id)[-1]
    assert document["seq"] == document["event"]["seq"]


def test_a_live_whisper_is_left_out_of_a_webhook_without_include_agent_only(
    gw: Gateway, receiver: Receiver
) -> None:
    receiver.up()
    ready(gw, "bob")
    conversation_id, _ = routed_to(gw, "bob")
    gw.whisper("bob", conversation_id, "this one is a VIP")
    gw.agent_message("bob", conversation_id, "how can I help?")
    events = gw.events(conversation_id)

    upkeep_of(gw).tick(0)

    (whisper,) = [e["seq"] for e in events if e["name"] == "WHISPER_MESSAGE"]
    assert receiver.received == [
        (conversation_id, e["seq"]) for e in events if e["seq"] != whisper
    ]
