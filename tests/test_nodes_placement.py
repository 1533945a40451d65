"""The engine places agent hosts and archivists on the live nodes that offer them, and
rebuilds what a dead node held: the choice itself (pure), then the AgentSupervisor and the
TopicMonitor in one simpleSystemBase on PostgreSQL storage, told ``NodeUp`` / ``NodeDown`` by
hand. The system's ``cx.node`` capability names the node that requirements place on."""

from __future__ import annotations

from typing import Any

from thespian.actors import ActorExitRequest

from actors.agent_supervisor import AgentSupervisor
from actors.messages.nodes import NodeDown, NodeUp
from actors.nodes import (
    AGENT_HOSTS_CAPABILITY,
    ARCHIVISTS_CAPABILITY,
    NODE_CAPABILITY,
    WEIGHT_CAPABILITY,
    capacity_of,
)
from actors.placement import Nodes
from actors.topic_monitor import TopicMonitor
from domain.membership import Capacity, Work, least_loaded
from runtime import testing
from runtime.gateway import Gateway
from tests.conftest import MakeGateway

NO_AGENT_HOSTS = Capacity(agent_hosts=False, archivists=False)


def test_least_loaded_picks_fewest_per_unit_of_weight_ties_by_name() -> None:
    assert least_loaded({"a": 1, "b": 2, "c": 1}, {"a": 1, "b": 1, "c": 1}) == "b"
    assert least_loaded({"b": 1, "a": 1}, {}) == "a"
    assert least_loaded({}, {"a": 0}) is None


def test_a_capacity_says_which_work_it_offers() -> None:
    capacity = Capacity(hosts=False, agent_hosts=True, archivists=False)
    assert [w for w in Work if capacity.offers(w)] == [Work.AGENT_HOSTS]


def test_a_node_without_the_capabilities_offers_every_kind_of_work() -> None:
    assert capacity_of({NODE_CAPABILITY: "n2"}) == Capacity()
    offered = capacity_of(
        {WEIGHT_CAPABILITY: 3, AGENT_HOSTS_CAPABILITY: False, ARCHIVISTS_CAPABILITY: True}
    )
    assert offered == Capacity(weight=3, agent_hosts=False, archivists=True)


def test_nodes_keep_only_live_nodes_offering_the_work() -> None:
    nodes = Nodes(Work.ARCHIVISTS)
    nodes.up("n1", Capacity())
    nodes.up("n2", Capacity(archivists=False))
    nodes.up("n3", Capacity(weight=2))
    assert nodes.choose(["n1", "n3", None]) == "n3"  # 1/1 against 1/2
    nodes.down("n3")
    assert nodes.choose(["n1", "n3"]) == "n1"
    nodes.up("n1", Capacity(archivists=False))  # it stopped offering them
    assert nodes.choose([]) is None


def _engine(make_gateway: MakeGateway, dsn: str, **overrides: Any) -> Gateway:
    gw = make_gateway(storage={"postgres": dsn}, **overrides)
    testing.system(gw).updateCapability(NODE_CAPABILITY, "n2")
    return gw


def _supervisor(gw: Gateway) -> AgentSupervisor:
    found: AgentSupervisor = testing.actor(gw, testing.addresses(gw).agents)
    return found


def _monitor(gw: Gateway) -> TopicMonitor:
    found: TopicMonitor = testing.actor(gw, testing.addresses(gw).monitor)
    return found


def _tell(gw: Gateway, to: Any, *messages: Any) -> None:
    for message in messages:
        testing.system(gw).tell(to, message)


def test_an_agent_host_goes_to_the_live_node_offering_agent_hosts(
    make_gateway: MakeGateway, postgres_dsn: str
) -> None:
    gw = _engine(make_gateway, postgres_dsn)
    agents = testing.addresses(gw).agents
    _tell(gw, agents, NodeUp("leader", 1, NO_AGENT_HOSTS), NodeUp("n2", 5, Capacity()))
    gw.agent_login("alice")
    assert _supervisor(gw).placement["alice"].node == "n2"


