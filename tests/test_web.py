"""The web gateway over HTTP: operations as JSON, strict bodies, typed errors, OpenAPI."""

from __future__ import annotations

import re
from pathlib import Path

from runtime.netgateway.ops import OPS, SUBSCRIPTION_OPS
from runtime.web.access import RULES
from runtime.web.tokens import AccessRole
from tests.web_support import CONNECTOR, roles, routed, token, web_gateway

ALICE = token("agent", "alice")
OPERATOR = token("operator", "ops")


def test_a_customer_and_an_agent_talk_through_http(tmp_path: Path) -> None:
    with web_gateway(tmp_path) as web:
        ref = web.call("start_session", CONNECTOR, customer_id="c1", channel="WEB", identifier="b1")
        web.call("agent_login", ALICE, agent_id="alice")
        web.call("agent_ready", ALICE, agent_id="alice")
        web.call("customer_message", CONNECTOR, channel_session_id=ref["channel_session_id"],
                 text="I want an agent")  # fmt: skip
        conversation_id = ref["conversation_id"]
        web.call("agent_message", ALICE, agent_id="alice", conversation_id=conversation_id,
                 text="hello, Alice here")  # fmt: skip
        names = [e["name"] for e in web.call("events", ALICE, conversation_id=conversation_id)]
        assert "AGENT_MESSAGE" in names
        assert web.call("conversation", OPERATOR, conversation_id=conversation_id)["state"] == "ACTIVE"
        web.call("end_conversation", OPERATOR, conversation_id=conversation_id)
        assert web.call("status", OPERATOR)["conversations"].get("ACTIVE", 0) == 0


def test_a_refusal_of_the_engine_keeps_its_type_and_status(tmp_path: Path) -> None:
    with web_gateway(tmp_path) as web:
        missing = web.client.post("/v1/conversation", json={"conversation_id": "conv-none"},
                                  headers=OPERATOR)  # fmt: skip
        ref = web.call("start_session", CONNECTOR, customer_id="c1", channel="WEB", identifier="b1")
        web.call("end_conversation", OPERATOR, conversation_id=ref["conversation_id"])
        again = web.client.post("/v1/end_conversation",
                                json={"conversation_id": ref["conversation_id"]}, headers=OPERATOR)  # fmt: skip
    assert (missing.status_code, missing.json()["error"]["type"]) == (404, "unknown_id")
    assert (again.status_code, again.json()["error"]["type"]) == (409, "illegal_transition")


def test_a_body_that_is_not_json_is_refused_400_naming_the_problem(tmp_path: Path) -> None:
    with web_gateway(tmp_path) as web:
        response = web.client.post(
            "/v1/start_session", content=b'{"customer_id": "c1",',
            headers={**CONNECTOR, "Content-Type": "application/json"},
        )  # fmt: skip
        assert response.status_code == 400
        assert response.json()["error"]["type"] == "bad_json"
        assert "not JSON" in response.json()["error"]["message"]
        assert web.call("status", OPERATOR)["conversations"] == {}


def test_a_key_given_twice_is_refused_400(tmp_path: Path) -> None:
    with web_gateway(tmp_path) as web:
        response = web.client.post(
            "/v1/status", content=b'{"a": 1, "a": 2}',
            headers={**OPERATOR, "Content-Type": "application/json"},
        )  # fmt: skip
    assert response.status_code == 400
    assert "'a' appears twice" in response.json()["error"]["message"]


def test_an_oversized_body_is_refused_400_naming_the_limit(tmp_path: Path) -> None:
    with web_gateway(tmp_path, max_body_bytes=256) as web:
        response = web.client.post(
            "/v1/start_session", headers=CONNECTOR,
            json={"customer_id": "c1", "channel": "WEB", "identifier": "b1", "data": {"x": "y" * 500}},
        )  # fmt: skip
        assert response.status_code == 400
        assert response.json()["error"]["type"] == "body_too_large"
        assert "256" in response.json()["error"]["message"]
        assert web.call("status", OPERATOR)["conversations"] == {}


def test_a_mistyped_argument_is_refused_400_naming_it(tmp_path: Path) -> None:
    with web_gateway(tmp_path) as web:
        response = web.client.post(
            "/v1/hold", headers=ALICE,
            json={"agent_id": "alice", "conversation_id": "conv-1", "seconds": "60"},
        )  # fmt: skip
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "bad_argument"
    assert "'seconds' must be a number" in response.json()["error"]["message"]


def test_an_unknown_operation_is_404(tmp_path: Path) -> None:
    with web_gateway(tmp_path) as web:
        response = web.client.post("/v1/format_disk", json={}, headers=OPERATOR)
    assert (response.status_code, response.json()["error"]["type"]) == (404, "unknown_op")


