"""Work spread over processes: agents over several agent hosts, routing over several routers."""

from __future__ import annotations

from thespian.actors import ActorExitRequest

from actors.agent_supervisor import AgentSupervisor
from actors.router import Router
from domain.routing import partition_of
from infra.config import load_config
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


def test_one_router_and_one_agent_host_group_by_default() -> None:
    placement = load_config({}).placement
    assert (placement.routers, placement.agent_hosts) == (1, 1)


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


def queues_of_router(router: int, routers: int, count: int) -> list[str]:
    """``count`` queue names owned by ``router`` of ``routers``."""
    names = (f"queue-{n}" for n in range(1000))
    return [q for q in names if partition_of(q, routers) == router][:count]


def routers(gw: Gateway) -> list[Router]:
    return [testing.actor(gw, r) for r in testing.directory(gw)["routers"]]


def requested(gw: Gateway, customer: str, queue: str) -> str:
    cid = gw.start_session(customer, "WEB", f"{customer}-web").conversation_id
    gw.request_agent(cid, queue=queue)
    return cid


def agents_in(gw: Gateway, cid: str, agents: list[str]) -> list[str]:
    return [p["id"] for p in gw.conversation(cid)["participants"] if p["id"] in agents]


def test_a_request_goes_only_to_the_router_of_its_queue(make_gateway: MakeGateway) -> None:
    with make_gateway(placement={"routers": 2}, bot={"enabled": False}) as gw:
        first, second = queues_of_router(0, 2, 1) + queues_of_router(1, 2, 1)
        requested(gw, "cust-1", first)
        requested(gw, "cust-2", second)
        requested(gw, "cust-3", second)
        assert [r.book.waiting() if r.book else None for r in routers(gw)] == [
            {first: 1},
            {second: 2},
        ]
        assert gw.status()["queues"] == {first: 1, second: 2}


def test_two_routers_never_over_assign_an_agent_of_both(make_gateway: MakeGateway) -> None:
    with make_gateway(placement={"routers": 2}, bot={"enabled": False}) as gw:
        queues = queues_of_router(0, 2, 1) + queues_of_router(1, 2, 1)
        conversations = [requested(gw, f"cust-{n}", q) for n, q in enumerate(queues)]
        # both Routers offer alice's one free slot at once; she takes one, refuses the other
        gw.agent_login("alice", queues=queues, max_conversations=1)
        gw.agent_ready("alice")
        served = [agents_in(gw, cid, ["alice"]) for cid in conversations]
        assert sorted(served) == [[], ["alice"]]
        assert sum(gw.status()["queues"].values()) == 1
        gw.agent_login("bob", queues=queues, max_conversations=1)
        gw.agent_ready("bob")  # the refused request went back to its queue: bob takes it
        served = [agents_in(gw, cid, ["alice", "bob"]) for cid in conversations]
        assert sorted(served) == [["alice"], ["bob"]]


def test_an_agent_of_queues_of_two_routers_is_counted_once(make_gateway: MakeGateway) -> None:
    with make_gateway(placement={"routers": 2}) as gw:
        queues = queues_of_router(0, 2, 1) + queues_of_router(1, 2, 1)
        gw.agent_login("alice", queues=queues)
        gw.agent_ready("alice")
        assert gw.status()["agents"] == {"READY": 1, "NOT_READY": 0}


def test_a_dead_router_is_replaced_and_learns_its_queues_requests(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway(placement={"routers": 2}, bot={"enabled": False}) as gw:
        first, second = queues_of_router(0, 2, 1) + queues_of_router(1, 2, 1)
        cid = requested(gw, "cust-1", second)
        before = testing.directory(gw)["routers"]
        testing.system(gw).tell(before[1], ActorExitRequest())
        after = testing.directory(gw)["routers"]
        assert after[0] == before[0] and after[1] != before[1]
        assert [r.book.waiting() if r.book else None for r in routers(gw)] == [{}, {second: 1}]
        gw.agent_login("alice", queues=[first, second])
        gw.agent_ready("alice")
        assert agents_in(gw, cid, ["alice"]) == ["alice"]
