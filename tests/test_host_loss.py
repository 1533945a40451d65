"""A host that dies with a request in flight: the caller is answered at once, not left to wait.

Found by the chaos runs (F6-F8 in docs/RELIABILITY.md), reproduced here deterministically on the
embedded engine. Under ``simpleSystemBase`` a gateway call runs the actors in this thread until
nothing is pending, and a message an actor sends while handling another leaves at once, while
what it posts (``EngineActor.post``) leaves as a batch when its handler returns. So an actor
patched to send ``ActorExitRequest`` to a host while it handles a request makes that host exit
just before the request it forwarded reaches it: the host dies with the request in flight, its
parent gets ``ChildActorExited``, and the request goes to a dead address, as when a host process
is killed under ``multiprocTCPBase`` between the forward and the answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from thespian.actors import ActorExitRequest

from actors import agent, agent_supervisor
from actors.agent_supervisor import AgentSupervisor
from actors.messages import (
    AgentJoin,
    AgentPresence,
    Deliver,
    Directory,
    OpenSession,
    Reply,
    ReplyTo,
    StateReport,
)
from actors.placement import HostInfo, Placement
from actors.topic_monitor import TopicMonitor
from domain.enums import Channel
from runtime import testing
from runtime.gateway import BadArgumentError, Gateway, GatewayError, UnavailableError
from tests.conftest import MakeGateway, names, watchdog


def supervisor(gw: Gateway) -> AgentSupervisor:
    found: AgentSupervisor = testing.actor(gw, testing.addresses(gw).agents)
    return found


def monitor(gw: Gateway) -> TopicMonitor:
    found: TopicMonitor = testing.actor(gw, testing.addresses(gw).monitor)
    return found


def participant(gw: Gateway, conversation_id: str, agent_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(
        p for p in gw.conversation(conversation_id)["participants"] if p["id"] == agent_id
    )
    return found


def agent_host_dies_with_the_next_request(monkeypatch: pytest.MonkeyPatch, agent_id: str) -> None:
    """The next request for ``agent_id`` that the AgentSupervisor handles is forwarded to the
    agent's host, and the host exits before it gets it (once)."""
    original = AgentSupervisor.on_deliver

    def on_deliver(self: AgentSupervisor, item: Any, sender: Any) -> None:
        placed = self.placement.get(agent_id)  # before: a logout removes it
        original(self, item, sender)  # the forward leaves when this handler returns...
        monkeypatch.setattr(AgentSupervisor, "on_deliver", original)
        host = self.placement.get(agent_id) or placed  # after: a login places it
        assert host is not None
        self.send(host.address, ActorExitRequest())  # ...and this before it

    monkeypatch.setattr(AgentSupervisor, "on_deliver", on_deliver)


def conversation_host_dies_when_placing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The next conversation the TopicMonitor places goes to a host that exits before it gets
    the ``OpenConversation`` (once)."""
    original = Placement.place

    def place(self: Placement, per_host: int) -> HostInfo:
        host = original(self, per_host)
        monkeypatch.setattr(Placement, "place", original)
        self.stop(host.address)  # before the OpenConversation it will post
        return host

    monkeypatch.setattr(Placement, "place", place)


# ---------------------------------------------------------------------- F8: agent hosts

AgentCall = Callable[[Gateway, str], None]
AGENT_CALLS: dict[str, AgentCall] = {
    "agent_ready": lambda gw, cid: gw.agent_ready("alice"),
    "agent_not_ready": lambda gw, cid: gw.agent_not_ready("alice"),
    "agent_join": lambda gw, cid: gw.agent_join("alice", cid),
    "subscribe_agent": lambda gw, cid: gw.subscribe_agent("alice"),
}


@pytest.mark.parametrize("operation", sorted(AGENT_CALLS))
def test_an_agent_request_in_flight_when_its_host_dies_is_answered_unavailable(
    make_gateway: MakeGateway, monkeypatch: pytest.MonkeyPatch, operation: str
) -> None:
    """F8. Before the fix nobody answered: an embedded gateway failed with "the engine did not
    answer", a connected one waited the whole 30 s timeout."""
    gw = make_gateway()
    cid = gw.start_session("cust-1", "WEB", "v").conversation_id
    gw.agent_login("alice")
    call = AGENT_CALLS[operation]

    agent_host_dies_with_the_next_request(monkeypatch, "alice")
    with pytest.raises(UnavailableError) as refused:
        call(gw, cid)
    assert str(refused.value) == (
        f"{operation} refused for agent alice: its agent host failed before it answered, and"
        " the agent is logged out; the request may or may not have been applied: log the agent"
        f" in again (agent_login), then retry {operation}"
    )
    assert supervisor(gw).forwarded == {}
    assert supervisor(gw).placement == {}

    gw.agent_login("alice")  # what the message says: log in again, retry
    call(gw, cid)
    assert supervisor(gw).forwarded == {}
    if operation == "agent_join":
        assert "AGENT_SUBSCRIBED" in names(gw, cid)
        assert participant(gw, cid, "alice")["state"] == "SUBSCRIBED"