def test_agent_hosts_stay_here_with_files_storage(make_gateway: MakeGateway) -> None:
    gw = make_gateway()
    testing.system(gw).updateCapability(NODE_CAPABILITY, "n2")
    _tell(gw, testing.addresses(gw).agents, NodeUp("n2", 5, Capacity()))
    gw.agent_login("alice")
    assert _supervisor(gw).placement["alice"].node is None


def test_a_dead_nodes_agents_stay_logged_in_and_ready_on_a_new_agent_host(
    make_gateway: MakeGateway, postgres_dsn: str
) -> None:
    gw = _engine(make_gateway, postgres_dsn)
    agents = testing.addresses(gw).agents
    _tell(gw, agents, NodeUp("leader", 1, NO_AGENT_HOSTS), NodeUp("n2", 5, Capacity()))
    gw.agent_login("alice")
    gw.agent_ready("alice")
    before = _supervisor(gw).placement["alice"]
    _tell(gw, agents, NodeDown("n2", 5))
    after = _supervisor(gw).placement["alice"]
    assert after.address != before.address
    assert after.node is None  # no live node offers agent hosts: here
    ref = gw.start_session("cust-1", "WEB", "browser-1")
    gw.request_agent(ref.conversation_id)  # routed to alice: still READY
    participants = gw.conversation(ref.conversation_id)["participants"]
    assert "alice" in [p["id"] for p in participants]


def test_a_dead_nodes_agents_are_attached_again_to_their_conversations(
    make_gateway: MakeGateway, postgres_dsn: str
) -> None:
    gw = _engine(make_gateway, postgres_dsn)
    agents = testing.addresses(gw).agents
    _tell(gw, agents, NodeUp("leader", 1, NO_AGENT_HOSTS), NodeUp("n2", 5, Capacity()))
    gw.agent_login("alice")
    gw.agent_ready("alice")
    ref = gw.start_session("cust-1", "WEB", "browser-1")
    gw.request_agent(ref.conversation_id)
    _tell(gw, agents, NodeDown("n2", 5))
    held = gw.agent_conversations("alice")
    assert [c["conversation_id"] for c in held] == [ref.conversation_id]
    gw.agent_message("alice", ref.conversation_id, "still here")
    texts = [e["data"].get("text") for e in gw.events(ref.conversation_id)]
    assert "still here" in texts


def test_an_archivist_replaced_goes_to_a_live_node_offering_archivists(
    make_gateway: MakeGateway, postgres_dsn: str
) -> None:
    gw = _engine(make_gateway, postgres_dsn, placement={"archivists": 1})
    monitor = _monitor(gw)
    assert monitor.archivist_nodes == [None]  # started before any node reported
    _tell(gw, testing.addresses(gw).monitor, NodeUp("n2", 5, Capacity()))
    _tell(gw, monitor.archivists[0], ActorExitRequest())
    assert monitor.archivist_nodes == ["n2"]


def test_a_dead_nodes_archivists_are_replaced_and_archiving_goes_on(
    make_gateway: MakeGateway, postgres_dsn: str
) -> None:
    gw = _engine(make_gateway, postgres_dsn, placement={"archivists": 1})
    monitor = _monitor(gw)
    _tell(gw, testing.addresses(gw).monitor, NodeUp("n2", 5, Capacity()))
    _tell(gw, monitor.archivists[0], ActorExitRequest())
    on_n2 = monitor.archivists[0]
    _tell(gw, testing.addresses(gw).monitor, NodeDown("n2", 5))
    assert monitor.archivists[0] != on_n2
    assert monitor.archivist_nodes == [None]
    ref = gw.start_session("cust-1", "WEB", "browser-1")
    gw.end_conversation(ref.conversation_id)
    assert gw.conversation(ref.conversation_id)["state"] == "CLOSED"
