"""A contact center's day on a running multiprocTCPBase system, through ``Gateway.connect``:
the flows whose other tests run embedded only (a conference and an ended consult, a private
room's advisors, a team room's pushed messages, queue positions, the sticky agent, read
receipts, an agent desk's final event). One system serves every test of the module, each
with agents, queues and customers of its own; it is shut down, every process gone, at the end."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from runtime.gateway import Gateway, PushedEvent
from tests.multiproc_support import eventually, running_system, write_config

pytestmark = pytest.mark.multiproc

ROUTING = {"position_interval_seconds": 1, "sticky_agent_seconds": 30}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    config = write_config(tmp_path_factory.mktemp("day"), routing=ROUTING)
    with running_system(config), Gateway.connect(config) as gateway:
        yield gateway


def ready(gw: Gateway, agent_id: str, queue: str) -> None:
    gw.agent_login(agent_id, queues=[queue])
    gw.agent_ready(agent_id)


def roles(gw: Gateway, conversation_id: str) -> dict[str, str]:
    return {
        p["id"]: p["role"]
        for p in gw.conversation(conversation_id)["participants"]
        if p["type"] == "AGENT" and p["state"] == "SUBSCRIBED"
    }


def routed(gw: Gateway, customer_id: str, queue: str, agent_id: str) -> str:
    """A conversation of ``customer_id`` whose PRIMARY is ``agent_id``, the queue's one agent."""
    cid = gw.start_session(customer_id, "WEB", f"v-{customer_id}").conversation_id
    gw.request_agent(cid, queue)
    eventually(lambda: roles(gw, cid) == {agent_id: "PRIMARY"})
    return cid


def names(gw: Gateway, conversation_id: str, seq: int = 0) -> list[str]:
    return [e["name"] for e in gw.events(conversation_id, after_seq=seq)]


class Pushes:
    """What ``gw`` is pushed for one subscription, gathered until a condition holds."""

    def __init__(self, gw: Gateway, subscription: str) -> None:
        self.gw, self.subscription = gw, subscription
        self.got: list[PushedEvent] = []

    def until(self, check: Any) -> list[PushedEvent]:
        def arrived() -> bool:
            pushed = self.gw.pushed(0.05)
            self.got += [p for p in pushed if p.subscription == self.subscription]
            return bool(check(self.got))

        eventually(arrived)
        return self.got


def test_a_consult_concluded_as_a_conference_keeps_both_agents(gw: Gateway) -> None:
    ready(gw, "conf-bob", "conf")
    cid = routed(gw, "cust-conf", "conf", "conf-bob")
    ready(gw, "conf-carol", "conf-help")
    gw.consult("conf-bob", cid, to_agent_id="conf-carol")
    eventually(lambda: roles(gw, cid) == {"conf-bob": "PRIMARY", "conf-carol": "ASSISTANT"})
    gw.conference("conf-bob", cid)
    assert names(gw, cid)[-1] == "CONSULT_CONCLUDED"
    assert roles(gw, cid) == {"conf-bob": "PRIMARY", "conf-carol": "ASSISTANT"}


def test_an_ended_consult_lets_the_consulted_agent_go(gw: Gateway) -> None:
    ready(gw, "end-bob", "end")
    cid = routed(gw, "cust-end", "end", "end-bob")
    ready(gw, "end-carol", "end-help")
    gw.consult("end-bob", cid, queue="end-help")
    eventually(lambda: roles(gw, cid) == {"end-bob": "PRIMARY", "end-carol": "ASSISTANT"})
    gw.end_consult("end-bob", cid)
    assert roles(gw, cid) == {"end-bob": "PRIMARY"}


def test_a_private_rooms_request_goes_to_its_advisor_who_is_ready(gw: Gateway) -> None:
    gw.agent_login("adv-ann")  # the first advisor, NOT_READY
    ready(gw, "adv-bob", "advisors-elsewhere")
    room = gw.create_room("PRIVATE", ["adv-ann", "adv-bob"], customer_id="cust-adv")["room_id"]
    cid = gw.start_session("cust-adv", "WEB", "v-adv", room_id=room).conversation_id
    gw.request_agent(cid)
    eventually(lambda: roles(gw, cid) == {"adv-bob": "PRIMARY"})
    assert gw.conversation(cid)["room_id"] == room


def test_a_team_message_is_pushed_to_each_members_desk(gw: Gateway) -> None:
    for agent_id in ("team-ann", "team-sue"):
        gw.agent_login(agent_id)
        gw.subscribe_agent(agent_id)
    room = gw.create_room("TEAM", ["team-ann", "team-sue"])["room_id"]
    gw.room_message("team-ann", room, "shift swap?")
    got = Pushes(gw, "agent:team-sue").until(
        lambda got: any(p.event["name"] == "ROOM_MESSAGE" for p in got)
    )
    (message,) = [p.event for p in got if p.event["name"] == "ROOM_MESSAGE"]
    assert (message["seq"], message["data"]["room_id"], message["data"]["text"]) == (
        1,
        room,
        "shift swap?",
    )


def test_a_queued_customer_is_pushed_its_position(gw: Gateway) -> None:
    ref = gw.start_session("cust-pos", "WEB", "v-pos")
    cid = ref.conversation_id
    subscription = f"session:{ref.channel_session_id}"
    gw.subscribe_session(ref.channel_session_id, after_seq=gw.conversation(cid)["seq"])
    gw.request_agent(cid, "nobody-serves-this")
    got = Pushes(gw, subscription).until(
        lambda got: any(p.event["name"] == "QUEUE_POSITION" for p in got)
    )
    (told,) = [p.event["data"] for p in got if p.event["name"] == "QUEUE_POSITION"]
    assert told["position"] == 1
    gw.end_conversation(cid)


def test_a_returning_customer_is_routed_to_its_last_agent_first(gw: Gateway) -> None:
    gw.agent_login("sticky-bob", queues=["sticky"])  # idle the longest once READY
    ready(gw, "sticky-ann", "sticky")
    first = routed(gw, "cust-sticky", "sticky", "sticky-ann")
    gw.end_conversation(first)
    eventually(lambda: gw.conversation(first)["state"] == "CLOSED")
    gw.agent_ready("sticky-bob")
    again = gw.start_session("cust-sticky", "WEB", "v-sticky").conversation_id
    assert again != first
    gw.request_agent(again, "sticky")
    eventually(lambda: roles(gw, again) == {"sticky-ann": "PRIMARY"})


def test_read_receipts_are_kept_and_pushed_to_the_agent(gw: Gateway) -> None:
    ready(gw, "read-bob", "read")
    gw.subscribe_agent("read-bob")
    cid = routed(gw, "cust-read", "read", "read-bob")
    session = gw.conversation(cid)["channel_sessions"][0]["id"]
    seq = gw.conversation(cid)["seq"]
    gw.customer_read(session, seq)
    gw.agent_read("read-bob", cid, seq)
    assert names(gw, cid, seq) == ["READ_RECEIPT", "READ_RECEIPT"]
    Pushes(gw, "agent:read-bob").until(
        lambda got: any(p.event["name"] == "READ_RECEIPT" for p in got)
    )


def test_an_agent_desk_gets_a_final_event_when_its_conversation_closes(gw: Gateway) -> None:
    ready(gw, "final-bob", "final")
    gw.subscribe_agent("final-bob")
    cid = routed(gw, "cust-final", "final", "final-bob")
    gw.end_conversation(cid)
    got = Pushes(gw, "agent:final-bob").until(
        lambda got: any(p.final and p.conversation_id == cid for p in got)
    )
    assert [p.final for p in got if p.conversation_id == cid].count(True) == 1
