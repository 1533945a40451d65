"""Consults through the embedded gateway (virtual clock) and once through the network
gateway: an agent asks a named agent or a queue for help, then hands over (consult_transfer),
keeps both (conference) or lets the consulted agent go (end_consult) (docs/STATES.md,
"Consult")."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from domain.commands import ConcludeConsult
from domain.enums import ConsultOutcome
from infra.journal_records import command_record, parse_command
from runtime.gateway import (
    BadArgumentError,
    Gateway,
    GatewayError,
    IllegalTransitionError,
    UnknownIdError,
)
from runtime.netgateway import serve
from tests.conftest import MakeGateway
from tests.multiproc_support import eventually, running_system, write_config
from tests.test_netgateway import MAX_FRAME, TOKEN, RawClient

OFFERS = {"routing": {"auto_accept": False, "accept_timeout_seconds": 20, "request_ttl_seconds": 50}}


def ready(gw: Gateway, agent_id: str, **login: Any) -> None:
    gw.agent_login(agent_id, **login)
    gw.agent_ready(agent_id)


def routed_to_bob(gw: Gateway, *, offered: bool = False) -> str:
    """A conversation whose PRIMARY is bob, with nobody else READY (``offered``: bob accepts
    the offer)."""
    gw.agent_login("bob")
    gw.agent_ready("bob")
    cid = gw.start_session("cust-1", "WEB", "v").conversation_id
    gw.request_agent(cid)
    if offered:
        gw.agent_join("bob", cid)
    assert roles(gw, cid) == {"bob": "PRIMARY"}
    return cid


def roles(gw: Gateway, conversation_id: str) -> dict[str, str]:
    return {
        p["id"]: p["role"]
        for p in gw.conversation(conversation_id)["participants"]
        if p["type"] == "AGENT" and p["state"] == "SUBSCRIBED"
    }


def since(gw: Gateway, conversation_id: str, seq: int) -> list[dict[str, Any]]:
    return gw.events(conversation_id, after_seq=seq)


def names(events: list[dict[str, Any]]) -> list[str]:
    return [e["name"] for e in events]


def seq_of(gw: Gateway, conversation_id: str) -> int:
    return int(gw.conversation(conversation_id)["seq"])


def test_a_consulted_agent_joins_as_assistant_and_a_conference_keeps_both(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway() as gw:
        cid = routed_to_bob(gw)
        gw.agent_login("carol", queues=["billing"])
        gw.agent_message("bob", cid, "One moment, please.")  # the customer's timer runs
        seq = seq_of(gw, cid)
        gw.consult("bob", cid, to_agent_id="carol", note="refund rules?")
        asked = since(gw, cid, seq)
        assert names(asked) == ["CONSULT_REQUESTED", "AGENT_REQUESTED"]  # timers untouched
        assert asked[0]["data"] == {
            "agent_id": "bob",
            "queue": None,
            "to_agent_id": "carol",
            "note": "refund rules?",
        }
        gw.agent_ready("carol")
        assert roles(gw, cid) == {"bob": "PRIMARY", "carol": "ASSISTANT"}
        assert gw.conversation(cid)["state"] == "ACTIVE"

        seq = seq_of(gw, cid)
        gw.conference("bob", cid)
        (concluded,) = since(gw, cid, seq)
        assert concluded["name"] == "CONSULT_CONCLUDED"
        assert concluded["data"] == {
            "agent_id": "bob",
            "consulted_agent_id": "carol",
            "outcome": "CONFERENCE",
        }
        assert roles(gw, cid) == {"bob": "PRIMARY", "carol": "ASSISTANT"}


def test_a_consult_transfer_during_hold_makes_the_consulted_agent_primary(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway() as gw:
        cid = routed_to_bob(gw)
        gw.hold("bob", cid, 60)
        ready(gw, "carol")
        gw.consult("bob", cid, queue="default")
        assert roles(gw, cid) == {"bob": "PRIMARY", "carol": "ASSISTANT"}
        assert gw.conversation(cid)["state"] == "ON_HOLD"
        seq = seq_of(gw, cid)
        gw.consult_transfer("bob", cid)
        handed = since(gw, cid, seq)
        (left,) = [e for e in handed if e["name"] == "AGENT_UNSUBSCRIBED"]
        assert left["data"] == {"agent_id": "bob", "reason": "CONSULT_TRANSFER"}
        assert roles(gw, cid) == {"carol": "PRIMARY"}
        assert gw.conversation(cid)["state"] == "ON_HOLD"
        gw.resume("carol", cid)
        assert gw.conversation(cid)["state"] == "ACTIVE"


def test_ending_a_consult_lets_the_consulted_agent_go(make_gateway: MakeGateway) -> None:
    with make_gateway() as gw:
        cid = routed_to_bob(gw)
        ready(gw, "carol")
        gw.consult("bob", cid, to_agent_id="carol")
        seq = seq_of(gw, cid)
        gw.end_consult("bob", cid)
        (left,) = [e for e in since(gw, cid, seq) if e["name"] == "AGENT_UNSUBSCRIBED"]
        assert left["data"] == {"agent_id": "carol", "reason": "CONSULT_ENDED"}
        assert roles(gw, cid) == {"bob": "PRIMARY"}
        assert gw.conversation(cid)["state"] == "ACTIVE"


def test_a_consult_refused_then_retried(make_gateway: MakeGateway) -> None:
    with make_gateway(**OFFERS) as gw:
        cid = routed_to_bob(gw, offered=True)
        ready(gw, "carol")
        gw.subscribe_agent("carol")
        gw.pushed()
        gw.consult("bob", cid, to_agent_id="carol")
        (offer,) = [p.event for p in gw.pushed() if p.subscription == "agent:carol"]
        assert offer["name"] == "AGENT_OFFERED" and offer["data"]["consult"] is True
        seq = seq_of(gw, cid)
        gw.advance(50)  # carol lets the offer lapse (RONA), then nobody takes it
        lapsed = since(gw, cid, seq)
        assert names(lapsed) == ["RONA", "NO_AGENT_AVAILABLE"]
        assert all(e["data"]["consult"] is True for e in lapsed)
        assert roles(gw, cid) == {"bob": "PRIMARY"}
        assert gw.conversation(cid)["state"] == "ACTIVE"

        gw.agent_ready("carol")
        gw.consult("bob", cid, to_agent_id="carol")
        gw.agent_join("carol", cid)
        assert roles(gw, cid) == {"bob": "PRIMARY", "carol": "ASSISTANT"}


def test_the_consulting_agent_leaving_withdraws_its_pending_consult(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway() as gw:
        cid = routed_to_bob(gw)
        gw.consult("bob", cid, queue="billing")
        assert gw.status()["queues"].get("billing") == 1
        gw.agent_leave("bob", cid)
        assert gw.status()["queues"].get("billing", 0) == 0


def _unchanged(gw: Gateway, cid: str, error: type[GatewayError], call: Callable[[], None]) -> None:
    before, events = gw.conversation(cid), gw.events(cid)
    with pytest.raises(error):
        call()
    assert gw.conversation(cid) == before and gw.events(cid) == events


def test_bad_consults_are_refused_and_change_nothing(make_gateway: MakeGateway) -> None:
    with make_gateway() as gw:
        cid = routed_to_bob(gw)
        refusals: list[tuple[type[GatewayError], Callable[[], None]]] = [
            (IllegalTransitionError, lambda: gw.consult_transfer("bob", cid)),
            (IllegalTransitionError, lambda: gw.conference("bob", cid)),
            (IllegalTransitionError, lambda: gw.end_consult("bob", cid)),
            (BadArgumentError, lambda: gw.consult("bob", cid)),
            (BadArgumentError, lambda: gw.consult("bob", cid, queue="q", to_agent_id="c")),
            (BadArgumentError, lambda: gw.consult("bob", cid, to_agent_id="bob")),
            (BadArgumentError, lambda: gw.end_consult("", cid)),
            (UnknownIdError, lambda: gw.consult("nobody", cid, queue="billing")),
        ]
        for error, call in refusals:
            _unchanged(gw, cid, error, call)
        gw.consult("bob", cid, queue="billing")  # nobody there: the request waits
        pending: list[tuple[type[GatewayError], Callable[[], None]]] = [
            (IllegalTransitionError, lambda: gw.consult("bob", cid, queue="billing")),
            (IllegalTransitionError, lambda: gw.consult_transfer("bob", cid)),
            (IllegalTransitionError, lambda: gw.transfer("bob", cid, queue="default")),
        ]
        for error, call in pending:
            _unchanged(gw, cid, error, call)


def test_only_the_consulting_agent_concludes_its_consult(make_gateway: MakeGateway) -> None:
    with make_gateway() as gw:
        cid = routed_to_bob(gw)
        ready(gw, "carol")
        gw.consult("bob", cid, to_agent_id="carol")
        _unchanged(gw, cid, IllegalTransitionError, lambda: gw.consult_transfer("carol", cid))


def test_a_consult_through_the_network_gateway(make_gateway: MakeGateway) -> None:
    server = serve(lambda: make_gateway(seed=1), "127.0.0.1:0", TOKEN, MAX_FRAME)
    client = RawClient(server.port)
    try:
        client.authenticate()
        for agent_id in ("bob", "carol"):
            client.call("agent_login", agent_id=agent_id)
        client.call("agent_ready", agent_id="bob")
        ref = client.call("start_session", customer_id="c", channel="WEB", identifier="v")
        cid = ref["conversation_id"]
        client.call("request_agent", conversation_id=cid)
        client.call("agent_ready", agent_id="carol")
        client.call("consult", agent_id="bob", conversation_id=cid, to_agent_id="carol")
        assert client.call("consult_transfer", agent_id="bob", conversation_id=cid) is None
        snapshot = client.call("conversation", conversation_id=cid)
        agents = {p["id"]: (p["state"], p["role"]) for p in snapshot["participants"]}
        assert agents["carol"] == ("SUBSCRIBED", "PRIMARY")
        assert agents["bob"][0] == "UNSUBSCRIBED"
    finally:
        client.close()
        server.close()


def test_a_concluded_consult_reads_back_from_its_journal_record() -> None:
    command = ConcludeConsult("bob", ConsultOutcome.TRANSFER)
    parsed = parse_command(command_record("conv-1", command, 9, []))
    assert parsed.command == command
    assert parsed.command.outcome is ConsultOutcome.TRANSFER


@pytest.mark.multiproc
def test_a_consult_then_a_transfer_on_a_running_system(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    with running_system(config), Gateway.connect(config) as gw:
        for agent_id in ("bob", "carol"):
            gw.agent_login(agent_id)
        gw.agent_ready("bob")
        cid = gw.start_session("cust-1", "WEB", "v").conversation_id
        gw.request_agent(cid)
        eventually(lambda: roles(gw, cid) == {"bob": "PRIMARY"})
        gw.agent_ready("carol")
        gw.consult("bob", cid, to_agent_id="carol")
        eventually(lambda: roles(gw, cid) == {"bob": "PRIMARY", "carol": "ASSISTANT"})
        gw.consult_transfer("bob", cid)
        assert roles(gw, cid) == {"carol": "PRIMARY"}
        gw.transfer("carol", cid, queue="billing")
        assert roles(gw, cid) == {} and gw.conversation(cid)["state"] == "INACTIVE"
