"""An agent's and a supervisor's day through the network gateway (docs/PROTOCOL.md), part two:
private and team rooms, queue positions, the sticky agent, the agent desk contract, typing and
read receipts, driven by a raw TCP client as in tests/test_netgateway_day.py."""

from __future__ import annotations

from tests.netgateway_day_support import OFFERS, Connect, Open, connect, net

__all__ = ["connect", "net"]  # the fixtures these tests use


# ------------------------------------------------------------------------------ rooms


def test_private_rooms_are_created_and_listed_over_the_network(net: Open) -> None:
    c = net()
    first = c.call("create_room", kind="PRIVATE", members=["ann"], customer_id="cust-1")
    second = c.call("create_room", kind="PRIVATE", members=["bob", "ann"], customer_id="cust-1")
    assert (first["type"], first["mode"], first["members"]) == ("CUSTOMER", "PRIVATE", ["ann"])
    listed = c.call("rooms", customer_id="cust-1")
    assert {r["room_id"] for r in listed} == {first["room_id"], second["room_id"]}
    assert [r["room_id"] for r in c.call("rooms", agent_id="bob")] == [second["room_id"]]
    assert c.call("room_members", room_id=second["room_id"]) == ["bob", "ann"]
    error = c.refused("create_room", {"kind": "PRIVATE", "members": [], "customer_id": "c"})
    assert error["type"] == "bad_argument"


def test_a_private_rooms_request_is_offered_to_its_advisors_desk(
    connect: Connect,
) -> None:
    net = connect(**OFFERS)
    c, desk = net(), net()
    desk.ready("ann", "elsewhere")
    desk.desk("ann")
    c.ready("bob")  # READY in the default queue, not an advisor
    room = c.call("create_room", kind="PRIVATE", members=["ann"], customer_id="cust-1")
    ref = c.call(
        "start_session",
        customer_id="cust-1",
        channel="WEB",
        identifier="v",
        room_id=room["room_id"],
    )
    c.call("request_agent", conversation_id=ref["conversation_id"])
    offer = desk.push("AGENT_OFFERED")
    assert offer["conversation_id"] == ref["conversation_id"]
    assert offer["event"]["data"]["agent_id"] == "ann"
    desk.call("agent_join", agent_id="ann", conversation_id=ref["conversation_id"])
    assert c.roles(ref["conversation_id"]) == {"ann": "PRIMARY"}


def test_each_private_room_of_a_customer_has_its_own_live_conversation(net: Open) -> None:
    c = net()
    rooms = [
        c.call("create_room", kind="PRIVATE", members=[agent], customer_id="cust-1")["room_id"]
        for agent in ("ann", "bob")
    ]
    refs = [
        c.call(
            "start_session", customer_id="cust-1", channel="WEB", identifier=f"v{n}", room_id=room
        )
        for n, room in enumerate(rooms)
    ]
    assert len({r["conversation_id"] for r in refs}) == 2
    assert [r["room_id"] for r in refs] == rooms


def test_a_private_rooms_history_lists_its_closed_conversations(net: Open) -> None:
    c = net()
    room = c.call("create_room", kind="PRIVATE", members=["ann"], customer_id="cust-1")
    ref = c.call(
        "start_session",
        customer_id="cust-1",
        channel="WEB",
        identifier="v",
        room_id=room["room_id"],
    )
    c.call("end_conversation", conversation_id=ref["conversation_id"])
    history = c.call("room_history", room_id=room["room_id"])
    assert [(h["conversation_id"], h["state"], h["direction"]) for h in history] == [
        (ref["conversation_id"], "CLOSED", "INBOUND")
    ]


