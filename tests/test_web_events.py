"""Pushed events over the web gateway's WebSockets: resume from a seq with no gap, access, the
end of a session's conversation (its final event, then a normal close)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from tests.conftest import TEST_TIME_LIMIT_S, watchdog
from tests.web_support import Web, token, web_gateway

CONNECTOR = token("connector", "webchat", "WEB")
ALICE = token("agent", "alice")


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Web]:
    with watchdog(TEST_TIME_LIMIT_S, "the test"), web_gateway(tmp_path) as gateway:
        yield gateway


def until(ws: WebSocketTestSession, name: str) -> list[dict[str, Any]]:
    """The events received up to and including the first one named ``name``."""
    events: list[dict[str, Any]] = []
    while not events or events[-1]["name"] != name:
        frame = ws.receive_json()
        if "event" in frame:
            events.append(frame["event"])
    return events


def subscribed(ws: WebSocketTestSession) -> dict[str, Any]:
    """The frame that says the socket's subscription holds (live events follow)."""
    frame: dict[str, Any] = ws.receive_json()
    assert "subscribed" in frame, frame
    return frame


def test_a_socket_resumes_from_its_last_seq_without_a_gap(web: Web) -> None:
    ref = web.call("start_session", CONNECTOR, customer_id="c1", channel="WEB", identifier="b1")
    session, conversation = ref["channel_session_id"], ref["conversation_id"]
    path = f"/v1/sessions/{session}/events"
    with web.client.websocket_connect(f"{path}?after_seq=0", headers=CONNECTOR) as ws:
        subscribed(ws)
        web.call("customer_message", CONNECTOR, channel_session_id=session, text="first")
        before = until(ws, "CUSTOMER_MESSAGE")
    last = before[-1]["seq"]
    for text in ("second", "third"):  # while no socket is open
        web.call("customer_message", CONNECTOR, channel_session_id=session, text=text)
    with web.client.websocket_connect(f"{path}?after_seq={last}", headers=CONNECTOR) as ws:
        after = until(ws, "CUSTOMER_MESSAGE")
        after += until(ws, "CUSTOMER_MESSAGE")
    seqs = [e["seq"] for e in before + after]
    assert seqs == list(range(1, len(seqs) + 1))
    stored = web.call("events", CONNECTOR, conversation_id=conversation)
    assert [e["seq"] for e in stored][: len(seqs)] == seqs


def test_a_second_socket_gets_the_events_the_first_already_had(web: Web) -> None:
    ref = web.call("start_session", CONNECTOR, customer_id="c1", channel="WEB", identifier="b1")
    path = f"/v1/sessions/{ref['channel_session_id']}/events?after_seq=0"
    with web.client.websocket_connect(path, headers=CONNECTOR) as first:
        subscribed(first)
        web.call("customer_message", CONNECTOR, channel_session_id=ref["channel_session_id"],
                 text="hello")  # fmt: skip
        had = until(first, "CUSTOMER_MESSAGE")
        with web.client.websocket_connect(path, headers=CONNECTOR) as second:
            again = until(second, "CUSTOMER_MESSAGE")
    assert [e["seq"] for e in again] == [e["seq"] for e in had]


def test_a_browser_sends_its_token_as_the_first_frame(web: Web) -> None:
    ref = web.call("start_session", CONNECTOR, customer_id="c1", channel="WEB", identifier="b1")
    path = f"/v1/sessions/{ref['channel_session_id']}/events?after_seq=0"
    with web.client.websocket_connect(path) as ws:
        ws.send_json({"token": CONNECTOR["Authorization"][7:]})
        assert subscribed(ws)["conversation_id"] == ref["conversation_id"]
        assert ws.receive_json()["event"]["seq"] == 1


def test_a_socket_with_a_wrong_token_is_refused_before_it_opens(web: Web) -> None:
    ref = web.call("start_session", CONNECTOR, customer_id="c1", channel="WEB", identifier="b1")
    path = f"/v1/sessions/{ref['channel_session_id']}/events"
    forged = {"Authorization": "Bearer forged"}
    with pytest.raises(WebSocketDisconnect) as refused, web.client.websocket_connect(path, headers=forged):
        pass
    assert refused.value.code == 1008


