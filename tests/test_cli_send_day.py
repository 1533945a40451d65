"""``cx send`` issues the operations of an agent's and a supervisor's day (transfers, consults,
whispers and barge-in, outbound contacts, rooms, the desk's list, typing and receipts): the
command line is parsed and bound as an operator types it, and carried out on an embedded engine
standing in for the running system (``control.connect`` gives it), its result printed as JSON."""

from __future__ import annotations

import contextlib
import json
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime import cli_send
from runtime.cli import main
from runtime.cli_send import OPS, ops_help
from runtime.gateway import Gateway
from tests.conftest import MakeGateway

Send = Callable[..., Any]
ROOT = Path(__file__).resolve().parent.parent

DAY_OPS = {
    "transfer",
    "consult",
    "consult_transfer",
    "conference",
    "end_consult",
    "whisper",
    "barge_in",
    "start_outbound",
    "create_room",
    "rooms",
    "room_members",
    "room_message",
    "room_history",
    "agent_conversations",
    "agent_typing",
    "customer_typing",
    "agent_read",
    "customer_read",
}


@pytest.fixture
def gw(make_gateway: MakeGateway) -> Iterator[Gateway]:
    with make_gateway() as gateway:
        yield gateway


@pytest.fixture
def send(
    gw: Gateway,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Send:
    """``send(*argv)``: ``cx send ARGV`` against ``gw``; its exit status and printed JSON (or
    its one line of error)."""
    config = tmp_path / "config.yaml"
    config.write_text("{}\n")
    monkeypatch.setattr(cli_send.control, "connect", lambda path: contextlib.nullcontext(gw))

    def run(*argv: str) -> tuple[int, Any]:
        code = main(["send", *argv, "--config", str(config)])
        out, err = capsys.readouterr()
        return code, json.loads(out) if code == 0 else err.strip()

    return run


def ok(send: Send, *argv: str) -> Any:
    code, printed = send(*argv)
    assert code == 0, printed
    return printed


def routed(gw: Gateway, agent_id: str = "bob") -> str:
    gw.agent_login(agent_id)
    gw.agent_ready(agent_id)
    cid = gw.start_session("cust-1", "WEB", "v").conversation_id
    gw.request_agent(cid)
    return cid


def roles(gw: Gateway, conversation_id: str) -> dict[str, str]:
    return {
        p["id"]: p["role"]
        for p in gw.conversation(conversation_id)["participants"]
        if p["type"] == "AGENT" and p["state"] == "SUBSCRIBED"
    }


def test_cx_send_offers_and_explains_every_operation_of_the_agents_day() -> None:
    assert not DAY_OPS - set(OPS)
    listed = {line.split()[0] for line in ops_help().splitlines() if line.startswith("  ")}
    assert not DAY_OPS - listed


def sent(text: str) -> list[list[str]]:
    """The words after ``cx send`` of each line of ``text`` that runs it (comments left out)."""
    return [
        shlex.split(line.strip(), comments=True)[2:]
        for line in text.splitlines()
        if line.strip().startswith("cx send ")
    ]


@pytest.mark.parametrize("where", ["cx send --help", "docs/OPERATIONS.md"])
def test_every_cx_send_example_binds_to_its_operation(where: str) -> None:
    text = ops_help() if where == "cx send --help" else (ROOT / where).read_text()
    examples = sent(text)
    assert {"transfer", "create_room"} <= {words[0] for words in examples}
    for op, *words in examples:
        at = words.index("--json-args") if "--json-args" in words else len(words)
        json_args = words[at + 1] if at < len(words) else None
        cli_send.bind_op(op, words[:at], json_args)  # raises UsageError if it does not bind


def test_cx_send_transfers_to_a_queue_given_in_json_args(gw: Gateway, send: Send) -> None:
    cid = routed(gw)
    gw.agent_login("carol", queues=["billing"])
    gw.agent_ready("carol")
    args = json.dumps({"queue": "billing", "note": "refund"})
    assert ok(send, "transfer", "bob", cid, "--json-args", args) is None
    assert roles(gw, cid) == {"carol": "PRIMARY"}


def test_cx_send_refuses_a_transfer_without_a_target_and_changes_nothing(
    gw: Gateway, send: Send
) -> None:
    cid = routed(gw)
    seq = gw.conversation(cid)["seq"]
    code, line = send("transfer", "bob", cid)
    assert code == 2 and "to_agent_id" in line
    assert gw.conversation(cid)["seq"] == seq


def test_cx_send_consults_an_agent_then_hands_the_conversation_over(
    gw: Gateway, send: Send
) -> None:
    cid = routed(gw)
    gw.agent_login("carol")
    gw.agent_ready("carol")
    ok(send, "consult", "bob", cid, "--json-args", '{"to_agent_id": "carol"}')
    assert roles(gw, cid) == {"bob": "PRIMARY", "carol": "ASSISTANT"}
    assert ok(send, "consult_transfer", "bob", cid) is None
    assert roles(gw, cid) == {"carol": "PRIMARY"}


@pytest.mark.parametrize(
    ("op", "outcome", "after"),
    [
        ("conference", "CONFERENCE", {"bob": "PRIMARY", "carol": "ASSISTANT"}),
        ("end_consult", "END", {"bob": "PRIMARY"}),
    ],
)
def test_cx_send_concludes_a_consult(
    gw: Gateway, send: Send, op: str, outcome: str, after: dict[str, str]
) -> None:
    cid = routed(gw)
    gw.agent_login("carol")
    gw.agent_ready("carol")
    gw.consult("bob", cid, to_agent_id="carol")
    seq = gw.conversation(cid)["seq"]
    assert ok(send, op, "bob", cid) is None
    (concluded,) = [e for e in gw.events(cid, after_seq=seq) if e["name"] == "CONSULT_CONCLUDED"]
    assert concluded["data"]["outcome"] == outcome
    assert roles(gw, cid) == after


def test_cx_send_whispers_and_barges_in(gw: Gateway, send: Send) -> None:
    cid = routed(gw)
    gw.agent_login("sue")
    gw.agent_join("sue", cid, role="WHISPER")
    assert ok(send, "whisper", "sue", cid, "say sorry") is None
    whisper = gw.events(cid)[-1]
    assert (whisper["name"], whisper["data"]["text"]) == ("WHISPER_MESSAGE", "say sorry")
    assert ok(send, "barge_in", "sue", cid) is None
    assert roles(gw, cid) == {"bob": "PRIMARY", "sue": "ASSISTANT"}


def test_cx_send_starts_an_outbound_contact(gw: Gateway, send: Send) -> None:
    gw.agent_login("ann")
    ref = ok(send, "start_outbound", "ann", "cust-9", "SMS", "+1 555 0100")
    assert set(ref) == {"conversation_id", "channel_session_id", "room_id"}
    assert gw.conversation(ref["conversation_id"])["direction"] == "OUTBOUND"
    assert roles(gw, ref["conversation_id"]) == {"ann": "PRIMARY"}


def test_cx_send_creates_a_private_room_from_a_json_list_of_members(
    gw: Gateway, send: Send
) -> None:
    room = ok(
        send, "create_room", "PRIVATE", '["ann", "bob"]', "--json-args", '{"customer_id": "c"}'
    )
    assert (room["mode"], room["members"], room["customer_id"]) == ("PRIVATE", ["ann", "bob"], "c")
    assert ok(send, "room_members", room["room_id"]) == ["ann", "bob"]
    listed = ok(send, "rooms", "--json-args", '{"customer_id": "c"}')
    assert room["room_id"] in [r["room_id"] for r in listed]


def test_cx_send_writes_in_a_team_room_and_reads_its_history(gw: Gateway, send: Send) -> None:
    room = gw.create_room("TEAM", ["ann", "sue"])["room_id"]
    kept = ok(send, "room_message", "ann", room, "shift swap?")
    assert (kept["room_id"], kept["seq"]) == (room, 1)
    history = ok(send, "room_history", room)
    assert [(m["agent_id"], m["text"]) for m in history] == [("ann", "shift swap?")]


def test_cx_send_lists_an_agents_conversations(gw: Gateway, send: Send) -> None:
    cid = routed(gw)
    listed = ok(send, "agent_conversations", "bob")
    assert [(c["conversation_id"], c["role"]) for c in listed] == [(cid, "PRIMARY")]


def test_cx_send_sends_read_receipts_with_an_integer_seq(gw: Gateway, send: Send) -> None:
    cid = routed(gw)
    session = gw.conversation(cid)["channel_sessions"][0]["id"]
    seq = gw.conversation(cid)["seq"]
    assert ok(send, "agent_read", "bob", cid, str(seq)) is None
    assert ok(send, "customer_read", session, str(seq)) is None
    receipts = gw.events(cid, after_seq=seq)
    assert [(e["name"], e["data"]["seq"]) for e in receipts] == [("READ_RECEIPT", seq)] * 2


def test_cx_send_sends_typing_indicators(gw: Gateway, send: Send) -> None:
    cid = routed(gw)
    gw.subscribe_agent("bob")
    gw.pushed()
    session = gw.conversation(cid)["channel_sessions"][0]["id"]
    assert ok(send, "customer_typing", session) is None
    typing = [p.event for p in gw.pushed() if p.subscription == "agent:bob"]
    assert [e["name"] for e in typing] == ["TYPING"]
    assert ok(send, "agent_typing", "bob", cid) is None
