"""Per-user access to the web gateway: tokens checked first, each role only what it may."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import structlog

from domain.errors import AuthError, BadArgumentError
from runtime.web.tokens import AccessRole, issue, verify
from tests.web_support import KEY, token, web_gateway

WEB_CONNECTOR = token("connector", "webchat", "WEB")
SMS_CONNECTOR = token("connector", "sms-provider", "SMS")
ALICE = token("agent", "alice")
OPERATOR = token("operator", "ops")


def test_a_token_carries_its_role_subject_and_channels() -> None:
    claims = verify(KEY, issue(KEY, "connector", "webchat", ttl_s=60, channels=["web", "SMS"]))
    assert (claims.role, claims.subject) == (AccessRole.CONNECTOR, "webchat")
    assert {c.value for c in claims.channels} == {"WEB", "SMS"}


def test_an_expired_token_is_refused_naming_the_expiry() -> None:
    old = issue(KEY, "agent", "alice", ttl_s=60, now=1_000_000)
    with pytest.raises(AuthError, match="expired"):
        verify(KEY, old)


def test_a_token_signed_with_another_key_is_refused() -> None:
    forged = issue("another-key-" + "x" * 40, "operator", "mallory", ttl_s=60)
    with pytest.raises(AuthError, match="signature"):
        verify(KEY, forged)


def test_a_connector_token_must_name_channels() -> None:
    with pytest.raises(BadArgumentError, match="channels"):
        issue(KEY, "connector", "webchat", ttl_s=60)


def test_a_request_without_a_token_is_401_before_its_body_is_read(tmp_path: Path) -> None:
    with web_gateway(tmp_path) as web:
        response = web.client.post("/v1/start_session", content=b"{not json",
                                   headers={"Content-Type": "application/json"})  # fmt: skip
        assert (response.status_code, response.json()["error"]["type"]) == (401, "auth")
        assert web.call("status", OPERATOR)["conversations"] == {}


def test_an_agent_token_cannot_act_as_another_agent(tmp_path: Path) -> None:
    with web_gateway(tmp_path) as web:
        response = web.client.post("/v1/agent_login", json={"agent_id": "bob"}, headers=ALICE)
        assert (response.status_code, response.json()["error"]["type"]) == (403, "forbidden")
        assert "only as agent 'alice'" in response.json()["error"]["message"]
        assert sum(web.call("status", OPERATOR)["agents"].values()) == 0


def test_a_connector_token_cannot_read_another_channels_conversation(tmp_path: Path) -> None:
    with web_gateway(tmp_path) as web:
        ref = web.call("start_session", WEB_CONNECTOR, customer_id="c1", channel="WEB",
                       identifier="b1")  # fmt: skip
        read = web.client.post("/v1/events", json={"conversation_id": ref["conversation_id"]},
                               headers=SMS_CONNECTOR)  # fmt: skip
        write = web.client.post("/v1/customer_message", headers=SMS_CONNECTOR,
                                json={"channel_session_id": ref["channel_session_id"], "text": "hi"})  # fmt: skip
        own = web.call("events", WEB_CONNECTOR, conversation_id=ref["conversation_id"])
    assert read.status_code == 403 and write.status_code == 403
    assert "CUSTOMER_MESSAGE" not in [e["name"] for e in own]


def test_a_connector_cannot_start_a_session_on_another_channel(tmp_path: Path) -> None:
    with web_gateway(tmp_path) as web:
        response = web.client.post("/v1/start_session", headers=SMS_CONNECTOR,
                                   json={"customer_id": "c1", "channel": "WEB", "identifier": "b1"})  # fmt: skip
        assert response.status_code == 403
        assert web.call("status", OPERATOR)["conversations"] == {}


def test_an_agent_cannot_read_a_conversation_it_takes_no_part_in(tmp_path: Path) -> None:
    with web_gateway(tmp_path) as web:
        ref = web.call("start_session", WEB_CONNECTOR, customer_id="c1", channel="WEB",
                       identifier="b1")  # fmt: skip
        response = web.client.post("/v1/conversation", headers=ALICE,
                                   json={"conversation_id": ref["conversation_id"]})  # fmt: skip
    assert response.status_code == 403


def test_an_agent_reads_the_events_of_a_conversation_offered_to_it(tmp_path: Path) -> None:
    offers = {"routing": {"auto_accept": False, "accept_timeout_seconds": 60}}
    with web_gateway(tmp_path, offers) as web:
        web.call("agent_login", ALICE, agent_id="alice")
        web.call("agent_ready", ALICE, agent_id="alice")
        ref = web.call("start_session", WEB_CONNECTOR, customer_id="c1", channel="WEB",
                       identifier="b1")  # fmt: skip
        web.call("customer_message", WEB_CONNECTOR, channel_session_id=ref["channel_session_id"],
                 text="I want an agent")  # fmt: skip
        events = web.call("events", ALICE, conversation_id=ref["conversation_id"])
    offered = [e["data"]["agent_id"] for e in events if e["name"] == "AGENT_OFFERED"]
    assert offered == ["alice"]


def test_only_a_supervisor_may_join_as_a_silent_monitor(tmp_path: Path) -> None:
    supervisor = token("supervisor", "sam")
    with web_gateway(tmp_path) as web:
        ref = web.call("start_session", WEB_CONNECTOR, customer_id="c1", channel="WEB",
                       identifier="b1")  # fmt: skip
        join = {"conversation_id": ref["conversation_id"], "role": "SILENT_MONITOR"}
        web.call("agent_login", ALICE, agent_id="alice")
        web.call("agent_login", supervisor, agent_id="sam")
        as_agent = web.client.post("/v1/agent_join", json={**join, "agent_id": "alice"}, headers=ALICE)
        web.call("agent_join", supervisor, agent_id="sam", **join)
        participants = web.call("conversation", supervisor, conversation_id=ref["conversation_id"])
    assert as_agent.status_code == 403
    assert [(p["id"], p["role"]) for p in participants["participants"] if p["id"] in ("alice", "sam")] == [
        ("sam", "SILENT_MONITOR")
    ]


def test_an_operator_cannot_write_as_a_customer(tmp_path: Path) -> None:
    with web_gateway(tmp_path) as web:
        ref = web.call("start_session", WEB_CONNECTOR, customer_id="c1", channel="WEB",
                       identifier="b1")  # fmt: skip
        response = web.client.post("/v1/customer_message", headers=OPERATOR,
                                   json={"channel_session_id": ref["channel_session_id"], "text": "x"})  # fmt: skip
    assert response.status_code == 403


def test_no_token_or_message_text_reaches_the_logs(tmp_path: Path) -> None:
    secret_text = "my card number is 4111"
    with web_gateway(tmp_path) as web, structlog.testing.capture_logs() as logs:
        ref = web.call("start_session", WEB_CONNECTOR, customer_id="c1", channel="WEB",
                       identifier="b1")  # fmt: skip
        web.client.post("/v1/customer_message", headers=SMS_CONNECTOR,
                        json={"channel_session_id": ref["channel_session_id"], "text": secret_text})  # fmt: skip
        web.call("customer_message", WEB_CONNECTOR, channel_session_id=ref["channel_session_id"],
                 text=secret_text)  # fmt: skip
    assert any(entry.get("event") == "request refused" for entry in logs)
    written = repr(logs)
    for secret in (secret_text, SMS_CONNECTOR["Authorization"][7:], WEB_CONNECTOR["Authorization"][7:]):
        assert secret not in written


SUPERVISOR = token("supervisor", "sam")


def team_room(web: Any, *members: str) -> str:
    """A TEAM room of ``members`` with one message from the first; its id."""
    room = web.call("create_room", SUPERVISOR, kind="TEAM", members=list(members))
    first = token("agent", members[0])
    web.call("room_message", first, agent_id=members[0], room_id=room["room_id"], text="standup at 9")
    return str(room["room_id"])


def test_an_agent_cannot_read_a_team_room_it_is_not_in(tmp_path: Path) -> None:
    with web_gateway(tmp_path) as web:
        room_id = team_room(web, "bob", "carol")
        response = web.client.post("/v1/room_history", json={"room_id": room_id}, headers=ALICE)
    assert (response.status_code, response.json()["error"]["type"]) == (403, "forbidden")
    assert "not a member of room" in response.json()["error"]["message"]
    assert "standup" not in response.text


def test_an_agent_reads_the_history_of_a_team_room_it_is_in(tmp_path: Path) -> None:
    with web_gateway(tmp_path) as web:
        room_id = team_room(web, "bob", "alice")
        history = web.call("room_history", ALICE, room_id=room_id)
    assert [(m["agent_id"], m["text"]) for m in history] == [("bob", "standup at 9")]


def test_an_agent_cannot_list_the_members_of_a_room_it_is_not_in(tmp_path: Path) -> None:
    with web_gateway(tmp_path) as web:
        room_id = team_room(web, "bob", "carol")
        response = web.client.post("/v1/room_members", json={"room_id": room_id}, headers=ALICE)
    assert response.status_code == 403
    assert "carol" not in response.text


def test_an_advisor_reads_the_members_of_its_customers_private_room(tmp_path: Path) -> None:
    with web_gateway(tmp_path) as web:
        room = web.call("create_room", SUPERVISOR, kind="PRIVATE", members=["alice", "bob"],
                        customer_id="c1")  # fmt: skip
        members = web.call("room_members", ALICE, room_id=room["room_id"])
    assert members == ["alice", "bob"]


def test_an_agent_cannot_list_a_customers_rooms(tmp_path: Path) -> None:
    with web_gateway(tmp_path) as web:
        web.call("create_room", SUPERVISOR, kind="PRIVATE", members=["bob"], customer_id="c1")
        response = web.client.post("/v1/rooms", json={"customer_id": "c1"}, headers=ALICE)
        as_operator = web.call("rooms", OPERATOR, customer_id="c1")
    assert response.status_code == 403
    assert [r["members"] for r in as_operator] == [["bob"]]


def test_an_agent_lists_only_its_own_rooms(tmp_path: Path) -> None:
    with web_gateway(tmp_path) as web:
        room_id = team_room(web, "alice", "bob")
        own = web.call("rooms", ALICE, agent_id="alice")
        response = web.client.post("/v1/rooms", json={"agent_id": "bob"}, headers=ALICE)
    assert [r["room_id"] for r in own] == [room_id]
    assert response.status_code == 403
