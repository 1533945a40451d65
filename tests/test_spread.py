"""Routing spread over several Routers, each owning the queues whose name hashes to it."""

from __future__ import annotations

from pathlib import Path

import pytest
from thespian.actors import ActorExitRequest

from actors.router import Router
from domain.routing import partition_of
from infra.config import load_config
from runtime import testing
from runtime.gateway import Gateway
from tests.conftest import MakeGateway
from tests.multiproc_support import eventually, running_system, write_config


def test_the_partition_of_a_key_is_the_same_in_every_process() -> None:
    # fixed values: Python's salted str hash would differ between processes and runs
    assert [partition_of("alice", 1), partition_of("alice", 2), partition_of("bob", 2)] == [
        0,
        1,  # crc32(b"alice") = 0x278EBC47
        0,  # crc32(b"bob") = 0xF5CBB140
    ]


def test_one_router_by_default() -> None:
    assert load_config({}).placement.routers == 1


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
        assert gw.status()["agents"] == {"READY": 1, "BUSY": 0, "NOT_READY": 0}


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


@pytest.mark.multiproc
def test_two_routers_in_their_own_processes_route_and_count(tmp_path: Path) -> None:
    config = write_config(tmp_path, placement={"routers": 2}, bot={"enabled": False})
    queues = queues_of_router(0, 2, 1) + queues_of_router(1, 2, 1)
    with running_system(config), Gateway.connect(config) as gw:
        gw.agent_login("alice", queues=queues, max_conversations=2)
        gw.agent_ready("alice")
        conversations = [requested(gw, f"cust-{n}", q) for n, q in enumerate(queues)]
        eventually(lambda: all(agents_in(gw, c, ["alice"]) for c in conversations))
        status = gw.status()
        assert status["agents"] == {"READY": 0, "BUSY": 1, "NOT_READY": 0}  # both slots taken
        assert sum(status["queues"].values()) == 0


def test_the_virtual_clock_drives_every_routers_alarms(make_gateway: MakeGateway) -> None:
    with make_gateway(
        placement={"routers": 2}, routing={"request_ttl_seconds": 50}, bot={"enabled": False}
    ) as gw:
        queues = queues_of_router(0, 2, 1) + queues_of_router(1, 2, 1)
        conversations = [requested(gw, f"cust-{n}", q) for n, q in enumerate(queues)]
        gw.advance(50)
        expired = [
            sum(e["name"] == "NO_AGENT_AVAILABLE" for e in gw.events(c)) for c in conversations
        ]
        assert expired == [1, 1]