def test_openapi_describes_every_http_operation_with_its_arguments(tmp_path: Path) -> None:
    with web_gateway(tmp_path) as web:
        described = web.client.get("/openapi.json").json()
    assert set(described["paths"]) == {f"/v1/{op}" for op in RULES}
    hold = described["paths"]["/v1/hold"]["post"]["requestBody"]["content"]["application/json"]
    assert hold["schema"]["properties"]["seconds"] == {"type": "number"}
    assert hold["schema"]["required"] == ["agent_id", "conversation_id", "seconds"]


def test_every_operation_has_an_access_rule_or_a_websocket_route() -> None:
    assert set(OPS) - {"auth"} == set(RULES) | SUBSCRIPTION_OPS


def test_the_roles_table_of_the_web_docs_names_each_operation_a_role_may_call() -> None:
    text = (Path(__file__).resolve().parent.parent / "docs" / "WEB.md").read_text()
    section = text.split("## Roles", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \|[^|]*\|(.*)\|$", section, flags=re.MULTILINE)
    named = {role: set(re.findall(r"`(\w+)`", may)) & set(RULES) for role, may in rows}
    named["supervisor"] |= named["agent"]  # "all an agent may, as itself"
    offered = {r.value: {op for op, by in RULES.items() if r in by} - {"ping"} for r in AccessRole}
    assert named == offered


def test_the_web_chat_and_the_agent_desk_are_served(tmp_path: Path) -> None:
    with web_gateway(tmp_path) as web:
        chat = web.client.get("/pages/chat.html")
        desk = web.client.get("/pages/desk.html")
        script = web.client.get("/pages/cx.js")
        home = web.client.get("/", follow_redirects=False)
    assert (chat.status_code, desk.status_code, script.status_code) == (200, 200, 200)
    assert "start_session" in chat.text and "agent_login" in desk.text
    assert home.headers["location"] == "/pages/chat.html"


SUE = token("supervisor", "sue")


def test_a_supervisor_barges_in_over_http_as_an_assistant(tmp_path: Path) -> None:
    with web_gateway(tmp_path) as web:
        conversation_id = routed(web, ALICE, "alice")
        web.call("agent_login", SUE, agent_id="sue")
        web.call("agent_join", SUE, agent_id="sue", conversation_id=conversation_id, role="WHISPER")
        web.call("barge_in", SUE, agent_id="sue", conversation_id=conversation_id)
        assert roles(web, conversation_id, OPERATOR) == {"alice": "PRIMARY", "sue": "ASSISTANT"}


def test_an_operator_reads_a_closed_rooms_history_over_http(tmp_path: Path) -> None:
    with web_gateway(tmp_path) as web:
        conversation_id = routed(web, ALICE, "alice")
        web.call("agent_message", ALICE, agent_id="alice", conversation_id=conversation_id,
                 text="hello, Alice here")  # fmt: skip
        room_id = web.call("conversation", OPERATOR, conversation_id=conversation_id)["room_id"]
        web.call("end_conversation", OPERATOR, conversation_id=conversation_id)
        history = web.call("history", OPERATOR, room_id=room_id)
    [archived] = history
    assert (archived["id"], archived["state"]) == (conversation_id, "CLOSED")
    assert "AGENT_MESSAGE" in [event["name"] for event in archived["events"]]


def test_an_agent_holds_resumes_leaves_and_wraps_up_over_http(tmp_path: Path) -> None:
    with web_gateway(tmp_path, {"timers": {"wrap_up": {"enabled": True}}}) as web:
        conversation_id = routed(web, ALICE, "alice")

        def state() -> str:
            return str(web.call("conversation", ALICE, conversation_id=conversation_id)["state"])

        web.call("hold", ALICE, agent_id="alice", conversation_id=conversation_id, seconds=60)
        held = state()
        web.call("resume", ALICE, agent_id="alice", conversation_id=conversation_id)
        resumed = state()
        web.call("agent_leave", ALICE, agent_id="alice", conversation_id=conversation_id)
        left = roles(web, conversation_id, OPERATOR)
        web.call("apply_wrap_up", ALICE, agent_id="alice", conversation_id=conversation_id,
                 codes=["SOLVED"], note="refund sent")  # fmt: skip
        events = web.call("events", ALICE, conversation_id=conversation_id)
    assert (held, resumed) == ("ON_HOLD", "ACTIVE")
    [wrap_up] = [e["data"] for e in events if e["name"] == "WRAPUP_APPLIED"]
    assert (wrap_up["codes"], left) == (["SOLVED"], {"alice": "WRAP_UP"})