def test_a_login_in_flight_when_its_host_dies_is_answered_unavailable(
    make_gateway: MakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = make_gateway()
    agent_host_dies_with_the_next_request(monkeypatch, "alice")
    with pytest.raises(UnavailableError, match=r"^agent_login refused for alice: the agent host"):
        gw.agent_login("alice")
    gw.agent_login("alice")
    gw.agent_ready("alice")
    assert gw.status()["agents"] == {"NOT_READY": 0, "READY": 1, "BUSY": 0}
    assert supervisor(gw).forwarded == {}


def test_a_logout_in_flight_when_its_host_dies_is_answered_unavailable(
    make_gateway: MakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = make_gateway()
    cid = gw.start_session("cust-1", "WEB", "v").conversation_id
    gw.agent_login("alice")
    gw.agent_join("alice", cid)
    agent_host_dies_with_the_next_request(monkeypatch, "alice")
    with pytest.raises(UnavailableError, match=r"leave them with agent_leave$"):
        gw.agent_logout("alice")
    gw.agent_leave("alice", cid)  # what the message says
    assert participant(gw, cid, "alice")["state"] == "UNSUBSCRIBED"
    gw.agent_login("alice")
    assert supervisor(gw).forwarded == {}


def test_forwarded_requests_are_kept_only_until_answered(
    make_gateway: MakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The AgentSupervisor's table of forwarded requests empties as their answers pass,
    refusals included, and holds only a bounded number of unanswered ones."""
    gw = make_gateway()
    cid = gw.start_session("cust-1", "WEB", "v").conversation_id
    gw.agent_login("alice", max_conversations=1)
    gw.agent_ready("alice")
    gw.agent_join("alice", cid)
    gw.subscribe_agent("alice")
    other = gw.start_session("cust-2", "WEB", "w").conversation_id
    with pytest.raises(GatewayError, match="at its limit"):
        gw.agent_join("alice", other)
    with pytest.raises(GatewayError, match="already logged in"):
        gw.agent_login("alice")
    gw.unsubscribe("agent:alice")
    gw.agent_logout("alice")
    table = supervisor(gw).forwarded
    assert table == {}

    # Unanswered ones (e.g. a join whose conversation's host died with the subscribe request)
    # are forgotten once their callers have long given up, and never more than the bound.
    gw.agent_login("bob")
    host = supervisor(gw).placement["bob"]
    lost, ready = ReplyTo(testing.address(gw), "call-lost"), AgentPresence("bob", "READY")
    gw.advance(agent_supervisor.FORWARDED_TTL_MS / 1000)
    table["fwd-old"] = agent_supervisor.ForwardedRequest(
        lost, host, "bob", ready, gw.now_ms - agent_supervisor.FORWARDED_TTL_MS
    )
    gw.agent_ready("bob")
    assert table == {}
    monkeypatch.setattr(agent_supervisor, "MAX_FORWARDED", 2)
    table["fwd-a"] = agent_supervisor.ForwardedRequest(lost, host, "bob", ready, gw.now_ms)
    table["fwd-b"] = agent_supervisor.ForwardedRequest(lost, host, "bob", ready, gw.now_ms)
    gw.agent_not_ready("bob")  # "fwd-a" makes room: answered unavailable and dropped
    assert list(table) == ["fwd-b"]


# ---------------------------------------------------------------------- F7: conversation hosts


def test_start_session_whose_new_conversations_host_dies_is_answered_unavailable(
    make_gateway: MakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """F7. Before the fix the TopicMonitor forgot the placement without answering: an embedded
    gateway failed with "the engine did not answer", a connected one waited up to 30 s."""
    gw = make_gateway()
    before = gw.start_session("cust-0", "WEB", "u")  # on the same host: rebuilt elsewhere
    conversation_host_dies_when_placing(monkeypatch)
    with pytest.raises(UnavailableError) as refused:
        gw.start_session("cust-1", "WEB", "v")
    assert "failed before opening it; nothing was opened: retry start_session" in str(refused.value)
    assert gw.status()["conversations"] == {"CREATED": 1}  # no ghost of the lost one
    assert all(o.opening is None for o in monitor(gw).live.values())

    ref = gw.start_session("cust-1", "WEB", "v")  # the retry opens it
    assert gw.conversation(ref.conversation_id)["state"] == "CREATED"
    assert gw.status()["conversations"] == {"CREATED": 2}
    gw.customer_message(before.channel_session_id, "still here")  # the other one was rebuilt
    assert "CUSTOMER_MESSAGE" in names(gw, before.conversation_id)


def test_an_opened_conversation_whose_answer_was_lost_with_its_host_is_answered_open(
    make_gateway: MakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other side of F7: the host opened and journaled the conversation, then died before
    the TopicMonitor heard of it (here: its state report is dropped). The conversation is
    rebuilt from the journal, and the caller, whose answer may have been lost with the host, is
    told it is open rather than to retry."""
    gw = make_gateway()
    original = TopicMonitor.on_deliver

    def drop_state_reports(self: TopicMonitor, item: Deliver, sender: Any) -> None:
        if not isinstance(item.payload, StateReport):
            original(self, item, sender)

    monkeypatch.setattr(TopicMonitor, "on_deliver", drop_state_reports)
    ref = gw.start_session("cust-1", "WEB", "v")
    monkeypatch.setattr(TopicMonitor, "on_deliver", original)
    host = testing.host_of(gw, ref.conversation_id)
    system = testing.system(gw)
    system.tell(host, ActorExitRequest())

    answers = []
    while (message := system.listen(0)) is not None:
        answers.append(message)
    opened = {
        "conversation_id": ref.conversation_id,
        "channel_session_id": ref.channel_session_id,
        "room_id": ref.room_id,
    }
    assert [a.value for a in answers if isinstance(a, Reply)] == [opened]
    assert all(o.opening is None for o in monitor(gw).live.values())
    testing.forget_host(gw, ref.conversation_id)
    assert gw.conversation(ref.conversation_id)["state"] == "CREATED"


# ---------------------------------------------------------------------- F6: direct asks


def test_a_host_notice_waiting_at_a_direct_ask_is_kept_not_taken_for_the_answer(
    make_gateway: MakeGateway,
) -> None:
    """F6 (fixed in the gateway by 91c1ec6): a ``HostLost`` notice that comes before the answer
    to a direct ask (``Directory``, ``WhoAmI``, ``BootStatus``) was taken for it: "no answer
    from the engine to Directory", and the notice was lost with the stale address."""
    gw = make_gateway(virtual_time=False)  # a real-time gateway watches hosts
    ref = gw.start_session("cust-1", "WEB", "v")
    host = testing.host_of(gw, ref.conversation_id)
    assert testing.location_cache(gw).as_dict() == {ref.conversation_id: host}
    # the notice waits in the gateway's mailbox
    testing.system(gw).tell(host, ActorExitRequest())
    directory = testing.ask(gw, testing.addresses(gw).monitor, Directory("call-directory"))
    assert set(directory) == {"router", "routers", "desks"}
    # the notice was taken in: the dead address is dropped
    assert testing.location_cache(gw).as_dict() == {}
    gw.customer_message(ref.channel_session_id, "after the host died")
    assert "CUSTOMER_MESSAGE" in names(gw, ref.conversation_id)


def test_the_virtual_clock_moves_on_after_a_host_with_alarms_dies(
    make_gateway: MakeGateway,
) -> None:
    """The dead host's alarms leave the gateway's table; the rebuilt conversation's timers fire
    on its new host."""
    gw = make_gateway()
    ref = gw.start_session("cust-1", "WEB", "browser-1")  # its inactivity timer is pending
    host = testing.host_of(gw, ref.conversation_id)
    testing.system(gw).tell(host, ActorExitRequest())  # rebuilt on another host from the journal
    with watchdog(10, "advance after a host died"):  # it used to fire at the dead host forever
        gw.advance(2 * 3600)  # past every inactivity timer
    assert str(host) not in testing.alarms(gw)
    assert gw.conversation(ref.conversation_id)["state"] == "CLOSED"


def test_a_session_the_conversation_would_refuse_stores_nothing(make_gateway: MakeGateway) -> None:
    """Checked before anything is stored (the gateway checks too, but raw messages and other
    clients reach the TopicMonitor): no room, no live entry, nothing answered twice later."""
    gw = make_gateway()
    request = OpenSession("cust-x", Channel.WEB, "", None, {}, "cs-r1", "conv-r1", "room-r1")
    with pytest.raises(BadArgumentError, match="identifier must be a non-empty string"):
        testing.call(gw, testing.addresses(gw).monitor, request)
    found = monitor(gw)
    assert "conv-r1" not in found.live and "cs-r1" not in found.session_conversation
    assert found.archive is not None and found.archive.room("room-r1") is None
    assert found.archive.contact_center_room_of("cust-x") is None
    assert gw.status()["conversations"] == {}


def test_a_join_whose_conversation_host_died_frees_the_agents_slot_in_time(
    make_gateway: MakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent's SubscribeRequest dies with the conversation's host: no one will ever answer
    it. The slot it reserved is freed after RESERVATION_MS (the caller told `unavailable`), so
    an agent at its limit can take another conversation; before, it was held until logout."""
    gw = make_gateway()
    ref = gw.start_session("cust-1", "WEB", "browser-1")
    gw.agent_login("alice", max_conversations=1)
    conversation_host = testing.host_of(gw, ref.conversation_id)
    original = AgentSupervisor.on_deliver

    def on_deliver(self: AgentSupervisor, item: Any, sender: Any) -> None:
        original(self, item, sender)
        if isinstance(item.payload, AgentJoin):
            monkeypatch.setattr(AgentSupervisor, "on_deliver", original)
            self.send(conversation_host, ActorExitRequest())  # before the SubscribeRequest

    monkeypatch.setattr(AgentSupervisor, "on_deliver", on_deliver)
    with pytest.raises(GatewayError):  # embedded: nothing answers before the engine is idle
        gw.agent_join("alice", ref.conversation_id)
    other = gw.start_session("cust-2", "WEB", "browser-2")
    with pytest.raises(GatewayError, match="at its limit of 1"):
        gw.agent_join("alice", other.conversation_id)
    gw.advance(agent.RESERVATION_MS / 1000)
    gw.agent_join("alice", other.conversation_id)  # the slot is free again
    assert "alice" in [p["id"] for p in gw.conversation(other.conversation_id)["participants"]]
    assert not supervisor(gw).forwarded  # the expired join was answered through the supervisor


def test_a_waiting_request_is_routed_to_its_conversation_rebuilt_on_another_host(
    make_gateway: MakeGateway,
) -> None:
    """The Router knew the conversation at its dead host's address; the rebuilt conversation
    re-sends its pending request with its new address, so the agent who comes is routed there."""
    gw = make_gateway()
    ref = gw.start_session("cust-1", "WEB", "browser-1")
    gw.request_agent(ref.conversation_id)  # no agent yet: the request waits in the Router
    dead = testing.host_of(gw, ref.conversation_id)
    testing.system(gw).tell(dead, ActorExitRequest())  # rebuilt on another host from the journal
    gw.agent_login("alice")
    gw.agent_ready("alice")  # routed now: to the conversation where it lives now
    testing.forget_host(gw, ref.conversation_id)
    assert testing.host_of(gw, ref.conversation_id) != dead
    snapshot = gw.conversation(ref.conversation_id)
    assert snapshot["state"] == "ACTIVE"
    assert "alice" in [p["id"] for p in snapshot["participants"]]


def test_a_session_subscription_survives_its_conversations_host_dying(
    make_gateway: MakeGateway,
) -> None:
    """The conversation is rebuilt on another host without its subscriber: the gateway, told
    of the host's death, subscribes again from the last seq it handed over."""
    gw = make_gateway(virtual_time=False)  # a real-time gateway watches hosts
    ref = gw.start_session("cust-1", "WEB", "v")
    gw.subscribe_session(ref.channel_session_id)
    before = [p.event["seq"] for p in gw.pushed()]
    testing.system(gw).tell(testing.host_of(gw, ref.conversation_id), ActorExitRequest())
    assert gw.pushed() == []  # the notice is taken in; nothing new to push
    gw.customer_message(ref.channel_session_id, "after the host died")
    after = [p.event for p in gw.pushed()]
    assert "after the host died" in [e["data"].get("text") for e in after]
    assert before + [e["seq"] for e in after] == [e["seq"] for e in gw.events(ref.conversation_id)]
