"""The web gateway's access rules (runtime/web/access.py) for an agent's day: an agent token
transfers and consults on its own conversation, and cannot hand over, or act on, another
agent's conversation; refused, nothing changes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.web_support import (
    SUPERVISOR,
    Web,
    ready,
    roles,
    routed,
    token,
    web_gateway,
)

ALICE, BOB, CAROL = token("agent", "alice"), token("agent", "bob"), token("agent", "carol")


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Web]:
    with web_gateway(tmp_path) as gateway:
        yield gateway


def refused(web: Web, op: str, headers: dict[str, str], **args: Any) -> tuple[int, str]:
    response = web.client.post(f"/v1/{op}", json=args, headers=headers)
    return response.status_code, response.json()["error"]["type"]


def test_an_agent_token_transfers_its_conversation_to_a_colleague(web: Web) -> None:
    cid = routed(web, ALICE, "alice")
    ready(web, CAROL, "carol", "elsewhere")
    transfer = {"agent_id": "alice", "conversation_id": cid, "to_agent_id": "carol"}
    assert web.call("transfer", ALICE, **transfer, note="VIP") is None
    assert roles(web, cid) == {"carol": "PRIMARY"}
    events = web.call("events", CAROL, conversation_id=cid)
    (moved,) = [e for e in events if e["name"] == "CONVERSATION_TRANSFERRED"]
    assert (moved["data"]["agent_id"], moved["data"]["note"]) == ("alice", "VIP")


def test_an_agent_token_consults_a_colleague_then_hands_over(web: Web) -> None:
    cid = routed(web, ALICE, "alice")
    ready(web, CAROL, "carol", "help")
    web.call("consult", ALICE, agent_id="alice", conversation_id=cid, queue="help")
    assert roles(web, cid) == {"alice": "PRIMARY", "carol": "ASSISTANT"}
    web.call("consult_transfer", ALICE, agent_id="alice", conversation_id=cid)
    assert roles(web, cid) == {"carol": "PRIMARY"}


def test_an_agent_token_cannot_transfer_another_agents_conversation(web: Web) -> None:
    cid = routed(web, BOB, "bob")
    ready(web, ALICE, "alice", "elsewhere")
    seq = web.call("conversation", SUPERVISOR, conversation_id=cid)["seq"]
    as_bob = {"agent_id": "bob", "conversation_id": cid, "to_agent_id": "alice"}
    assert refused(web, "transfer", ALICE, **as_bob) == (403, "forbidden")
    as_alice = {"agent_id": "alice", "conversation_id": cid, "queue": "elsewhere"}
    assert refused(web, "transfer", ALICE, **as_alice) == (404, "unknown_id")
    assert web.call("conversation", SUPERVISOR, conversation_id=cid)["seq"] == seq
    assert roles(web, cid) == {"bob": "PRIMARY"}


def test_an_agent_token_cannot_conclude_another_agents_consult(web: Web) -> None:
    cid = routed(web, BOB, "bob")
    ready(web, CAROL, "carol", "help")
    web.call("consult", BOB, agent_id="bob", conversation_id=cid, to_agent_id="carol")
    as_bob = {"agent_id": "bob", "conversation_id": cid}
    assert refused(web, "consult_transfer", CAROL, **as_bob) == (403, "forbidden")
    as_carol = {"agent_id": "carol", "conversation_id": cid}
    assert refused(web, "consult_transfer", CAROL, **as_carol) == (409, "illegal_transition")
    assert roles(web, cid) == {"bob": "PRIMARY", "carol": "ASSISTANT"}
