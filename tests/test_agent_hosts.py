"""Agents spread over ``placement.agent_hosts`` agent hosts, each on the one its id hashes to."""

from __future__ import annotations

from typing import Any

from actors.agent_supervisor import AgentSupervisor, agent_host_slot
from runtime import testing
from runtime.gateway import Gateway
from tests.conftest import MakeGateway

AGENTS = ("alice", "bob", "carol", "dave")


def supervisor(gw: Gateway) -> AgentSupervisor:
    found: AgentSupervisor = testing.actor(gw, testing.addresses(gw).agents)
    return found


def host_of(gw: Gateway, agent_id: str) -> Any:
    return supervisor(gw).placement[agent_id].address


def test_the_agent_host_slot_is_a_stable_hash_of_the_id() -> None:
    assert [agent_host_slot(a, 2) for a in AGENTS] == [1, 0, 1, 0]


def test_agents_go_to_the_agent_host_their_id_hashes_to(make_gateway: MakeGateway) -> None:
    gw = make_gateway(placement={"agent_hosts": 2})
    for agent_id in AGENTS:
        gw.agent_login(agent_id)
    assert host_of(gw, "alice") == host_of(gw, "carol")
    assert host_of(gw, "bob") == host_of(gw, "dave")
    assert host_of(gw, "alice") != host_of(gw, "bob")


def test_one_agent_host_holds_every_agent_by_default(make_gateway: MakeGateway) -> None:
    gw = make_gateway()
    for agent_id in AGENTS:
        gw.agent_login(agent_id)
    assert len({str(host_of(gw, a)) for a in AGENTS}) == 1


def test_an_agent_on_the_second_agent_host_is_routed_a_conversation(
    make_gateway: MakeGateway,
) -> None:
    gw = make_gateway(placement={"agent_hosts": 2})
    gw.agent_login("bob")  # the first agent host started holds bob's slot, 0
    gw.agent_login("alice")  # slot 1: the second agent host
    gw.agent_ready("alice")
    ref = gw.start_session("cust-1", "WEB", "browser-1")
    gw.request_agent(ref.conversation_id)
    snapshot = gw.conversation(ref.conversation_id)
    assert snapshot["state"] == "ACTIVE"
    assert "alice" in [p["id"] for p in snapshot["participants"]]