def test_a_team_rooms_message_is_pushed_to_each_members_desk_and_kept(net: Open) -> None:
    ann, sue = net(), net()
    for client, agent_id in ((ann, "ann"), (sue, "sue")):
        client.call("agent_login", agent_id=agent_id)
        client.desk(agent_id)
    room = ann.call("create_room", kind="TEAM", members=["ann", "sue"])["room_id"]
    kept = ann.call("room_message", agent_id="ann", room_id=room, text="shift swap?")
    assert (kept["room_id"], kept["seq"]) == (room, 1)
    message = sue.push("ROOM_MESSAGE")
    assert (message["push"], message["conversation_id"]) == ("agent:sue", "")
    assert message["event"]["seq"] == 1
    assert message["event"]["data"] == {
        "room_id": room,
        "message_id": kept["message_id"],
        "agent_id": "ann",
        "text": "shift swap?",
    }
    assert ann.push("ROOM_MESSAGE")["push"] == "agent:ann"  # the author's desk too
    sue.call("room_message", agent_id="sue", room_id=room, text="sure")
    history = sue.call("room_history", room_id=room)
    assert [(m["seq"], m["agent_id"], m["text"]) for m in history] == [
        (1, "ann", "shift swap?"),
        (2, "sue", "sure"),
    ]


def test_a_non_member_cannot_write_in_a_team_room(net: Open) -> None:
    c = net()
    c.call("agent_login", agent_id="eve")
    room = c.call("create_room", kind="TEAM", members=["ann", "sue"])["room_id"]
    error = c.refused("room_message", {"agent_id": "eve", "room_id": room, "text": "hi"})
    assert error["type"] == "bad_argument"
    assert c.call("room_history", room_id=room) == []


# ------------------------------------------------------------------------------ routing


def test_a_queued_customer_is_pushed_its_position(connect: Connect) -> None:
    net = connect(routing={"position_interval_seconds": 1})
    c = net()
    waiting = []
    for n in range(2):
        ref = c.call("start_session", customer_id=f"cust-{n}", channel="WEB", identifier="v")
        waiting.append(ref)
    c.subscribed(waiting[1]["channel_session_id"], waiting[1]["conversation_id"])
    for ref in waiting:
        c.call("request_agent", conversation_id=ref["conversation_id"], queue="nobody")
    told = c.push("QUEUE_POSITION")
    assert told["push"] == f"session:{waiting[1]['channel_session_id']}"
    assert told["event"]["data"]["position"] == 2


def test_a_returning_customer_is_offered_to_its_last_agent_first(
    connect: Connect,
) -> None:
    net = connect(routing={"sticky_agent_seconds": 30})
    c = net()
    c.call("agent_login", agent_id="bob")  # idle the longest once READY
    c.ready("ann")
    first, _ = c.routed("ann")
    c.call("end_conversation", conversation_id=first)
    c.call("agent_ready", agent_id="bob")
    again = c.call("start_session", customer_id="cust-1", channel="WEB", identifier="v")
    assert again["conversation_id"] != first
    c.call("request_agent", conversation_id=again["conversation_id"])
    assert c.roles(again["conversation_id"]) == {"ann": "PRIMARY"}


# ------------------------------------------------------------------------------ the desk


def test_a_desk_accepts_an_offer_it_learned_only_from_its_subscription(
    connect: Connect,
) -> None:
    net = connect(**OFFERS)
    c, desk = net(), net()
    desk.ready("bob")
    desk.desk("bob")
    ref = c.call("start_session", customer_id="cust-1", channel="WEB", identifier="v")
    c.call("request_agent", conversation_id=ref["conversation_id"])
    offer = desk.push("AGENT_OFFERED")
    assert offer["push"] == "agent:bob" and offer["event"]["data"]["agent_id"] == "bob"
    learned = offer["conversation_id"]  # all the desk knows of the conversation
    listed = desk.call("agent_conversations", agent_id="bob")
    assert [(e["conversation_id"], e["role"]) for e in listed] == [(learned, None)]
    desk.call("agent_join", agent_id="bob", conversation_id=learned)
    assert desk.push("AGENT_SUBSCRIBED", learned)["push"] == "agent:bob"
    listed = desk.call("agent_conversations", agent_id="bob")
    assert [(e["conversation_id"], e["state"], e["role"]) for e in listed] == [
        (ref["conversation_id"], "ACTIVE", "PRIMARY")
    ]


