"""An agent's and a supervisor's day through the network gateway (docs/PROTOCOL.md), part one:
transfers, consults, whispers and barge-in, outbound contacts, each driven by a raw TCP client
against ``serve(...)`` in front of an embedded engine, asserting what the client is answered
and pushed. Every read has a socket timeout; nothing sleeps."""

from __future__ import annotations

from tests.netgateway_day_support import OFFERS, Client, Connect, Open, connect, net

__all__ = ["connect", "net"]  # the fixtures these tests use


# ------------------------------------------------------------------------------ transfer


def test_a_transfer_to_a_queue_reaches_its_ready_agent_and_the_customer_is_told(
    net: Open,
) -> None:
    c = net()
    c.ready("bob")
    cid, session = c.routed("bob")
    c.ready("carol", "billing")
    c.subscribed(session, cid)
    args = {"agent_id": "bob", "conversation_id": cid, "queue": "billing", "note": "refund"}
    assert c.call("transfer", **args) is None
    told = c.push("CONVERSATION_TRANSFERRED")["event"]["data"]
    assert (told["queue"], told["to_agent_id"], told["note"]) == ("billing", None, "refund")
    left = c.push("AGENT_UNSUBSCRIBED")["event"]["data"]
    assert (left["agent_id"], left["reason"]) == ("bob", "DIRECT_TRANSFER")
    assert c.roles(cid) == {"carol": "PRIMARY"}


def test_a_transfer_to_a_named_agent_is_offered_to_that_agents_desk_with_the_note(
    connect: Connect,
) -> None:
    net = connect(**OFFERS)
    c, desk = net(), net()
    c.ready("bob")
    cid, _ = c.routed("bob", accept=True)
    desk.ready("carol", "elsewhere")
    desk.desk("carol")
    c.call("transfer", agent_id="bob", conversation_id=cid, to_agent_id="carol", note="VIP")
    offer = desk.push("AGENT_OFFERED")
    assert (offer["push"], offer["conversation_id"]) == ("agent:carol", cid)
    assert offer["event"]["data"]["note"] == "VIP"
    desk.call("agent_join", agent_id="carol", conversation_id=cid)
    assert desk.roles(cid) == {"carol": "PRIMARY"}


def test_a_transfer_to_a_queue_with_nobody_ready_leaves_the_bot_primary_while_it_waits(
    net: Open,
) -> None:
    c = net()
    c.ready("bob")
    cid, session = c.routed("bob")
    c.subscribed(session, cid)
    c.call("transfer", agent_id="bob", conversation_id=cid, queue="billing")
    assert c.push("CONVERSATION_TRANSFERRED")["event"]["data"]["queue"] == "billing"
    snapshot = c.call("conversation", conversation_id=cid)
    assert snapshot["state"] == "INACTIVE"
    bot = [p for p in snapshot["participants"] if p["type"] == "BOT"]
    assert [(p["role"], p["state"]) for p in bot] == [("PRIMARY", "SUBSCRIBED")]
    assert c.call("status")["queues"]["billing"] == 1


def test_a_transfer_by_an_agent_not_in_the_conversation_is_unknown_id_and_changes_nothing(
    net: Open,
) -> None:
    c = net()
    c.ready("bob")
    cid, _ = c.routed("bob")
    c.call("agent_login", agent_id="carol")
    seq = c.call("conversation", conversation_id=cid)["seq"]
    error = c.refused("transfer", {"agent_id": "carol", "conversation_id": cid, "queue": "q"})
    assert error["type"] == "unknown_id"
    error = c.refused("transfer", {"agent_id": "bob", "conversation_id": cid})
    assert error["type"] == "bad_argument"
    assert c.call("conversation", conversation_id=cid)["seq"] == seq
    assert c.roles(cid) == {"bob": "PRIMARY"}


# ------------------------------------------------------------------------------ consult


def consulted(net: Open) -> tuple[Client, Client, str]:
    """bob PRIMARY of a conversation, carol (desk subscribed) joined as his consult: the
    client, carol's desk and the conversation id."""
    c, desk = net(), net()
    c.ready("bob")
    cid, _ = c.routed("bob")
    desk.ready("carol", "help")
    desk.desk("carol")
    c.call("consult", agent_id="bob", conversation_id=cid, queue="help", note="tax question")
    joined = desk.push("AGENT_SUBSCRIBED", cid)
    assert joined["push"] == "agent:carol" and joined["event"]["data"]["agent_id"] == "carol"
    assert c.roles(cid) == {"bob": "PRIMARY", "carol": "ASSISTANT"}
    return c, desk, cid


