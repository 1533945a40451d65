"""The inventory: live conversations by filter, agents, queues and a customer's rooms, through
the Gateway and ``cx``."""

from __future__ import annotations

import json
from typing import Any

import pytest

from runtime import cli, control
from runtime.gateway import BadArgumentError, Gateway, UnknownIdError
from runtime.netgateway import serve
from tests.conftest import MakeGateway
from tests.test_netgateway import MAX_FRAME, TOKEN, RawClient


def ids(found: list[dict[str, Any]]) -> list[str]:
    return [conversation["id"] for conversation in found]


@pytest.fixture
def floor(make_gateway: MakeGateway) -> tuple[Gateway, dict[str, str]]:
    """t=0: cust-1 with bob (sales, ACTIVE); t=30: cust-2 waiting in support (CREATED);
    t=50: cust-3 with the bot alone (CREATED); now t=60 (no timer has expired)."""
    gw = make_gateway(bot={"enabled": False}, timers={"agent_sla": {"seconds": 600}})
    gw.agent_login("bob", queues=["sales"], max_conversations=1)
    gw.agent_ready("bob")
    gw.agent_login("carol", queues=["support"])
    first = gw.start_session("cust-1", "WEB", "v1")
    gw.request_agent(first.conversation_id, "sales")
    gw.advance(30)
    second = gw.start_session("cust-2", "SMS", "v2")
    gw.request_agent(second.conversation_id, "support")
    gw.advance(20)
    third = gw.start_session("cust-3", "WEB", "v3")
    gw.advance(10)
    conversations = {"first": first, "second": second, "third": third}
    return gw, {name: ref.conversation_id for name, ref in conversations.items()}


def test_every_live_conversation_is_listed_oldest_first(
    floor: tuple[Gateway, dict[str, str]],
) -> None:
    gw, cid = floor
    found = gw.conversations()
    assert ids(found) == [cid["first"], cid["second"], cid["third"]]
    assert [c["age_seconds"] for c in found] == [60, 30, 10]
    assert found[0]["agents"] == ["bob"] and found[1]["waiting_for_agent"] is True


def test_conversations_filtered_by_state(floor: tuple[Gateway, dict[str, str]]) -> None:
    gw, cid = floor
    assert ids(gw.conversations(state="ACTIVE")) == [cid["first"]]
    assert ids(gw.conversations(state="created")) == [cid["second"], cid["third"]]


def test_conversations_filtered_by_queue(floor: tuple[Gateway, dict[str, str]]) -> None:
    gw, cid = floor
    assert ids(gw.conversations(queue="support")) == [cid["second"]]


def test_conversations_filtered_by_agent(floor: tuple[Gateway, dict[str, str]]) -> None:
    gw, cid = floor
    assert ids(gw.conversations(agent_id="bob")) == [cid["first"]]
    assert gw.conversations(agent_id="carol") == []


def test_conversations_filtered_by_age(floor: tuple[Gateway, dict[str, str]]) -> None:
    gw, cid = floor
    assert ids(gw.conversations(min_age_seconds=30)) == [cid["first"], cid["second"]]


def test_conversations_filtered_by_customer(floor: tuple[Gateway, dict[str, str]]) -> None:
    gw, cid = floor
    assert ids(gw.conversations(customer_id="cust-3")) == [cid["third"]]


def test_a_bad_filter_is_refused_naming_it(floor: tuple[Gateway, dict[str, str]]) -> None:
    gw, _ = floor
    with pytest.raises(BadArgumentError, match=r"state must be one of .* got 'OPEN'"):
        gw.conversations(state="OPEN")
    with pytest.raises(BadArgumentError, match="min_age_seconds must be >= 0"):
        gw.conversations(min_age_seconds=-1)


def test_agents_are_listed_with_presence_and_queues(floor: tuple[Gateway, dict[str, str]]) -> None:
    gw, _ = floor
    assert gw.agents() == [
        {"agent_id": "bob", "presence": "BUSY", "free": 0, "queues": ["sales"]},
        {"agent_id": "carol", "presence": "NOT_READY", "free": 3, "queues": ["support"]},
    ]


def test_queues_are_listed_with_their_waiting_and_oldest_wait(
    floor: tuple[Gateway, dict[str, str]],
) -> None:
    gw, _ = floor
    queues = gw.queues()
    assert (queues["support"]["waiting"], queues["support"]["oldest_wait_ms"]) == (1, 30_000)
    assert (queues["sales"]["waiting"], queues["sales"]["answered"]) == (0, 1)


def test_a_customers_rooms_hold_its_archived_and_live_conversations(
    floor: tuple[Gateway, dict[str, str]],
) -> None:
    gw, cid = floor
    gw.end_conversation(cid["first"])
    again = gw.start_session("cust-1", "WEB", "v1")
    found = gw.customer("cust-1")
    (room,) = found["rooms"]
    assert [c["id"] for c in room["conversations"]] == [cid["first"]]
    assert room["conversations"][0]["state"] == "CLOSED"
    assert ids(found["live"]) == [again.conversation_id]
    assert room["room_id"] == again.room_id


def test_an_unknown_customer_is_refused(floor: tuple[Gateway, dict[str, str]]) -> None:
    gw, _ = floor
    with pytest.raises(UnknownIdError, match="no customer cust-9"):
        gw.customer("cust-9")


def test_cx_list_conversations_filters_by_state(
    floor: tuple[Gateway, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gw, cid = floor
    monkeypatch.setattr(control, "connect", lambda config: gw)
    assert cli.main(["list", "conversations", "--state", "ACTIVE", "--json"]) == 0
    assert ids(json.loads(capsys.readouterr().out)) == [cid["first"]]


def test_cx_metrics_prints_the_figures_of_the_endpoint(
    floor: tuple[Gateway, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gw, _ = floor
    monkeypatch.setattr(control, "connect", lambda config: gw)
    assert cli.main(["metrics"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert 'cx_queue_waiting{queue="support"} 1.0' in lines
    assert 'cx_conversations{state="CREATED"} 2.0' in lines


def test_the_network_gateway_lists_conversations_by_agent(make_gateway: MakeGateway) -> None:
    def engine() -> Gateway:
        gw = make_gateway(bot={"enabled": False})
        gw.agent_login("bob")
        gw.agent_ready("bob")
        for n in range(3):
            ref = gw.start_session(f"cust-{n}", "WEB", f"v{n}")
            if n != 1:
                gw.agent_join("bob", ref.conversation_id)
        return gw

    server = serve(engine, "127.0.0.1:0", TOKEN, MAX_FRAME)
    try:
        client = RawClient(server.port)
        client.authenticate()
        listed = client.call("conversations", agent_id="bob", state="ACTIVE")
        customer = client.call("customer", customer_id="cust-1")
        client.close()
    finally:
        server.close()
    assert [c["customer_id"] for c in listed] == ["cust-0", "cust-2"]
    assert (customer["rooms"][0]["conversations"], len(customer["live"])) == ([], 1)
