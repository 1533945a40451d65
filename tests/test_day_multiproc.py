"""A contact center's day on a running multiprocTCPBase system, through ``Gateway.connect``:
the flows whose other tests run embedded only (a conference and an ended consult, a private
room's advisors, a team room's pushed messages, queue positions, the sticky agent, read
receipts, an agent desk's final event, a consult handed over during a hold). One system serves
those tests, each with agents, queues and customers of its own; a second one, with offers to
accept and short real-clock timers, serves the flows that wait for a timer (a transfer nobody
takes, a consult left to ring out), through the Gateway and through a network gateway in front
of it. Each is shut down, every process gone, at the end."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.gateway import Gateway, PushedEvent
from runtime.netgateway import serve
from tests.multiproc_support import eventually, running_system, write_config
from tests.netgateway_day_support import Client
from tests.test_netgateway import MAX_FRAME, TOKEN

pytestmark = pytest.mark.multiproc

ROUTING = {"position_interval_seconds": 1, "sticky_agent_seconds": 30}
#: Offers to accept within 2 s, requests that end unserved after 3 s (real time).
OFFERS = {"auto_accept": False, "accept_timeout_seconds": 2, "request_ttl_seconds": 3}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    config = write_config(tmp_path_factory.mktemp("day"), routing=ROUTING)
    with running_system(config), Gateway.connect(config) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def timed_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A system whose offers must be accepted and whose requests expire, in seconds: its
    configuration file."""
    config = write_config(tmp_path_factory.mktemp("timed"), routing=OFFERS)
    with running_system(config):
        yield config


@pytest.fixture(scope="module")
def timed(timed_system: Path) -> Iterator[Gateway]:
    with Gateway.connect(timed_system) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def timed_net(timed_system: Path) -> Iterator[Callable[[], Client]]:
    """A network gateway in front of the timed system: a new authenticated client each call
    (its reads wait up to 15 s: pushes follow 2-3 s timers)."""
    server = serve(lambda: Gateway.connect(timed_system), "127.0.0.1:0", TOKEN, MAX_FRAME)
    clients: list[Client] = []

    def open_client() -> Client:
        client = Client(server.port, timeout=15.0)
        clients.append(client)
        client.authenticate()
        return client

    try:
        yield open_client
    finally:
        for client in clients:
            client.close()
        server.close()


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


def joined(gw: Gateway, customer_id: str, agent_id: str) -> str:
    """A conversation of ``customer_id`` that ``agent_id`` joined as PRIMARY (no offer)."""
    gw.agent_login(agent_id)
    cid = gw.start_session(customer_id, "WEB", f"v-{customer_id}").conversation_id
    gw.agent_join(agent_id, cid)
    assert roles(gw, cid) == {agent_id: "PRIMARY"}
    return cid


def offered(gw: Gateway, agent_id: str, conversation_id: str) -> bool:
    return any(
        c["conversation_id"] == conversation_id and c["role"] is None
        for c in gw.agent_conversations(agent_id)
    )


def bot_role(gw: Gateway, conversation_id: str) -> str | None:
    bots = [p for p in gw.conversation(conversation_id)["participants"] if p["type"] == "BOT"]
    return next((str(p["role"]) for p in bots if p["state"] == "SUBSCRIBED"), None)


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


def test_a_consult_handed_over_during_a_hold_leaves_the_consulted_agent_primary_on_hold(
    gw: Gateway,
) -> None:
    ready(gw, "hold-bob", "hold")
    cid = routed(gw, "cust-hold", "hold", "hold-bob")
    gw.hold("hold-bob", cid, 60)
    ready(gw, "hold-carol", "hold-help")
    gw.consult("hold-bob", cid, queue="hold-help")
    eventually(lambda: roles(gw, cid) == {"hold-bob": "PRIMARY", "hold-carol": "ASSISTANT"})
    assert gw.conversation(cid)["state"] == "ON_HOLD"
    gw.consult_transfer("hold-bob", cid)
    assert roles(gw, cid) == {"hold-carol": "PRIMARY"}
    assert gw.conversation(cid)["state"] == "ON_HOLD"
    gw.resume("hold-carol", cid)
    assert gw.conversation(cid)["state"] == "ACTIVE"