def test_a_connector_of_another_channel_cannot_watch_a_session(web: Web) -> None:
    ref = web.call("start_session", CONNECTOR, customer_id="c1", channel="WEB", identifier="b1")
    path = f"/v1/sessions/{ref['channel_session_id']}/events"
    with web.client.websocket_connect(path, headers=token("connector", "sms", "SMS")) as ws:
        refused = ws.receive_json()
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert refused["error"]["type"] == "forbidden"
    assert closed.value.code == 1008


def test_an_agent_cannot_watch_another_agents_events(web: Web) -> None:
    with web.client.websocket_connect("/v1/agents/bob/events", headers=ALICE) as ws:
        assert ws.receive_json()["error"]["type"] == "forbidden"


def test_an_agent_socket_gets_the_events_of_its_conversations(web: Web) -> None:
    web.call("agent_login", ALICE, agent_id="alice")
    with web.client.websocket_connect("/v1/agents/alice/events", headers=ALICE) as ws:
        subscribed(ws)
        web.call("agent_ready", ALICE, agent_id="alice")
        ref = web.call("start_session", CONNECTOR, customer_id="c1", channel="WEB", identifier="b1")
        web.call("customer_message", CONNECTOR, channel_session_id=ref["channel_session_id"],
                 text="I want an agent")  # fmt: skip
        frame = ws.receive_json()
        while frame["event"]["name"] != "AGENT_SUBSCRIBED":  # the agent's own events come first
            frame = ws.receive_json()
    assert (frame["subscription"], frame["conversation_id"]) == ("agent:alice", ref["conversation_id"])


def test_an_agent_socket_marks_the_last_event_of_a_closed_conversation_final(web: Web) -> None:
    web.call("agent_login", ALICE, agent_id="alice")
    with web.client.websocket_connect("/v1/agents/alice/events", headers=ALICE) as ws:
        subscribed(ws)
        web.call("agent_ready", ALICE, agent_id="alice")
        ref = web.call("start_session", CONNECTOR, customer_id="c1", channel="WEB", identifier="b1")
        web.call("customer_message", CONNECTOR, channel_session_id=ref["channel_session_id"],
                 text="I want an agent")  # fmt: skip
        until(ws, "AGENT_SUBSCRIBED")
        web.call("end_conversation", token("operator", "ops"), conversation_id=ref["conversation_id"])
        frames = [ws.receive_json()]
        while not frames[-1].get("final"):
            frames.append(ws.receive_json())
    stored = web.call("events", ALICE, conversation_id=ref["conversation_id"])
    assert [f.get("final", False) for f in frames].count(True) == 1
    assert frames[-1]["event"]["seq"] == stored[-1]["seq"]


def received_until_closed(ws: WebSocketTestSession) -> tuple[list[dict[str, Any]], int]:
    """The frames a socket is sent, and the code it is closed with."""
    frames: list[dict[str, Any]] = []
    with pytest.raises(WebSocketDisconnect) as closed:
        while True:
            frames.append(ws.receive_json())
    return frames, closed.value.code


def ended(web: Web, conversation_id: str) -> None:
    """An operator ends the conversation; back once it is CLOSED."""
    web.call("end_conversation", token("operator", "ops"), conversation_id=conversation_id)
    while web.call("conversation", CONNECTOR, conversation_id=conversation_id)["state"] != "CLOSED":
        pass  # the archive's commit closes it (the watchdog bounds the wait)


def test_a_session_socket_marks_the_closing_event_final_and_closes(web: Web) -> None:
    ref = web.call("start_session", CONNECTOR, customer_id="c1", channel="WEB", identifier="b1")
    subscription = f"session:{ref['channel_session_id']}"
    hub = web.client.app.state.web.hub  # type: ignore[attr-defined]
    path = f"/v1/sessions/{ref['channel_session_id']}/events?after_seq=0"
    with web.client.websocket_connect(path, headers=CONNECTOR) as ws:
        subscribed(ws)
        web.call("end_conversation", token("operator", "ops"), conversation_id=ref["conversation_id"])
        frames, code = received_until_closed(ws)
    stored = web.call("events", CONNECTOR, conversation_id=ref["conversation_id"])
    assert [f["event"]["seq"] for f in frames] == [e["seq"] for e in stored]
    assert [f.get("final", False) for f in frames] == [False] * (len(frames) - 1) + [True]
    assert (code, hub.holders(subscription)) == (1000, 0)


