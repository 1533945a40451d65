"""A raw network-gateway client that waits for pushed events by name, and the fixtures that
start a network gateway in front of an embedded engine (virtual clock), for the tests of an
agent's and a supervisor's day through the network gateway."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from runtime.netgateway import serve
from tests.conftest import MakeGateway
from tests.test_netgateway import MAX_FRAME, TOKEN, RawClient

__all__ = ["OFFERS", "Client", "Connect", "Open", "connect", "net"]

OFFERS = {"routing": {"auto_accept": False, "accept_timeout_seconds": 20}}


class Client(RawClient):
    """A raw client that also waits for pushed events by name."""

    def push(self, name: str, conversation_id: str | None = None) -> dict[str, Any]:
        """Read frames until a push of an event called ``name`` (of ``conversation_id`` when
        given) has arrived; the first such push."""
        while not self.named(name, conversation_id):
            value = self.frame()
            assert "push" in value, value
            self.pushed.append(value)
        return self.named(name, conversation_id)[0]

    def named(self, name: str, conversation_id: str | None = None) -> list[dict[str, Any]]:
        return [
            p
            for p in self.pushed
            if p["event"]["name"] == name
            and (conversation_id is None or p["conversation_id"] == conversation_id)
        ]

    def roles(self, conversation_id: str) -> dict[str, str]:
        """The role of each agent SUBSCRIBED to the conversation."""
        snapshot = self.call("conversation", conversation_id=conversation_id)
        return {
            p["id"]: p["role"]
            for p in snapshot["participants"]
            if p["type"] == "AGENT" and p["state"] == "SUBSCRIBED"
        }

    def ready(self, agent_id: str, *queues: str) -> None:
        self.call("agent_login", agent_id=agent_id, queues=list(queues or ["default"]))
        self.call("agent_ready", agent_id=agent_id)

    def routed(self, agent_id: str, *, accept: bool = False) -> tuple[str, str]:
        """A conversation routed to ``agent_id`` (the only READY agent of the default queue;
        ``accept``: it joins, offers not being taken automatically): its id and session id."""
        ref = self.call("start_session", customer_id="cust-1", channel="WEB", identifier="v")
        self.call("request_agent", conversation_id=ref["conversation_id"])
        if accept:
            self.call("agent_join", agent_id=agent_id, conversation_id=ref["conversation_id"])
        assert self.roles(ref["conversation_id"]) == {agent_id: "PRIMARY"}
        return ref["conversation_id"], ref["channel_session_id"]

    def subscribed(self, session: str, conversation_id: str) -> None:
        """Subscribe to ``session`` from the conversation's current seq on (nothing replayed)."""
        seq = self.call("conversation", conversation_id=conversation_id)["seq"]
        self.call("subscribe_session", channel_session_id=session, after_seq=seq)

    def desk(self, agent_id: str) -> None:
        assert self.call("subscribe_agent", agent_id=agent_id) is None


Open = Callable[..., Client]
Connect = Callable[..., Open]


@pytest.fixture
def connect(make_gateway: MakeGateway) -> Iterator[Connect]:
    """``connect(**config)``: a network gateway in front of an embedded engine with that
    configuration; it returns ``open()``, which gives a new authenticated connection to it."""
    servers: list[Any] = []
    clients: list[Client] = []

    def start(**config: Any) -> Open:
        server = serve(lambda: make_gateway(seed=1, **config), "127.0.0.1:0", TOKEN, MAX_FRAME)
        servers.append(server)

        def open_client() -> Client:
            client = Client(server.port)
            clients.append(client)
            client.authenticate()
            return client

        return open_client

    yield start
    for client in clients:
        client.close()
    for server in servers:
        server.close()


@pytest.fixture
def net(connect: Connect) -> Open:
    return connect()
