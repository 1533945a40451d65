"""Work spread over processes: agents over several agent hosts, routing over several routers."""

from __future__ import annotations

from actors.agent_supervisor import AgentSupervisor
from domain.routing import partition_of
from runtime import testing
from runtime.gateway import Gateway
from tests.conftest import MakeGateway


def supervisor(gw: Gateway) -> AgentSupervisor:
    found: AgentSupervisor = testing.actor(gw, testing.addresses(gw).agents)
    return found


def agents_of_group(group: int, groups: int, count: int) -> list[str]:
    """``count`` agent ids whose stable hash puts them in ``group`` of ``groups``."""
    ids = (f"agent-{n}" for n in range(1000))
    return [a for a in ids if partition_of(a, groups) == group][:count]


def test_the_partition_of_a_key_is_the_same_in_every_process() -> None:
    # fixed values: Python's salted str hash would differ between processes and runs
    assert [partition_of("alice", 1), partition_of("alice", 2), partition_of("bob", 2)] == [
        0,
        1,  # crc32(b"alice") = 0x278EBC47
        0,  # crc32(b"bob") = 0xF5CBB140
    ]


def test_agents_live_on_the_agent_host_of_their_hash(make_gateway: MakeGateway) -> None:
    with make_gateway(placement={"agent_hosts": 2}) as gw:
        agents = agents_of_group(0, 2, 2) + agents_of_group(1, 2, 2)
        for agent_id in agents:
            gw.agent_login(agent_id)
        placed = supervisor(gw).placement
        assert [placed[a].group for a in agents] == [0, 0, 1, 1]
        assert placed[agents[0]] is placed[agents[1]]
        assert placed[agents[2]] is placed[agents[3]]
        assert placed[agents[0]].address != placed[agents[2]].address
        assert len(supervisor(gw).hosts) == 2


def test_one_agent_host_holds_every_agent_by_default(make_gateway: MakeGateway) -> None:
    with make_gateway() as gw:
        agents = agents_of_group(0, 2, 2) + agents_of_group(1, 2, 2)
        for agent_id in agents:
            gw.agent_login(agent_id)
        assert len(supervisor(gw).hosts) == 1


def test_agents_on_both_agent_hosts_are_routed_conversations(make_gateway: MakeGateway) -> None:
    with make_gateway(placement={"agent_hosts": 2}) as gw:
        agents = agents_of_group(0, 2, 1) + agents_of_group(1, 2, 1)
        for agent_id in agents:
            gw.agent_login(agent_id, max_conversations=1)
            gw.agent_ready(agent_id)
        served = []
        for customer in ("cust-1", "cust-2"):
            cid = gw.start_session(customer, "WEB", f"{customer}-web").conversation_id
            gw.request_agent(cid)
            snapshot = gw.conversation(cid)
            assert snapshot["state"] == "ACTIVE"
            served += [p["id"] for p in snapshot["participants"] if p["id"] in agents]
        assert sorted(served) == sorted(agents)