def test_a_transfer_nobody_takes_ends_unserved_with_the_bot_primary_again(timed: Gateway) -> None:
    cid = joined(timed, "cust-unserved", "ttl-bob")
    seq = timed.conversation(cid)["seq"]
    timed.transfer("ttl-bob", cid, queue="nobody-takes-this")
    assert bot_role(timed, cid) == "PRIMARY"
    eventually(lambda: "NO_AGENT_AVAILABLE" in names(timed, cid, seq))  # after 3 s
    (expired,) = [e for e in timed.events(cid, after_seq=seq) if e["name"] == "NO_AGENT_AVAILABLE"]
    assert expired["data"]["queue"] == "nobody-takes-this"
    assert roles(timed, cid) == {}
    assert bot_role(timed, cid) == "PRIMARY"


def test_a_consult_left_to_ring_out_can_be_asked_again_and_accepted(timed: Gateway) -> None:
    cid = joined(timed, "cust-ring", "ring-bob")
    ready(timed, "ring-carol", "ring-help")
    seq = timed.conversation(cid)["seq"]
    timed.consult("ring-bob", cid, to_agent_id="ring-carol")
    eventually(lambda: "NO_AGENT_AVAILABLE" in names(timed, cid, seq))  # rang out after 2 s
    lapsed = [
        e for e in timed.events(cid, after_seq=seq) if e["name"] in ("RONA", "NO_AGENT_AVAILABLE")
    ]
    assert [e["name"] for e in lapsed] == ["RONA", "NO_AGENT_AVAILABLE"]
    assert all(e["data"]["consult"] is True for e in lapsed)
    assert roles(timed, cid) == {"ring-bob": "PRIMARY"}

    timed.agent_ready("ring-carol")
    timed.consult("ring-bob", cid, to_agent_id="ring-carol")
    eventually(lambda: offered(timed, "ring-carol", cid))
    timed.agent_join("ring-carol", cid)
    assert roles(timed, cid) == {"ring-bob": "PRIMARY", "ring-carol": "ASSISTANT"}


def net_joined(c: Client, customer_id: str, agent_id: str) -> tuple[str, str]:
    """As :func:`joined`, over the network: the conversation's id and its session's id."""
    c.call("agent_login", agent_id=agent_id)
    ref = c.call(
        "start_session", customer_id=customer_id, channel="WEB", identifier=f"v-{customer_id}"
    )
    c.call("agent_join", agent_id=agent_id, conversation_id=ref["conversation_id"])
    assert c.roles(ref["conversation_id"]) == {agent_id: "PRIMARY"}
    return ref["conversation_id"], ref["channel_session_id"]


def test_a_transfer_nobody_takes_is_pushed_unserved_to_the_session_over_the_network(
    timed_net: Callable[[], Client],
) -> None:
    c = timed_net()
    cid, session = net_joined(c, "cust-net-unserved", "net-ttl-bob")
    c.subscribed(session, cid)
    c.call("transfer", agent_id="net-ttl-bob", conversation_id=cid, queue="nobody-net")
    expired = c.push("NO_AGENT_AVAILABLE", cid)  # after 3 s
    assert expired["event"]["data"]["queue"] == "nobody-net"
    bot = [
        p for p in c.call("conversation", conversation_id=cid)["participants"] if p["type"] == "BOT"
    ]
    assert [(p["role"], p["state"]) for p in bot] == [("PRIMARY", "SUBSCRIBED")]
    assert c.roles(cid) == {}


def test_a_consult_rings_out_on_the_desk_and_is_accepted_when_asked_again_over_the_network(
    timed_net: Callable[[], Client],
) -> None:
    c, desk = timed_net(), timed_net()
    cid, _ = net_joined(c, "cust-net-ring", "net-ring-bob")
    desk.ready("net-ring-carol", "net-ring-help")
    desk.desk("net-ring-carol")
    c.call("consult", agent_id="net-ring-bob", conversation_id=cid, to_agent_id="net-ring-carol")
    desk.push("AGENT_OFFERED", cid)
    assert desk.push("RONA", cid)["push"] == "agent:net-ring-carol"  # after 2 s
    eventually(
        lambda: "NO_AGENT_AVAILABLE" in [e["name"] for e in c.call("events", conversation_id=cid)]
    )
    assert c.roles(cid) == {"net-ring-bob": "PRIMARY"}

    desk.call("agent_ready", agent_id="net-ring-carol")
    desk.pushed.clear()
    c.call("consult", agent_id="net-ring-bob", conversation_id=cid, to_agent_id="net-ring-carol")
    desk.push("AGENT_OFFERED", cid)
    desk.call("agent_join", agent_id="net-ring-carol", conversation_id=cid)
    assert c.roles(cid) == {"net-ring-bob": "PRIMARY", "net-ring-carol": "ASSISTANT"}