def test_a_socket_for_an_ended_conversation_gets_the_rest_and_closes(web: Web) -> None:
    ref = web.call("start_session", CONNECTOR, customer_id="c1", channel="WEB", identifier="b1")
    web.call("customer_message", CONNECTOR, channel_session_id=ref["channel_session_id"], text="hi")
    ended(web, ref["conversation_id"])
    path = f"/v1/sessions/{ref['channel_session_id']}/events?after_seq=3"
    with web.client.websocket_connect(path, headers=CONNECTOR) as ws:
        frames, code = received_until_closed(ws)
    stored = web.call("events", CONNECTOR, conversation_id=ref["conversation_id"])
    assert [f["event"]["seq"] for f in frames] == [e["seq"] for e in stored if e["seq"] > 3]
    assert [f.get("final", False) for f in frames] == [False] * (len(frames) - 1) + [True]
    assert code == 1000


def test_a_socket_for_an_ended_conversation_it_has_seen_to_the_end_is_closed_at_once(
    web: Web,
) -> None:
    ref = web.call("start_session", CONNECTOR, customer_id="c1", channel="WEB", identifier="b1")
    ended(web, ref["conversation_id"])
    last = web.call("events", CONNECTOR, conversation_id=ref["conversation_id"])[-1]["seq"]
    path = f"/v1/sessions/{ref['channel_session_id']}/events?after_seq={last}"
    with web.client.websocket_connect(path, headers=CONNECTOR) as ws:
        assert received_until_closed(ws) == ([], 1000)


def test_a_socket_is_closed_when_its_token_expires(tmp_path: Path) -> None:
    # the socket's clock is two days ahead: the token (valid when checked) has run out since
    with web_gateway(tmp_path, clock=lambda: time.time() + 2 * 86_400) as web:
        _closed_when_its_token_expires(web)


def _closed_when_its_token_expires(web: Web) -> None:
    ref = web.call("start_session", CONNECTOR, customer_id="c1", channel="WEB", identifier="b1")
    path = f"/v1/sessions/{ref['channel_session_id']}/events"
    with web.client.websocket_connect(path, headers=CONNECTOR) as ws:
        frame = ws.receive_json()
        while "error" not in frame:
            frame = ws.receive_json()
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert frame["error"]["type"] == "auth" and "expired" in frame["error"]["message"]
    assert closed.value.code == 1008


def test_the_last_socket_of_a_session_lets_go_of_its_engine_subscription(web: Web) -> None:
    ref = web.call("start_session", CONNECTOR, customer_id="c1", channel="WEB", identifier="b1")
    subscription = f"session:{ref['channel_session_id']}"
    hub = web.client.app.state.web.hub  # type: ignore[attr-defined]
    path = f"/v1/sessions/{ref['channel_session_id']}/events"
    with web.client.websocket_connect(path, headers=CONNECTOR) as first:
        subscribed(first)
        with web.client.websocket_connect(path, headers=CONNECTOR) as second:
            subscribed(second)
            assert hub.holders(subscription) == 2
        while hub.holders(subscription) != 1:  # the server notices the close (the watchdog bounds it)
            web.call("ping", CONNECTOR)
    while hub.holders(subscription) != 0:
        web.call("ping", CONNECTOR)


def test_sockets_waiting_for_their_token_are_bounded(tmp_path: Path) -> None:
    with watchdog(TEST_TIME_LIMIT_S, "the test"), web_gateway(tmp_path, max_awaiting_token=0) as gateway:
        gateway.call("agent_login", ALICE, agent_id="alice")
        path = "/v1/agents/alice/events"
        with pytest.raises(WebSocketDisconnect) as refused, gateway.client.websocket_connect(path):
            pass
        with gateway.client.websocket_connect(path, headers=ALICE) as ws:
            assert subscribed(ws)["subscribed"] == "agent:alice"
    assert refused.value.code == 1013