def test_an_offer_withdrawn_when_the_customer_leaves_is_pushed_to_the_desk(
    connect: Connect,
) -> None:
    net = connect(**OFFERS)
    c, desk = net(), net()
    desk.ready("bob")
    desk.desk("bob")
    ref = c.call("start_session", customer_id="cust-1", channel="WEB", identifier="v")
    c.call("request_agent", conversation_id=ref["conversation_id"])
    desk.push("AGENT_OFFERED")
    c.call("end_session", channel_session_id=ref["channel_session_id"])
    withdrawn = desk.push("AGENT_OFFER_WITHDRAWN")
    assert withdrawn["conversation_id"] == ref["conversation_id"]
    assert withdrawn["event"]["data"]["agent_id"] == "bob"
    assert desk.call("agent_conversations", agent_id="bob") == []


def test_a_desk_is_pushed_a_final_event_when_its_conversation_closes(net: Open) -> None:
    c, desk = net(), net()
    desk.ready("bob")
    desk.desk("bob")
    cid, _ = c.routed("bob")
    c.call("end_conversation", conversation_id=cid)
    last = c.call("events", conversation_id=cid)[-1]["seq"]
    while not any(p.get("final") for p in desk.pushed):
        value = desk.frame()
        assert "push" in value, value
        desk.pushed.append(value)
    finals = [p for p in desk.pushed if p.get("final")]
    assert len(finals) == 1 and finals[0] is desk.pushed[-1]
    assert (finals[0]["conversation_id"], finals[0]["event"]["seq"]) == (cid, last)
    assert desk.call("agent_conversations", agent_id="bob") == []


def test_agent_conversations_of_an_unknown_agent_is_unknown_id(net: Open) -> None:
    error = net().refused("agent_conversations", {"agent_id": "nobody"})
    assert error["type"] == "unknown_id"


# ------------------------------------------------------------------------------ presence


def test_a_customers_typing_is_pushed_to_the_agents_desk_and_not_kept(net: Open) -> None:
    c, desk = net(), net()
    desk.ready("bob")
    desk.desk("bob")
    cid, session = c.routed("bob")
    seq = c.call("conversation", conversation_id=cid)["seq"]
    assert c.call("customer_typing", channel_session_id=session) is None
    typing = desk.push("TYPING", cid)["event"]
    assert typing["seq"] is None and typing["channel_session_id"] == session
    assert c.call("events", conversation_id=cid, after_seq=seq) == []


def test_an_agents_typing_and_read_receipt_are_pushed_to_the_customers_session(
    net: Open,
) -> None:
    c = net()
    c.ready("bob")
    cid, session = c.routed("bob")
    c.subscribed(session, cid)
    seq = c.call("conversation", conversation_id=cid)["seq"]
    c.call("agent_typing", agent_id="bob", conversation_id=cid)
    assert c.push("TYPING")["event"]["emitter"]["id"] == "bob"
    c.call("agent_read", agent_id="bob", conversation_id=cid, seq=seq)
    receipt = c.push("READ_RECEIPT")
    assert receipt["push"] == f"session:{session}"
    assert (receipt["event"]["seq"], receipt["event"]["data"]["seq"]) == (seq + 1, seq)


def test_a_customers_read_receipt_is_kept_and_pushed_to_the_agents_desk(net: Open) -> None:
    c, desk = net(), net()
    desk.ready("bob")
    desk.desk("bob")
    cid, session = c.routed("bob")
    seq = c.call("conversation", conversation_id=cid)["seq"]
    assert c.call("customer_read", channel_session_id=session, seq=seq) is None
    receipt = desk.push("READ_RECEIPT", cid)["event"]
    assert receipt["seq"] == seq + 1 and receipt["data"]["seq"] == seq
    (kept,) = c.call("events", conversation_id=cid, after_seq=seq)
    assert kept == receipt