def test_a_consult_is_offered_to_the_consulted_agents_desk_with_its_note(
    connect: Connect,
) -> None:
    net = connect(**OFFERS)
    c, desk = net(), net()
    c.ready("bob")
    cid, _ = c.routed("bob", accept=True)
    desk.ready("carol", "help")
    desk.desk("carol")
    c.call("consult", agent_id="bob", conversation_id=cid, to_agent_id="carol", note="tax?")
    offer = desk.push("AGENT_OFFERED", cid)
    assert (offer["push"], offer["event"]["data"]["note"]) == ("agent:carol", "tax?")
    desk.call("agent_join", agent_id="carol", conversation_id=cid)
    assert c.roles(cid) == {"bob": "PRIMARY", "carol": "ASSISTANT"}


def test_a_consult_transfer_makes_the_consulted_agent_primary_over_the_network(
    net: Open,
) -> None:
    c, desk, cid = consulted(net)
    assert desk.call("consult_transfer", agent_id="bob", conversation_id=cid) is None
    assert desk.push("CONSULT_CONCLUDED", cid)["event"]["data"]["outcome"] == "TRANSFER"
    left = [e for e in c.call("events", conversation_id=cid) if e["name"] == "AGENT_UNSUBSCRIBED"]
    assert (left[-1]["data"]["agent_id"], left[-1]["data"]["reason"]) == (
        "bob",
        "CONSULT_TRANSFER",
    )
    assert c.roles(cid) == {"carol": "PRIMARY"}


def test_a_consult_transfer_during_hold_keeps_the_hold_for_the_new_primary(net: Open) -> None:
    c, desk = net(), net()
    c.ready("bob")
    cid, _ = c.routed("bob")
    c.call("hold", agent_id="bob", conversation_id=cid, seconds=60)
    desk.ready("carol", "help")
    desk.desk("carol")
    c.call("consult", agent_id="bob", conversation_id=cid, queue="help")
    desk.call("consult_transfer", agent_id="bob", conversation_id=cid)
    assert desk.push("CONSULT_CONCLUDED", cid)["event"]["data"]["outcome"] == "TRANSFER"
    assert c.roles(cid) == {"carol": "PRIMARY"}
    assert c.call("conversation", conversation_id=cid)["state"] == "ON_HOLD"
    desk.call("resume", agent_id="carol", conversation_id=cid)
    assert c.call("conversation", conversation_id=cid)["state"] == "ACTIVE"


def test_a_pending_consult_withdrawn_by_its_agent_leaving_is_pushed_to_the_offered_desk(
    connect: Connect,
) -> None:
    net = connect(**OFFERS)
    c, desk = net(), net()
    c.ready("bob")
    cid, _ = c.routed("bob", accept=True)
    desk.ready("carol", "help")
    desk.desk("carol")
    c.call("consult", agent_id="bob", conversation_id=cid, to_agent_id="carol")
    assert desk.push("AGENT_OFFERED", cid)["event"]["data"]["consult"] is True
    c.call("agent_leave", agent_id="bob", conversation_id=cid)
    withdrawn = desk.push("AGENT_OFFER_WITHDRAWN", cid)
    assert withdrawn["event"]["data"]["agent_id"] == "carol"
    assert desk.call("agent_conversations", agent_id="carol") == []


def test_a_conference_keeps_both_agents_over_the_network(net: Open) -> None:
    c, desk, cid = consulted(net)
    assert c.call("conference", agent_id="bob", conversation_id=cid) is None
    assert desk.push("CONSULT_CONCLUDED", cid)["event"]["data"]["outcome"] == "CONFERENCE"
    assert c.roles(cid) == {"bob": "PRIMARY", "carol": "ASSISTANT"}


def test_an_ended_consult_lets_the_consulted_agent_go_over_the_network(net: Open) -> None:
    c, desk, cid = consulted(net)
    assert c.call("end_consult", agent_id="bob", conversation_id=cid) is None
    left = desk.push("AGENT_UNSUBSCRIBED", cid)
    assert left["event"]["data"]["agent_id"] == "carol"
    assert c.roles(cid) == {"bob": "PRIMARY"}


