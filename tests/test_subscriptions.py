"""Pushed events: a channel gateway subscribed to a session, an agent desk to an agent."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from runtime.gateway import BadArgumentError, Gateway, IllegalTransitionError, UnknownIdError


def test_session_subscription_replays_then_pushes_in_order(
    make_gateway: Callable[..., Gateway],
) -> None:
    gw = make_gateway()
    ref = gw.start_session("cust-1", "WEB", "v")
    current = gw.subscribe_session(ref.channel_session_id, after_seq=2)
    assert current == len(gw.events(ref.conversation_id))
    gw.customer_message(ref.channel_session_id, "hello")
    pushed = gw.pushed()
    assert {p.subscription for p in pushed} == {f"session:{ref.channel_session_id}"}
    assert {p.conversation_id for p in pushed} == {ref.conversation_id}
    # everything after seq 2, exactly once, in order: the replay and the live events meet
    assert [p.event for p in pushed] == gw.events(ref.conversation_id, after_seq=2)
    assert gw.pushed() == []


def test_a_resubscribing_gateway_resumes_without_a_gap(
    make_gateway: Callable[..., Gateway],
) -> None:
    gw = make_gateway()
    ref = gw.start_session("cust-1", "WEB", "v")
    gw.subscribe_session(ref.channel_session_id)
    seen = [p.event["seq"] for p in gw.pushed()]
    gw.unsubscribe(f"session:{ref.channel_session_id}")
    gw.customer_message(ref.channel_session_id, "while away")
    assert gw.pushed() == []
    gw.subscribe_session(ref.channel_session_id, after_seq=seen[-1])
    seen += [p.event["seq"] for p in gw.pushed()]
    assert seen == list(range(1, len(gw.events(ref.conversation_id)) + 1))


def test_agent_subscription_pushes_events_of_its_conversations(
    make_gateway: Callable[..., Gateway],
) -> None:
    gw = make_gateway()
    gw.agent_login("alice")
    gw.subscribe_agent("alice")
    ref = gw.start_session("cust-1", "WEB", "v")
    assert gw.pushed() == []  # not alice's conversation yet
    gw.agent_join("alice", ref.conversation_id)
    gw.customer_message(ref.channel_session_id, "hi alice")
    names = [p.event["name"] for p in gw.pushed() if p.subscription == "agent:alice"]
    assert names[0] == "AGENT_SUBSCRIBED" and "CUSTOMER_MESSAGE" in names


def test_subscription_errors(make_gateway: Callable[..., Gateway]) -> None:
    gw = make_gateway()
    with pytest.raises(UnknownIdError):
        gw.subscribe_session("cs-nope")
    with pytest.raises(UnknownIdError):
        gw.subscribe_agent("nobody")
    with pytest.raises(BadArgumentError):
        gw.unsubscribe("room:1")
    ref = gw.start_session("cust-1", "WEB", "v")
    bad: Any = -1
    with pytest.raises(BadArgumentError):
        gw.subscribe_session(ref.channel_session_id, after_seq=bad)


def test_a_refused_session_subscription_is_not_kept_to_be_restored(
    make_gateway: Callable[..., Gateway],
) -> None:
    gw = make_gateway()
    ref = gw.start_session("cust-1", "WEB", "v")
    gw.end_conversation(ref.conversation_id)
    assert gw.conversation(ref.conversation_id)["state"] == "CLOSED"
    with pytest.raises(IllegalTransitionError):
        gw.subscribe_session(ref.channel_session_id)
    assert f"session:{ref.channel_session_id}" not in gw.engine.subscriptions
