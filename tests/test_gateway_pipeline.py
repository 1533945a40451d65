"""Gateway.pipeline(): many requests, one message per destination, answers in the order asked."""

from __future__ import annotations

from typing import Any

import pytest

from runtime import testing
from runtime.gateway import (
    BadArgumentError,
    Gateway,
    IllegalTransitionError,
    SessionRef,
    UnavailableError,
    UnknownIdError,
)
from runtime.gateway_transport import Unreachable
from tests.conftest import MakeGateway, names


def counting_sends(gw: Gateway, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The messages the gateway sends from now on (its actor system's ``tell``)."""
    system = testing.system(gw)
    sent: list[Any] = []
    tell = system.tell

    def counted(address: Any, message: Any) -> None:
        sent.append(message)
        tell(address, message)

    monkeypatch.setattr(system, "tell", counted)
    return sent


def test_sessions_started_in_a_pipeline_are_answered_in_the_order_asked(
    make_gateway: MakeGateway,
) -> None:
    gw = make_gateway()
    pipeline = gw.pipeline()
    for n in range(5):
        pipeline.start_session(f"cust-{n}", "WEB", f"browser-{n}")
    refs = pipeline.wait()
    assert all(isinstance(ref, SessionRef) for ref in refs)
    assert [gw.conversation(r.conversation_id)["state"] for r in refs] == ["CREATED"] * 5
    assert [gw.conversation(r.conversation_id)["room_id"] for r in refs] == [
        r.room_id for r in refs
    ]
    assert gw.status()["conversations"] == {"CREATED": 5}


def six_on_two_hosts(make_gateway: MakeGateway) -> tuple[Gateway, list[SessionRef], dict[str, Any]]:
    """A gateway with six conversations, three on each of two hosts, and each one's host."""
    gw = make_gateway(placement={"per_host": 3})
    refs = [gw.start_session(f"cust-{n}", "WEB", f"b-{n}") for n in range(6)]
    hosts = testing.hosts_of(gw, [r.conversation_id for r in refs])
    assert len({str(h) for h in hosts.values()}) == 2
    return gw, refs, hosts


def test_requests_leave_as_one_message_per_host(
    make_gateway: MakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw, refs, _ = six_on_two_hosts(make_gateway)
    sent = counting_sends(gw, monkeypatch)
    pipeline = gw.pipeline()
    for ref in refs:
        pipeline.customer_message(ref.channel_session_id, "hello")
    pipeline.send()
    assert [len(message.items) for message in sent] == [3, 3]
    assert pipeline.wait() == [None] * 6  # applied: a customer message answers None
    for ref in refs:
        assert names(gw, ref.conversation_id).count("CUSTOMER_MESSAGE") == 1


def test_with_acks_last_only_the_last_request_per_destination_is_answered(
    make_gateway: MakeGateway,
) -> None:
    gw = make_gateway()
    ref = gw.start_session("cust-1", "WEB", "b")
    pipeline = gw.pipeline(acks="last")
    asked = [pipeline.customer_message(ref.channel_session_id, f"m{k}") for k in range(4)]
    pipeline.wait()
    assert [p.call_id is not None for p in asked] == [False, False, False, True]
    assert asked[-1].answered and asked[-1].answered_at is not None
    texts = [e["data"].get("text") for e in gw.events(ref.conversation_id)]
    assert [t for t in texts if t in {"m0", "m1", "m2", "m3"}] == ["m0", "m1", "m2", "m3"]


def test_a_refused_request_raises_from_wait_and_the_others_are_carried_out(
    make_gateway: MakeGateway,
) -> None:
    gw = make_gateway()
    closed = gw.start_session("cust-1", "WEB", "a")
    gw.end_conversation(closed.conversation_id)
    live = gw.start_session("cust-2", "WEB", "b")
    pipeline = gw.pipeline()
    ended = pipeline.end_conversation(closed.conversation_id)
    message = pipeline.customer_message(live.channel_session_id, "still here")
    unknown = pipeline.customer_message("cs-nobody", "hello")
    with pytest.raises(IllegalTransitionError, match="in state CLOSED"):
        pipeline.wait()
    assert message.value is None and "CUSTOMER_MESSAGE" in names(gw, live.conversation_id)
    with pytest.raises(IllegalTransitionError):
        _ = ended.value
    with pytest.raises(UnknownIdError, match="cs-nobody"):
        _ = unknown.value


def test_a_bad_argument_is_refused_before_anything_is_queued(make_gateway: MakeGateway) -> None:
    gw = make_gateway()
    pipeline = gw.pipeline()
    with pytest.raises(BadArgumentError, match="channel must be one of"):
        pipeline.start_session("cust-1", "PIGEON", "b")
    with pytest.raises(BadArgumentError, match="acks"):
        gw.pipeline(acks="some")  # type: ignore[arg-type]
    assert pipeline.wait() == []
    assert gw.status()["conversations"] == {}


def test_agents_join_through_a_pipeline(make_gateway: MakeGateway) -> None:
    gw = make_gateway()
    refs = [gw.start_session(f"cust-{n}", "WEB", f"b-{n}") for n in range(3)]
    gw.agent_login("alice", max_conversations=3)
    with gw.pipeline() as pipeline:
        for ref in refs:
            pipeline.agent_join("alice", ref.conversation_id)
    for ref in refs:
        snapshot = gw.conversation(ref.conversation_id)
        assert snapshot["state"] == "ACTIVE"
        assert "alice" in [p["id"] for p in snapshot["participants"]]


def test_a_pipeline_reaches_more_conversations_than_the_location_cache_holds(
    make_gateway: MakeGateway,
) -> None:
    gw = make_gateway()
    refs = [gw.start_session(f"cust-{n}", "WEB", f"b-{n}") for n in range(5)]
    testing.location_cache(gw).clear()
    testing.location_cache(gw).limit = 2
    pipeline = gw.pipeline()
    for ref in refs:
        pipeline.conversation(ref.conversation_id)
    snapshots = pipeline.wait()
    assert [s["id"] for s in snapshots] == [r.conversation_id for r in refs]
    assert len(testing.location_cache(gw)) <= 2


def test_requests_to_a_host_known_dead_are_refused_unavailable_and_the_others_carried_out(
    make_gateway: MakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw, refs, hosts = six_on_two_hosts(make_gateway)
    dead = hosts[refs[0].conversation_id]
    transport = gw.engine.transport
    send = transport.send

    def refusing(address: Any, message: Any, *, batch: bool = False) -> None:
        if address == dead:  # as the connected transport refuses a host it saw die
            raise Unreachable(f"{address} is a host that died")
        send(address, message, batch=batch)

    monkeypatch.setattr(transport, "send", refusing)
    pipeline = gw.pipeline()
    sent = [pipeline.customer_message(r.channel_session_id, "hello") for r in refs]
    pipeline.send()
    on_dead = [p for r, p in zip(refs, sent, strict=True) if hosts[r.conversation_id] == dead]
    alive = [p for p in sent if p not in on_dead]
    assert len(on_dead) == 3 and all(p.answered for p in on_dead)
    for pending in on_dead:
        with pytest.raises(UnavailableError, match=r"is a host that died .* being rebuilt"):
            pending.value  # noqa: B018
    assert pipeline.wait(alive) == [None, None, None]
    dead_ids = {r.conversation_id for r in refs if hosts[r.conversation_id] == dead}
    assert dead_ids.isdisjoint(testing.location_cache(gw).as_dict())