def test_a_consult_transfer_without_a_consult_is_refused_over_the_network(net: Open) -> None:
    c = net()
    c.ready("bob")
    cid, _ = c.routed("bob")
    error = c.refused("consult_transfer", {"agent_id": "bob", "conversation_id": cid})
    assert error["type"] == "illegal_transition"
    assert c.roles(cid) == {"bob": "PRIMARY"}


# ------------------------------------------------------------------------------ supervision


def test_a_whisper_reaches_the_agents_desk_and_never_the_customers_session(net: Open) -> None:
    c, desk = net(), net()
    c.ready("bob")
    cid, session = c.routed("bob")
    c.call("agent_login", agent_id="sue")
    c.call("agent_join", agent_id="sue", conversation_id=cid, role="WHISPER")
    desk.desk("bob")
    c.subscribed(session, cid)
    c.call("whisper", agent_id="sue", conversation_id=cid, text="offer the discount")
    whisper = desk.push("WHISPER_MESSAGE", cid)["event"]
    assert whisper["data"]["text"] == "offer the discount"
    assert whisper["data"]["audience"] == "AGENTS"
    c.call("agent_message", agent_id="bob", conversation_id=cid, text="a discount for you")
    c.push("AGENT_MESSAGE")  # pushed after the whisper: the whisper would have come first
    assert [p["event"]["name"] for p in c.pushed] == ["AGENT_MESSAGE"]


def test_a_silent_monitor_who_barges_in_writes_to_the_customer(net: Open) -> None:
    c, desk = net(), net()
    c.ready("bob")
    cid, session = c.routed("bob")
    desk.call("agent_login", agent_id="sue")
    desk.desk("sue")
    desk.call("agent_join", agent_id="sue", conversation_id=cid, role="SILENT_MONITOR")
    error = desk.refused(
        "agent_message", {"agent_id": "sue", "conversation_id": cid, "text": "hello"}
    )
    assert error["type"] == "illegal_transition"
    c.subscribed(session, cid)
    assert desk.call("barge_in", agent_id="sue", conversation_id=cid) is None
    assert c.push("SUPERVISOR_BARGED_IN")["event"]["data"]["agent_id"] == "sue"
    assert desk.push("SUPERVISOR_BARGED_IN", cid)["push"] == "agent:sue"
    desk.call("agent_message", agent_id="sue", conversation_id=cid, text="I can help")
    assert c.push("AGENT_MESSAGE")["event"]["data"]["text"] == "I can help"
    assert c.roles(cid) == {"bob": "PRIMARY", "sue": "ASSISTANT"}


# ------------------------------------------------------------------------------ outbound


def test_an_outbound_contact_is_pushed_to_the_agents_desk(net: Open) -> None:
    desk = net()
    desk.call("agent_login", agent_id="ann")
    desk.desk("ann")
    ref = desk.call(
        "start_outbound", agent_id="ann", customer_id="cust-1", channel="SMS", identifier="+1555"
    )
    joined = desk.push("AGENT_SUBSCRIBED", ref["conversation_id"])
    assert joined["push"] == "agent:ann"
    snapshot = desk.call("conversation", conversation_id=ref["conversation_id"])
    assert snapshot["direction"] == "OUTBOUND"
    listed = desk.call("agent_conversations", agent_id="ann")
    assert [(e["conversation_id"], e["role"]) for e in listed] == [
        (ref["conversation_id"], "PRIMARY")
    ]


def test_an_outbound_contact_to_a_customer_in_a_live_conversation_joins_it(net: Open) -> None:
    c = net()
    c.ready("bob")
    cid, session = c.routed("bob")
    c.subscribed(session, cid)
    ref = c.call(
        "start_outbound", agent_id="bob", customer_id="cust-1", channel="SMS", identifier="+1555"
    )
    assert ref["conversation_id"] == cid and ref["channel_session_id"] != session
    started = c.push("CHANNEL_SESSION_STARTED")["event"]
    assert started["channel_session_id"] == ref["channel_session_id"]
    c.call(
        "agent_message",
        agent_id="bob",
        conversation_id=cid,
        text="by text",
        channel_session_id=ref["channel_session_id"],
    )
    message = c.push("AGENT_MESSAGE")["event"]
    assert message["channel_session_id"] == ref["channel_session_id"]
