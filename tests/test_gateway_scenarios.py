"""End-to-end scenarios through the public gateway (docs/STATES.md, EVENTS.md, SNAPSHOTS.md).

Every test drives an embedded engine on the virtual clock through ``runtime.gateway.Gateway``
alone and checks the events (names, order, key data), states and snapshots those docs
prescribe. Within one trigger EVENTS.md fixes the order of the *buckets* (own event, then
TOPIC_STATE_CHANGED, then participant events, then timer ``_STOPPED``, then timer
``_STARTED``) but not the order of several timers inside one bucket: where a trigger stops or
starts more than one timer, those are compared as a multiset (:func:`same_block`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runtime import testing
from runtime.gateway import (
    BadArgumentError,
    Gateway,
    GatewayError,
    IllegalTransitionError,
    UnknownIdError,
)
from tests.conftest import MakeGateway, names, storage_config, watchdog

ENVELOPE = {"seq", "name", "type", "timestamp", "emitter", "channel_session_id", "data"}
WELCOME = "Welcome to the test shop!"
ANSWER = "A canned answer."
HOLD_NOTICE = "On hold, please wait."
RESUME_NOTICE = "Back with you."
NO_AGENT_NOTICE = "Nobody is free."
BOT = {
    "bot": {
        "welcome": WELCOME,
        "answer": ANSWER,
        "hold_notice": HOLD_NOTICE,
        "resume_notice": RESUME_NOTICE,
        "no_agent_notice": NO_AGENT_NOTICE,
    }
}
OPENING = [
    "CHANNEL_SESSION_STARTED",
    "TOPIC_STATE_CHANGED",
    "BOT_SUBSCRIBED",
    "CUSTOMER_SLA_STARTED",
    "BOT_MESSAGE",
    "CUSTOMER_SLA_STARTED",
]
ROUTED = [
    "AGENT_SUBSCRIBED",
    "TOPIC_STATE_CHANGED",
    "PARTICIPANT_ROLE_CHANGED",
    "AGENT_SLA_STARTED",
]


def ts(seconds: float) -> str:
    """The ISO-8601 timestamp of ``seconds`` on the virtual clock."""
    ms = round(seconds * 1000)
    s, ms = divmod(ms, 1000)
    m, s = divmod(s, 60)
    h, m = divmod(m, 60)
    return f"1970-01-01T{h:02d}:{m:02d}:{s:02d}.{ms:03d}Z"


class Tail:
    """The events of one conversation published since the previous call."""

    def __init__(self, gw: Gateway, conversation_id: str) -> None:
        self.gw = gw
        self.conversation_id = conversation_id
        self.seen = 0

    def __call__(self) -> list[dict[str, Any]]:
        new = self.gw.events(self.conversation_id, after_seq=self.seen)
        if new:
            assert [e["seq"] for e in new] == list(range(self.seen + 1, self.seen + 1 + len(new)))
            self.seen = new[-1]["seq"]
        return new


def nm(events: list[dict[str, Any]]) -> list[str]:
    return [e["name"] for e in events]


def same_block(events: list[dict[str, Any]], expected: list[tuple[str, str | None]]) -> None:
    """``events`` are exactly ``expected`` (name, channel_session_id) in some order."""
    got = Counter((e["name"], e["channel_session_id"]) for e in events)
    assert got == Counter(expected), [(e["name"], e["channel_session_id"]) for e in events]


def state(gw: Gateway, conversation_id: str) -> str:
    return str(gw.conversation(conversation_id)["state"])


def status_of(gw: Gateway, part: str) -> dict[str, int]:
    """One part of status(), without zero counts (whether those are listed is not specified)."""
    return {key: count for key, count in gw.status()[part].items() if count}


def participant(snapshot: dict[str, Any], pid: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [p for p in snapshot["participants"] if p["id"] == pid]
    assert len(found) == 1, snapshot["participants"]
    return found[0]


def assert_routed(
    events: list[dict[str, Any]],
    agent_id: str,
    *,
    before: str,
    sla_seconds: float = 60.0,
) -> None:
    """A routed agent became PRIMARY: ACTIVE, bot -> ASSISTANT, agent SLA armed."""
    assert nm(events) == ROUTED
    assert events[0]["data"]["agent_id"] == agent_id
    assert events[0]["data"]["role"] == "PRIMARY"
    assert events[0]["emitter"]["id"] == agent_id
    assert events[1]["data"]["from"] == before
    assert events[1]["data"]["to"] == "ACTIVE"
    assert events[2]["data"] == {"participant_id": "bot", "from": "PRIMARY", "to": "ASSISTANT"}
    assert events[3]["data"]["seconds"] == sla_seconds


def refused(gw: Gateway, conversation_id: str, error: type[GatewayError], call: Any) -> None:
    """``call()`` raises ``error`` and changes neither the events nor the snapshot."""
    before_events = gw.events(conversation_id)
    before = gw.conversation(conversation_id)
    with pytest.raises(error):
        call()
    assert gw.events(conversation_id) == before_events
    assert gw.conversation(conversation_id) == before


def active_with(gw: Gateway, agent_id: str, customer: str = "cust-1", channel: str = "WEB") -> Any:
    """A conversation of ``customer`` routed to ``agent_id`` (already logged in and READY)."""
    ref = gw.start_session(customer, channel, f"{customer}-{channel.lower()}")
    gw.request_agent(ref.conversation_id)
    snapshot = gw.conversation(ref.conversation_id)
    assert snapshot["state"] == "ACTIVE"
    assert participant(snapshot, agent_id)["role"] == "PRIMARY"
    return ref


def ready(gw: Gateway, agent_id: str, **login: Any) -> None:
    gw.agent_login(agent_id, **login)
    gw.agent_ready(agent_id)


# ---------------------------------------------------------------------- bot, then an agent


def test_web_chat_handled_by_bot_then_agent(make_gateway: MakeGateway) -> None:
    with make_gateway(**BOT) as gw:
        ref = gw.start_session("cust-1", "WEB", "visitor-1")
        cid, cs = ref.conversation_id, ref.channel_session_id
        tail = Tail(gw, cid)
        opening = tail()
        assert nm(opening) == OPENING
        for event in opening:
            assert set(event) == ENVELOPE
            assert event["timestamp"] == ts(0)
        assert opening[0]["data"] == {"channel": "WEB", "identifier": "visitor-1"}
        assert opening[0]["channel_session_id"] == cs
        assert opening[0]["type"] == "NOTIFICATION"
        assert opening[1]["data"]["from"] is None
        assert opening[1]["data"]["to"] == "CREATED"
        assert opening[2]["data"]["role"] == "PRIMARY"
        assert opening[2]["emitter"]["id"] == "bot"
        assert opening[3]["channel_session_id"] == cs
        assert opening[3]["data"]["seconds"] == 300
        assert opening[4]["type"] == "MESSAGE"
        assert opening[4]["data"]["text"] == WELCOME
        assert opening[4]["emitter"] == {"id": "bot", "type": "BOT"}
        assert state(gw, cid) == "CREATED"

        # A question the bot answers itself.
        gw.customer_message(cs, "what are your opening hours?")
        answer = tail()
        assert nm(answer) == [
            "CUSTOMER_MESSAGE",
            "CUSTOMER_SLA_STOPPED",
            "BOT_MESSAGE",
            "CUSTOMER_SLA_STARTED",
        ]
        assert answer[0]["type"] == "MESSAGE"
        assert answer[0]["data"]["text"] == "what are your opening hours?"
        assert answer[0]["channel_session_id"] == cs
        assert answer[0]["emitter"]["type"] == "CUSTOMER"
        assert answer[2]["data"]["text"] == ANSWER
        assert state(gw, cid) == "CREATED"

        # An agent logs in: nothing happens to the conversation until one is requested.
        ready(gw, "alice")
        assert tail() == []

        gw.customer_message(cs, "I want an AGENT now")
        handover = tail()
        assert nm(handover) == [
            "CUSTOMER_MESSAGE",
            "CUSTOMER_SLA_STOPPED",
            "AGENT_REQUESTED",
            *ROUTED,
        ]
        assert handover[2]["emitter"] == {"id": "bot", "type": "BOT"}
        assert handover[2]["data"]["queue"] == "default"
        assert_routed(handover[3:], "alice", before="CREATED")
        assert state(gw, cid) == "ACTIVE"

        gw.agent_message("alice", cid, "Hello, Alice here.")
        reply = tail()
        assert nm(reply) == ["AGENT_MESSAGE", "AGENT_SLA_STOPPED", "CUSTOMER_SLA_STARTED"]
        assert reply[0]["type"] == "MESSAGE"
        assert reply[0]["emitter"] == {"id": "alice", "type": "AGENT"}
        assert reply[0]["data"]["text"] == "Hello, Alice here."
        assert reply[2]["channel_session_id"] == cs

        snapshot = gw.conversation(cid)
        assert snapshot["id"] == cid
        assert snapshot["room_id"] == ref.room_id
        assert snapshot["customer_id"] == "cust-1"
        assert snapshot["state"] == "ACTIVE"
        assert snapshot["seq"] == tail.seen
        assert snapshot["ended_at"] is None
        assert snapshot["created_at"] == ts(0)
        bot = participant(snapshot, "bot")
        assert (bot["type"], bot["role"], bot["state"]) == ("BOT", "ASSISTANT", "SUBSCRIBED")
        alice = participant(snapshot, "alice")
        assert (alice["type"], alice["role"], alice["state"]) == ("AGENT", "PRIMARY", "SUBSCRIBED")
        assert alice["left_at"] is None
        assert snapshot["channel_sessions"] == [
            {
                "id": cs,
                "channel": "WEB",
                "identifier": "visitor-1",
                "state": "STARTED",
                "end_reason": None,
                "started_at": ts(0),
                "ended_at": None,
            }
        ]
        status = gw.status()
        assert status["conversations"] == {"ACTIVE": 1}
        assert sum(status["queues"].values()) == 0


# ---------------------------------------------------------------------- several channels, voice


def test_second_channel_and_voice_join_the_same_conversation(make_gateway: MakeGateway) -> None:
    with make_gateway() as gw:
        ready(gw, "alice")
        web = active_with(gw, "alice")
        cid = web.conversation_id
        gw.agent_message("alice", cid, "hi")  # the web session's inactivity timer runs
        tail = Tail(gw, cid)
        tail()

        wa = gw.start_session("cust-1", "WHATSAPP", "+33600000000")
        assert wa.conversation_id == cid
        assert wa.room_id == web.room_id
        assert wa.channel_session_id != web.channel_session_id
        joined = tail()
        assert nm(joined) == ["CHANNEL_SESSION_STARTED", "CUSTOMER_SLA_STARTED"]
        assert joined[0]["data"] == {"channel": "WHATSAPP", "identifier": "+33600000000"}
        assert joined[1]["channel_session_id"] == wa.channel_session_id
        assert state(gw, cid) == "ACTIVE"

        # A customer message on the web: agent SLA armed; the other text session re-armed.
        gw.customer_message(web.channel_session_id, "are you there?")
        msg = tail()
        assert msg[0]["name"] == "CUSTOMER_MESSAGE"
        same_block(
            msg[1:],
            [
                ("CUSTOMER_SLA_STOPPED", web.channel_session_id),
                ("CUSTOMER_SLA_STARTED", wa.channel_session_id),
                ("AGENT_SLA_STARTED", None),
            ],
        )
        assert nm(msg).index("CUSTOMER_SLA_STOPPED") < nm(msg).index("CUSTOMER_SLA_STARTED")

        voice = gw.start_session("cust-1", "VOICE", "+33600000000")
        assert voice.conversation_id == cid
        call = tail()
        assert call[0]["name"] == "CHANNEL_SESSION_STARTED"
        assert call[0]["data"]["channel"] == "VOICE"
        same_block(
            call[1:],
            [
                ("CUSTOMER_SLA_STOPPED", wa.channel_session_id),
                ("AGENT_SLA_STOPPED", None),
            ],
        )
        assert state(gw, cid) == "ACTIVE"

        # While the call lasts: no agent SLA, no inactivity timer.
        gw.customer_message(web.channel_session_id, "typing during the call")
        assert nm(tail()) == ["CUSTOMER_MESSAGE"]
        gw.advance(1000)
        assert tail() == []
        assert state(gw, cid) == "ACTIVE"

        gw.end_session(voice.channel_session_id)
        hung_up = tail()
        assert hung_up[0]["name"] == "CHANNEL_SESSION_ENDED"
        assert hung_up[0]["data"]["end_reason"] == "CUSTOMER"
        assert hung_up[0]["channel_session_id"] == voice.channel_session_id
        same_block(
            hung_up[1:],
            [
                ("CUSTOMER_SLA_STARTED", web.channel_session_id),
                ("CUSTOMER_SLA_STARTED", wa.channel_session_id),
            ],
        )
        for event in hung_up:
            assert event["timestamp"] == ts(1000)
        assert state(gw, cid) == "ACTIVE"

        sessions = {s["id"]: s for s in gw.conversation(cid)["channel_sessions"]}
        assert set(sessions) == {
            web.channel_session_id,
            wa.channel_session_id,
            voice.channel_session_id,
        }
        assert sessions[voice.channel_session_id]["state"] == "ENDED"
        assert sessions[voice.channel_session_id]["end_reason"] == "CUSTOMER"
        assert sessions[voice.channel_session_id]["ended_at"] == ts(1000)
        assert sessions[web.channel_session_id]["state"] == "STARTED"
        assert sessions[wa.channel_session_id]["channel"] == "WHATSAPP"

        # The restarted text timers run again: both sessions end by inactivity 300 s later.
        gw.advance(300)
        ended = [e for e in tail() if e["name"] == "CHANNEL_SESSION_ENDED"]
        assert {e["channel_session_id"] for e in ended} == {
            web.channel_session_id,
            wa.channel_session_id,
        }
        assert all(e["data"]["end_reason"] == "INACTIVITY" for e in ended)
        assert all(e["timestamp"] == ts(1300) for e in ended)
        assert state(gw, cid) == "CUSTOMER_LEFT"


# ---------------------------------------------------------------------- hold


def test_hold_resume_expiry_and_agent_message(make_gateway: MakeGateway) -> None:
    with make_gateway(timers={"hold": {"max_seconds": 300}}, **BOT) as gw:
        ready(gw, "alice")
        ref = active_with(gw, "alice")
        cid = ref.conversation_id
        tail = Tail(gw, cid)
        tail()

        # Out of range: refused, nothing changes.
        for seconds in (301, 0, -5):
            refused(gw, cid, BadArgumentError, lambda s=seconds: gw.hold("alice", cid, s))
        assert state(gw, cid) == "ACTIVE"

        gw.hold("alice", cid, 100)
        paused = tail()
        assert nm(paused) == [
            "CONVERSATION_PAUSED",
            "TOPIC_STATE_CHANGED",
            "AGENT_SLA_STOPPED",
            "BOT_NOTIFICATION",
        ]
        assert paused[0]["data"]["seconds"] == 100
        assert paused[0]["emitter"]["id"] == "alice"
        assert (paused[1]["data"]["from"], paused[1]["data"]["to"]) == ("ACTIVE", "ON_HOLD")
        assert paused[3]["type"] == "NOTIFICATION"
        assert paused[3]["emitter"]["type"] == "BOT"
        assert paused[3]["data"]["text"] == HOLD_NOTICE
        assert state(gw, cid) == "ON_HOLD"

        # ON_HOLD: a customer message starts no agent SLA.
        gw.customer_message(ref.channel_session_id, "hello?")
        assert nm(tail()) == ["CUSTOMER_MESSAGE"]

        gw.advance(99.999)
        assert tail() == []
        gw.advance(0.001)
        resumed = tail()
        assert nm(resumed)[:2] == ["CONVERSATION_RESUMED", "TOPIC_STATE_CHANGED"]
        assert resumed[0]["data"]["reason"] == "HOLD_EXPIRED"
        assert (resumed[1]["data"]["from"], resumed[1]["data"]["to"]) == ("ON_HOLD", "ACTIVE")
        same_block(
            resumed[2:4],
            [("CUSTOMER_SLA_STARTED", ref.channel_session_id), ("AGENT_SLA_STARTED", None)],
        )
        assert nm(resumed)[4:] == ["BOT_NOTIFICATION"]
        assert resumed[4]["data"]["text"] == RESUME_NOTICE
        assert all(e["timestamp"] == ts(100) for e in resumed)
        assert state(gw, cid) == "ACTIVE"

        # Now both timers run: a hold stops both.
        gw.hold("alice", cid, 50)
        paused = tail()
        assert nm(paused)[:2] == ["CONVERSATION_PAUSED", "TOPIC_STATE_CHANGED"]
        same_block(
            paused[2:4],
            [("CUSTOMER_SLA_STOPPED", ref.channel_session_id), ("AGENT_SLA_STOPPED", None)],
        )
        assert nm(paused)[4:] == ["BOT_NOTIFICATION"]
        gw.advance(10)
        assert tail() == []
        gw.resume("alice", cid)
        resumed = tail()
        assert nm(resumed)[:2] == ["CONVERSATION_RESUMED", "TOPIC_STATE_CHANGED"]
        assert resumed[0]["data"]["reason"] == "AGENT"
        assert resumed[0]["emitter"]["id"] == "alice"
        same_block(
            resumed[2:4],
            [("CUSTOMER_SLA_STARTED", ref.channel_session_id), ("AGENT_SLA_STARTED", None)],
        )
        assert state(gw, cid) == "ACTIVE"
        # The stale hold timer of the resumed hold never fires.
        gw.advance(45)
        assert tail() == []

        # An agent message while ON_HOLD resumes first.
        gw.hold("alice", cid, 200)
        tail()
        gw.agent_message("alice", cid, "Thanks for waiting")
        back = tail()
        assert nm(back)[:2] == ["CONVERSATION_RESUMED", "TOPIC_STATE_CHANGED"]
        assert back[0]["data"]["reason"] == "AGENT_MESSAGE"
        after_message = nm(back).index("AGENT_MESSAGE")
        assert "BOT_NOTIFICATION" not in nm(back)[:after_message]
        # one trigger: the PRIMARY answered, so no agent SLA starts (nor stops)
        assert nm(back)[after_message:] == [
            "AGENT_MESSAGE",
            "CUSTOMER_SLA_STARTED",
            "BOT_NOTIFICATION",
        ]
        assert state(gw, cid) == "ACTIVE"
        gw.advance(250)  # past the abandoned hold's deadline: nothing from it
        assert "CONVERSATION_RESUMED" not in nm(tail())
        assert state(gw, cid) == "ACTIVE"


# ---------------------------------------------------------------------- agent leaving


def test_agent_leaves_without_wrap_up(make_gateway: MakeGateway) -> None:
    with make_gateway() as gw:
        ready(gw, "alice")
        ref = active_with(gw, "alice")
        cid = ref.conversation_id
        tail = Tail(gw, cid)
        tail()
        gw.advance(5)
        gw.agent_leave("alice", cid)
        left = tail()
        assert nm(left) == [
            "AGENT_UNSUBSCRIBED",
            "TOPIC_STATE_CHANGED",
            "PARTICIPANT_ROLE_CHANGED",
            "AGENT_SLA_STOPPED",
            "CUSTOMER_SLA_STARTED",
        ]
        assert left[0]["data"]["agent_id"] == "alice"
        assert left[0]["data"]["reason"] == "LEFT"
        assert (left[1]["data"]["from"], left[1]["data"]["to"]) == ("ACTIVE", "INACTIVE")
        assert left[2]["data"] == {"participant_id": "bot", "from": "ASSISTANT", "to": "PRIMARY"}
        assert left[4]["channel_session_id"] == ref.channel_session_id
        snapshot = gw.conversation(cid)
        assert snapshot["state"] == "INACTIVE"
        assert participant(snapshot, "bot")["role"] == "PRIMARY"
        alice = participant(snapshot, "alice")
        assert alice["state"] == "UNSUBSCRIBED"
        assert alice["left_at"] == ts(5)


def test_agent_leaves_with_wrap_up_then_applies_it(make_gateway: MakeGateway) -> None:
    with make_gateway(timers={"wrap_up": {"enabled": True, "seconds": 45}}) as gw:
        ready(gw, "alice")
        ref = active_with(gw, "alice")
        cid = ref.conversation_id
        tail = Tail(gw, cid)
        tail()
        gw.agent_leave("alice", cid)
        left = tail()
        assert nm(left) == [
            "PARTICIPANT_ROLE_CHANGED",
            "TOPIC_STATE_CHANGED",
            "PARTICIPANT_ROLE_CHANGED",
            "AGENT_SLA_STOPPED",
            "CUSTOMER_SLA_STARTED",
        ]
        assert left[0]["data"] == {"participant_id": "alice", "from": "PRIMARY", "to": "WRAP_UP"}
        assert (left[1]["data"]["from"], left[1]["data"]["to"]) == ("ACTIVE", "INACTIVE")
        assert left[2]["data"] == {"participant_id": "bot", "from": "ASSISTANT", "to": "PRIMARY"}
        snapshot = gw.conversation(cid)
        assert snapshot["state"] == "INACTIVE"
        alice = participant(snapshot, "alice")
        assert (alice["role"], alice["state"]) == ("WRAP_UP", "SUBSCRIBED")
        assert participant(snapshot, "bot")["role"] == "PRIMARY"

        gw.advance(10)
        gw.apply_wrap_up("alice", cid, ["RESOLVED", "UPSELL"], "all good")
        applied = tail()
        assert nm(applied) == ["WRAPUP_APPLIED", "AGENT_UNSUBSCRIBED"]
        assert applied[0]["type"] == "ACTIVITY"
        assert applied[0]["data"]["agent_id"] == "alice"
        assert applied[0]["data"]["codes"] == ["RESOLVED", "UPSELL"]
        assert applied[0]["data"]["note"] == "all good"
        assert applied[1]["data"]["reason"] == "WRAP_UP_APPLIED"
        assert applied[1]["data"]["agent_id"] == "alice"
        snapshot = gw.conversation(cid)
        assert snapshot["state"] == "INACTIVE"
        assert participant(snapshot, "alice")["state"] == "UNSUBSCRIBED"
        # Its wrap-up timer was stopped with it; applying again is refused.
        refused(gw, cid, GatewayError, lambda: gw.apply_wrap_up("alice", cid, ["X"]))
        gw.advance(60)
        assert "AGENT_UNSUBSCRIBED" not in nm(tail())


def test_wrap_up_timer_expiry_unsubscribes_the_agent(make_gateway: MakeGateway) -> None:
    with make_gateway(timers={"wrap_up": {"enabled": True, "seconds": 45}}) as gw:
        ready(gw, "alice")
        ref = active_with(gw, "alice")
        cid = ref.conversation_id
        gw.advance(7)
        gw.agent_leave("alice", cid)
        tail = Tail(gw, cid)
        tail()
        gw.advance(44.999)
        assert tail() == []
        gw.advance(0.001)
        expired = tail()
        assert nm(expired) == ["AGENT_UNSUBSCRIBED"]
        assert expired[0]["data"]["agent_id"] == "alice"
        assert expired[0]["data"]["reason"] == "WRAP_UP_EXPIRED"
        assert expired[0]["timestamp"] == ts(52)
        snapshot = gw.conversation(cid)
        assert snapshot["state"] == "INACTIVE"
        assert participant(snapshot, "alice")["state"] == "UNSUBSCRIBED"


# ---------------------------------------------------------------------- customer leaving


def test_customer_leaves_and_comes_back_without_wrap_up(make_gateway: MakeGateway) -> None:
    with make_gateway() as gw:
        ready(gw, "alice")
        ref = active_with(gw, "alice")
        cid = ref.conversation_id
        tail = Tail(gw, cid)
        tail()
        gw.end_session(ref.channel_session_id)
        left = tail()
        assert nm(left) == ["CHANNEL_SESSION_ENDED", "TOPIC_STATE_CHANGED", "AGENT_SLA_STOPPED"]
        assert left[0]["data"]["end_reason"] == "CUSTOMER"
        assert (left[1]["data"]["from"], left[1]["data"]["to"]) == ("ACTIVE", "CUSTOMER_LEFT")
        assert state(gw, cid) == "CUSTOMER_LEFT"

        gw.advance(30)
        back = gw.start_session("cust-1", "SMS", "+15550001")
        assert back.conversation_id == cid
        assert back.room_id == ref.room_id
        returned = tail()
        assert nm(returned) == [
            "CHANNEL_SESSION_STARTED",
            "TOPIC_STATE_CHANGED",
            "CUSTOMER_SLA_STARTED",
        ]
        assert (returned[1]["data"]["from"], returned[1]["data"]["to"]) == (
            "CUSTOMER_LEFT",
            "ACTIVE",
        )
        assert returned[2]["channel_session_id"] == back.channel_session_id
        snapshot = gw.conversation(cid)
        assert snapshot["state"] == "ACTIVE"
        alice = participant(snapshot, "alice")
        assert (alice["role"], alice["state"]) == ("PRIMARY", "SUBSCRIBED")
        assert alice["joined_at"] == ts(0)

        # Customer leaves again and the last agent leaves: CLOSING, then CLOSED.
        gw.end_session(back.channel_session_id)
        tail()
        gw.agent_leave("alice", cid)
        closed = tail()
        assert nm(closed) == [
            "AGENT_UNSUBSCRIBED",
            "TOPIC_STATE_CHANGED",
            "TOPIC_STATE_CHANGED",
            "BOT_UNSUBSCRIBED",
        ]
        assert (closed[1]["data"]["from"], closed[1]["data"]["to"]) == (
            "CUSTOMER_LEFT",
            "CLOSING",
        )
        assert (closed[2]["data"]["from"], closed[2]["data"]["to"]) == ("CLOSING", "CLOSED")
        assert state(gw, cid) == "CLOSED"


def test_customer_leaves_and_comes_back_with_wrap_up(make_gateway: MakeGateway) -> None:
    with make_gateway(timers={"wrap_up": {"enabled": True}}) as gw:
        ready(gw, "alice")
        ref = active_with(gw, "alice")
        cid = ref.conversation_id
        tail = Tail(gw, cid)
        tail()
        gw.end_session(ref.channel_session_id)
        left = tail()
        assert nm(left) == [
            "CHANNEL_SESSION_ENDED",
            "TOPIC_STATE_CHANGED",
            "PARTICIPANT_ROLE_CHANGED",
            "AGENT_SLA_STOPPED",
        ]
        assert (left[1]["data"]["from"], left[1]["data"]["to"]) == ("ACTIVE", "WRAP_UP")
        assert left[2]["data"] == {"participant_id": "alice", "from": "PRIMARY", "to": "WRAP_UP"}
        assert state(gw, cid) == "WRAP_UP"

        back = gw.start_session("cust-1", "WHATSAPP", "+4470000")
        assert back.conversation_id == cid
        returned = tail()
        assert returned[0]["name"] == "CHANNEL_SESSION_STARTED"
        assert (returned[1]["data"]["from"], returned[1]["data"]["to"]) == ("WRAP_UP", "INACTIVE")
        assert returned[2]["data"] == {
            "participant_id": "bot",
            "from": "ASSISTANT",
            "to": "PRIMARY",
        }
        assert nm(returned)[3:] == ["CUSTOMER_SLA_STARTED"]
        snapshot = gw.conversation(cid)
        assert snapshot["state"] == "INACTIVE"
        assert participant(snapshot, "alice")["role"] == "WRAP_UP"  # still finishing
        assert participant(snapshot, "bot")["role"] == "PRIMARY"

        gw.end_session(back.channel_session_id)
        again = tail()
        assert nm(again) == ["CHANNEL_SESSION_ENDED", "TOPIC_STATE_CHANGED", "CUSTOMER_SLA_STOPPED"]
        assert (again[1]["data"]["from"], again[1]["data"]["to"]) == ("INACTIVE", "WRAP_UP")

        gw.apply_wrap_up("alice", cid, ["DONE"])
        closing = tail()
        assert nm(closing) == [
            "WRAPUP_APPLIED",
            "TOPIC_STATE_CHANGED",
            "AGENT_UNSUBSCRIBED",
            "TOPIC_STATE_CHANGED",
            "BOT_UNSUBSCRIBED",
        ]
        assert (closing[1]["data"]["from"], closing[1]["data"]["to"]) == ("WRAP_UP", "CLOSING")
        assert closing[2]["data"]["reason"] == "WRAP_UP_APPLIED"
        assert (closing[3]["data"]["from"], closing[3]["data"]["to"]) == ("CLOSING", "CLOSED")
        assert state(gw, cid) == "CLOSED"
        assert [c["id"] for c in gw.history(ref.room_id)] == [cid]


# ---------------------------------------------------------------------- customer inactivity


def test_customer_inactivity_thresholds_expiry_and_archive(make_gateway: MakeGateway) -> None:
    thresholds = [
        {"percent": 50, "action": "NOTIFY_CUSTOMER"},
        {"percent": 80, "action": "NONE"},
    ]
    config = {"customer_inactivity": {"channels": {"WHATSAPP": 600}, "thresholds": thresholds}}
    with make_gateway(timers=config) as gw:
        wa = gw.start_session("cust-wa", "WHATSAPP", "+3161234")
        web = gw.start_session("cust-web", "WEB", "visitor")
        assert wa.conversation_id != web.conversation_id
        wa_tail, web_tail = Tail(gw, wa.conversation_id), Tail(gw, web.conversation_id)
        assert wa_tail()[3]["data"]["seconds"] == 600
        assert web_tail()[3]["data"]["seconds"] == 300

        gw.advance(149.999)
        assert wa_tail() == [] and web_tail() == []
        gw.advance(0.001)
        (half,) = web_tail()
        assert half["name"] == "CUSTOMER_SLA_THRESHOLD"
        assert half["data"]["percent"] == 50
        assert half["data"]["action"] == "NOTIFY_CUSTOMER"
        assert half["channel_session_id"] == web.channel_session_id
        assert half["timestamp"] == ts(150)

        gw.advance(150)  # t = 300
        web_end = web_tail()
        assert [(e["name"], e["timestamp"]) for e in web_end[:2]] == [
            ("CUSTOMER_SLA_THRESHOLD", ts(240)),
            ("CUSTOMER_SLA_EXPIRED", ts(300)),
        ]
        assert web_end[0]["data"]["percent"] == 80
        assert web_end[0]["data"]["action"] == "NONE"
        assert nm(web_end)[2:] == [
            "TOPIC_STATE_CHANGED",
            "CHANNEL_SESSION_ENDED",
            "TOPIC_STATE_CHANGED",
            "BOT_UNSUBSCRIBED",
        ]
        assert (web_end[2]["data"]["from"], web_end[2]["data"]["to"]) == ("CREATED", "CLOSING")
        assert web_end[3]["data"]["end_reason"] == "INACTIVITY"
        assert web_end[3]["channel_session_id"] == web.channel_session_id
        assert (web_end[4]["data"]["from"], web_end[4]["data"]["to"]) == ("CLOSING", "CLOSED")
        assert state(gw, web.conversation_id) == "CLOSED"
        history = gw.history(web.room_id)
        assert [c["id"] for c in history] == [web.conversation_id]
        assert history[0]["state"] == "CLOSED"
        assert history[0]["events"] == gw.events(web.conversation_id)

        (wa_half,) = wa_tail()
        assert (wa_half["name"], wa_half["timestamp"]) == ("CUSTOMER_SLA_THRESHOLD", ts(300))
        gw.advance(299.999)
        (wa_80,) = wa_tail()
        assert (wa_80["name"], wa_80["timestamp"]) == ("CUSTOMER_SLA_THRESHOLD", ts(480))
        assert state(gw, wa.conversation_id) == "CREATED"
        gw.advance(0.001)
        wa_end = wa_tail()
        assert (wa_end[0]["name"], wa_end[0]["timestamp"]) == ("CUSTOMER_SLA_EXPIRED", ts(600))
        assert wa_end[0]["channel_session_id"] == wa.channel_session_id
        ended = [e for e in wa_end if e["name"] == "CHANNEL_SESSION_ENDED"]
        assert [e["data"]["end_reason"] for e in ended] == ["INACTIVITY"]
        assert state(gw, wa.conversation_id) == "CLOSED"
        assert [c["id"] for c in gw.history(wa.room_id)] == [wa.conversation_id]
        assert status_of(gw, "conversations") == {}


def test_without_bot_a_customer_message_stops_inactivity_for_good(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway(bot={"enabled": False}) as gw:
        ref = gw.start_session("cust-1", "WEB", "v")
        tail = Tail(gw, ref.conversation_id)
        assert nm(tail()) == [
            "CHANNEL_SESSION_STARTED",
            "TOPIC_STATE_CHANGED",
            "CUSTOMER_SLA_STARTED",
        ]
        gw.advance(200)
        gw.customer_message(ref.channel_session_id, "still here")
        # No bot, no agent: the message stops the timer and nothing restarts it.
        assert nm(tail()) == ["CUSTOMER_MESSAGE", "CUSTOMER_SLA_STOPPED"]
        gw.advance(1000)
        assert tail() == []
        assert state(gw, ref.conversation_id) == "CREATED"


# ---------------------------------------------------------------------- agent SLA


def test_agent_sla_expiry_requests_again_and_second_agent_gets_it(
    make_gateway: MakeGateway,
) -> None:
    sla = {"agent_sla": {"thresholds": [{"percent": 50, "action": "NOTIFY_AGENT"}]}}
    with make_gateway(timers=sla) as gw:
        ready(gw, "bob", max_conversations=1)
        ref = active_with(gw, "bob")
        cid = ref.conversation_id
        tail = Tail(gw, cid)
        tail()
        gw.advance(10)
        ready(gw, "carol")
        gw.customer_message(ref.channel_session_id, "hello?")  # re-arms the SLA at t=10
        assert nm(tail()) == ["CUSTOMER_MESSAGE", "AGENT_SLA_STARTED"]
        gw.advance(30)
        (threshold,) = tail()
        assert threshold["name"] == "AGENT_SLA_THRESHOLD"
        assert threshold["data"]["percent"] == 50
        assert threshold["data"]["action"] == "NOTIFY_AGENT"
        assert threshold["timestamp"] == ts(40)
        gw.advance(30)
        expiry = tail()
        assert nm(expiry)[:5] == [
            "AGENT_SLA_EXPIRED",
            "TOPIC_STATE_CHANGED",
            "AGENT_UNSUBSCRIBED",
            "PARTICIPANT_ROLE_CHANGED",
            "AGENT_REQUESTED",
        ]
        assert expiry[0]["timestamp"] == ts(70)
        assert (expiry[1]["data"]["from"], expiry[1]["data"]["to"]) == ("ACTIVE", "INACTIVE")
        assert expiry[2]["data"] == {"agent_id": "bob", "reason": "SLA_EXPIRED"}
        assert expiry[3]["data"] == {"participant_id": "bot", "from": "ASSISTANT", "to": "PRIMARY"}
        assert expiry[4]["data"]["queue"] == "default"
        assert_routed(expiry[5:], "carol", before="INACTIVE")
        snapshot = gw.conversation(cid)
        assert snapshot["state"] == "ACTIVE"
        assert participant(snapshot, "bob")["state"] == "UNSUBSCRIBED"
        assert participant(snapshot, "carol")["role"] == "PRIMARY"


def test_agent_sla_expiry_does_not_route_back_to_the_expired_agent(
    make_gateway: MakeGateway,
) -> None:
    """The agent whose SLA expired was removed; the new request must not go straight back to it.

    bob has spare capacity (max 3); carol is READY and free. The conversation must end up with
    carol, and bob must not be re-subscribed to the conversation he just failed.
    """
    with make_gateway() as gw:
        ready(gw, "bob")
        ref = active_with(gw, "bob")
        ready(gw, "carol")
        tail = Tail(gw, ref.conversation_id)
        tail()
        gw.advance(60)
        expiry = tail()
        assert nm(expiry)[:5] == [
            "AGENT_SLA_EXPIRED",
            "TOPIC_STATE_CHANGED",
            "AGENT_UNSUBSCRIBED",
            "PARTICIPANT_ROLE_CHANGED",
            "AGENT_REQUESTED",
        ]
        subscribed = [e["data"]["agent_id"] for e in expiry if e["name"] == "AGENT_SUBSCRIBED"]
        assert subscribed == ["carol"]


def test_per_queue_agent_sla(make_gateway: MakeGateway) -> None:
    with make_gateway(routing={"queues": {"billing": {"agent_sla_seconds": 90}}}) as gw:
        ready(gw, "bob", queues=["billing"], max_conversations=1)
        ref = gw.start_session("cust-1", "WEB", "v")
        cid = ref.conversation_id
        tail = Tail(gw, cid)
        tail()
        gw.request_agent(cid, queue="billing")
        routed = tail()
        assert nm(routed) == ["AGENT_REQUESTED", "CUSTOMER_SLA_STOPPED", *ROUTED]
        assert routed[0]["data"]["queue"] == "billing"
        assert_routed(routed[2:], "bob", before="CREATED", sla_seconds=90)
        ready(gw, "carol", queues=["billing"])
        gw.advance(89.999)
        assert tail() == []
        gw.advance(0.001)
        expiry = tail()
        assert expiry[0]["name"] == "AGENT_SLA_EXPIRED"
        assert expiry[0]["timestamp"] == ts(90)
        requested = [e for e in expiry if e["name"] == "AGENT_REQUESTED"]
        assert [e["data"]["queue"] for e in requested] == ["billing"]
        assert_routed(expiry[5:], "carol", before="INACTIVE", sla_seconds=90)


# ---------------------------------------------------------------------- routing


def test_no_agent_available_within_ttl(make_gateway: MakeGateway) -> None:
    with make_gateway(routing={"request_ttl_seconds": 50}, **BOT) as gw:
        ref = gw.start_session("cust-1", "WEB", "v")
        cid = ref.conversation_id
        tail = Tail(gw, cid)
        tail()
        gw.request_agent(cid)
        requested = tail()
        assert nm(requested) == ["AGENT_REQUESTED", "CUSTOMER_SLA_STOPPED"]
        assert status_of(gw, "queues") == {"default": 1}
        # Pending: a second request is refused.
        refused(gw, cid, IllegalTransitionError, lambda: gw.request_agent(cid))

        gw.advance(49.999)
        assert tail() == []
        gw.advance(0.001)
        none = tail()
        assert nm(none) == ["NO_AGENT_AVAILABLE", "CUSTOMER_SLA_STARTED", "BOT_NOTIFICATION"]
        assert none[0]["data"]["queue"] == "default"
        assert none[0]["timestamp"] == ts(50)
        assert none[1]["channel_session_id"] == ref.channel_session_id
        assert none[2]["emitter"]["type"] == "BOT"
        assert none[2]["type"] == "NOTIFICATION"
        assert none[2]["data"]["text"] == NO_AGENT_NOTICE
        assert status_of(gw, "queues") == {}
        assert state(gw, cid) == "CREATED"

        # No request pending any more: a new one is accepted.
        gw.request_agent(cid)
        assert nm(tail()) == ["AGENT_REQUESTED", "CUSTOMER_SLA_STOPPED"]
        assert status_of(gw, "queues") == {"default": 1}


def test_offer_accepted_with_agent_join(make_gateway: MakeGateway) -> None:
    with make_gateway(routing={"auto_accept": False, "accept_timeout_seconds": 20}) as gw:
        ready(gw, "bob")
        ref = gw.start_session("cust-1", "WEB", "v")
        cid = ref.conversation_id
        tail = Tail(gw, cid)
        tail()
        gw.request_agent(cid)
        offered = tail()
        assert nm(offered) == ["AGENT_REQUESTED", "CUSTOMER_SLA_STOPPED", "AGENT_OFFERED"]
        assert offered[2]["data"]["agent_id"] == "bob"
        assert offered[2]["data"]["queue"] == "default"
        assert state(gw, cid) == "CREATED"
        gw.advance(5)
        gw.agent_join("bob", cid)
        assert_routed(tail(), "bob", before="CREATED")
        assert state(gw, cid) == "ACTIVE"
        gw.agent_message("bob", cid, "hi")
        tail()
        gw.advance(30)  # past the accept timeout: the accepted offer raises no RONA
        assert "RONA" not in nm(tail())
        assert status_of(gw, "agents") == {"READY": 1}


def test_offer_not_accepted_is_rona_and_goes_to_another_agent(make_gateway: MakeGateway) -> None:
    with make_gateway(routing={"auto_accept": False, "accept_timeout_seconds": 20}) as gw:
        ready(gw, "bob")
        gw.agent_login("carol")
        ref = gw.start_session("cust-1", "WEB", "v")
        cid = ref.conversation_id
        tail = Tail(gw, cid)
        tail()
        gw.request_agent(cid)
        assert nm(tail())[-1] == "AGENT_OFFERED"
        gw.agent_ready("carol")
        assert tail() == []  # the request is held by bob's offer
        gw.advance(19.999)
        assert tail() == []
        gw.advance(0.001)
        rona = tail()
        assert nm(rona) == ["RONA", "AGENT_OFFERED"]
        assert rona[0]["data"]["agent_id"] == "bob"
        assert rona[0]["timestamp"] == ts(20)
        assert rona[1]["data"]["agent_id"] == "carol"
        assert status_of(gw, "agents") == {"NOT_READY": 1, "READY": 1}
        gw.agent_join("carol", cid)
        assert_routed(tail(), "carol", before="CREATED")
        assert participant(gw.conversation(cid), "carol")["role"] == "PRIMARY"
        assert status_of(gw, "queues") == {}


# ---------------------------------------------------------------------- END_CONVERSATION


def test_end_conversation_by_operator_and_archived_afterwards(make_gateway: MakeGateway) -> None:
    with make_gateway() as gw:
        ready(gw, "bob")
        ref = active_with(gw, "bob")
        cid = ref.conversation_id
        sms = gw.start_session("cust-1", "SMS", "+1555")
        tail = Tail(gw, cid)
        tail()
        gw.advance(12)
        gw.end_conversation(cid)
        ended = tail()
        assert nm(ended)[:2] == ["END_CONVERSATION", "TOPIC_STATE_CHANGED"]
        assert ended[0]["data"]["by"] == "OPERATOR"
        assert (ended[1]["data"]["from"], ended[1]["data"]["to"]) == ("ACTIVE", "CLOSING")
        session_ends = [e for e in ended if e["name"] == "CHANNEL_SESSION_ENDED"]
        assert {e["channel_session_id"] for e in session_ends} == {
            ref.channel_session_id,
            sms.channel_session_id,
        }
        assert all(e["data"]["end_reason"] == "FORCE_CLOSED" for e in session_ends)
        unsubscribed = [e for e in ended if e["name"] == "AGENT_UNSUBSCRIBED"]
        assert [e["data"] for e in unsubscribed] == [{"agent_id": "bob", "reason": "FORCE_CLOSED"}]
        assert nm(ended)[-2:] == ["TOPIC_STATE_CHANGED", "BOT_UNSUBSCRIBED"]
        assert (ended[-2]["data"]["from"], ended[-2]["data"]["to"]) == ("CLOSING", "CLOSED")

        snapshot = gw.conversation(cid)
        events = gw.events(cid)
        assert snapshot["state"] == "CLOSED"
        assert snapshot["ended_at"] == ts(12)
        assert snapshot["seq"] == len(events) == tail.seen
        assert all(s["state"] == "ENDED" for s in snapshot["channel_sessions"])
        assert all(p["state"] == "UNSUBSCRIBED" for p in snapshot["participants"])
        assert status_of(gw, "conversations") == {}
        assert [c["id"] for c in gw.history(ref.room_id)] == [cid]

        calls: dict[str, Callable[[], object]] = {
            "agent_message": lambda: gw.agent_message("bob", cid, "x"),
            "customer_message": lambda: gw.customer_message(ref.channel_session_id, "x"),
            "end_session": lambda: gw.end_session(ref.channel_session_id),
            "request_agent": lambda: gw.request_agent(cid),
            "agent_join": lambda: gw.agent_join("bob", cid),
            "hold": lambda: gw.hold("bob", cid, 10),
            "resume": lambda: gw.resume("bob", cid),
            "agent_leave": lambda: gw.agent_leave("bob", cid),
            "apply_wrap_up": lambda: gw.apply_wrap_up("bob", cid, ["X"]),
            "set_data": lambda: gw.set_data(cid, "k", "v"),
            "end_conversation": lambda: gw.end_conversation(cid),
        }
        for what, call in calls.items():
            with pytest.raises(GatewayError) as info:
                call()
            assert not isinstance(info.value, BadArgumentError), what
            assert gw.conversation(cid) == snapshot, what
            assert gw.events(cid) == events, what
        for call in (calls["agent_message"], calls["customer_message"]):
            with pytest.raises(IllegalTransitionError):
                call()
        gw.advance(1000)
        assert gw.events(cid) == events

        # A late activity goes to the archive with the next sequence number.
        gw.add_activity(cid, "RECORDING_READY", {"url": "https://rec.example/1"})
        after = gw.events(cid)
        assert after[:-1] == events
        late = after[-1]
        assert late["seq"] == len(events) + 1
        assert late["name"] == "RECORDING_READY"
        assert late["type"] == "ACTIVITY"
        assert late["data"] == {"url": "https://rec.example/1"}
        assert gw.conversation(cid)["seq"] == len(events) + 1
        assert gw.conversation(cid)["state"] == "CLOSED"
        (archived,) = gw.history(ref.room_id)
        assert archived["events"] == after


def test_closed_is_terminal_and_room_gets_a_new_conversation(make_gateway: MakeGateway) -> None:
    with make_gateway() as gw:
        first = gw.start_session("cust-1", "WEB", "v")
        gw.end_session(first.channel_session_id)
        assert state(gw, first.conversation_id) == "CLOSED"
        first_events = gw.events(first.conversation_id)

        gw.advance(10)
        second = gw.start_session("cust-1", "WEB", "v")
        assert second.conversation_id != first.conversation_id
        assert second.room_id == first.room_id
        assert state(gw, second.conversation_id) == "CREATED"
        assert names(gw, second.conversation_id)[:2] == [
            "CHANNEL_SESSION_STARTED",
            "TOPIC_STATE_CHANGED",
        ]
        history = gw.history(first.room_id)
        assert [c["id"] for c in history] == [first.conversation_id]
        assert history[0]["events"] == first_events
        assert gw.events(first.conversation_id) == first_events

        # The same room explicitly: it joins the live conversation.
        again = gw.start_session("cust-1", "SMS", "+1", room_id=first.room_id)
        assert again.conversation_id == second.conversation_id

        gw.end_conversation(second.conversation_id)
        gw.advance(10)
        third = gw.start_session("cust-1", "WEB", "v")
        assert third.conversation_id not in {first.conversation_id, second.conversation_id}
        history = gw.history(first.room_id)
        assert [c["id"] for c in history] == [first.conversation_id, second.conversation_id]
        assert [c["created_at"] for c in history] == [ts(0), ts(10)]
        assert all(c["state"] == "CLOSED" for c in history)


# ---------------------------------------------------------------------- duplicates, limits


def test_duplicate_provider_message_id_is_ignored(make_gateway: MakeGateway) -> None:
    with make_gateway() as gw:
        ref = gw.start_session("cust-1", "WHATSAPP", "+1")
        gw.customer_message(ref.channel_session_id, "hello", message_id="wamid-1")
        events = gw.events(ref.conversation_id)
        gw.customer_message(ref.channel_session_id, "hello", message_id="wamid-1")
        gw.customer_message(ref.channel_session_id, "different text", message_id="wamid-1")
        assert gw.events(ref.conversation_id) == events
        messages = [e for e in events if e["name"] == "CUSTOMER_MESSAGE"]
        assert len(messages) == 1
        assert messages[0]["data"]["message_id"] == "wamid-1"
        gw.customer_message(ref.channel_session_id, "second", message_id="wamid-2")
        assert names(gw, ref.conversation_id).count("CUSTOMER_MESSAGE") == 2


def test_agent_limit_queueing_join_refusal_and_logout(make_gateway: MakeGateway) -> None:
    with make_gateway() as gw:
        ready(gw, "bob", max_conversations=1)
        one = active_with(gw, "bob", customer="cust-1")
        two = gw.start_session("cust-2", "WEB", "v2")
        gw.request_agent(two.conversation_id)
        assert state(gw, two.conversation_id) == "CREATED"
        assert status_of(gw, "queues") == {"default": 1}
        assert "AGENT_SUBSCRIBED" not in names(gw, two.conversation_id)

        refused(
            gw,
            two.conversation_id,
            IllegalTransitionError,
            lambda: gw.agent_join("bob", two.conversation_id),
        )

        tail = Tail(gw, two.conversation_id)
        tail()
        gw.agent_leave("bob", one.conversation_id)
        assert_routed(tail(), "bob", before="CREATED")
        assert status_of(gw, "queues") == {}
        assert state(gw, one.conversation_id) == "INACTIVE"

        gw.agent_logout("bob")
        out = tail()
        assert out[0]["name"] == "AGENT_UNSUBSCRIBED"
        assert out[0]["data"] == {"agent_id": "bob", "reason": "AGENT_LOGOUT"}
        assert state(gw, two.conversation_id) == "INACTIVE"
        assert status_of(gw, "agents") == {}
        with pytest.raises(UnknownIdError):
            gw.agent_ready("bob")


def test_supervisor_join_changes_no_state_and_no_timer(make_gateway: MakeGateway) -> None:
    with make_gateway() as gw:
        ready(gw, "alice")
        gw.agent_login("sup", max_conversations=1)
        created = gw.start_session("cust-1", "WEB", "v1")
        active = active_with(gw, "alice", customer="cust-2")
        gw.advance(10)  # joining later than the timers were armed: a re-arm would show
        for ref, expected in ((created, "CREATED"), (active, "ACTIVE")):
            tail = Tail(gw, ref.conversation_id)
            tail()
            gw.agent_join("sup", ref.conversation_id, role="SILENT_MONITOR")
            joined = tail()
            assert nm(joined) == ["AGENT_SUBSCRIBED"]
            assert joined[0]["data"] == {"agent_id": "sup", "role": "SILENT_MONITOR"}
            snapshot = gw.conversation(ref.conversation_id)
            assert snapshot["state"] == expected
            sup = participant(snapshot, "sup")
            assert (sup["role"], sup["state"]) == ("SILENT_MONITOR", "SUBSCRIBED")
            assert participant(snapshot, "bot")["role"] == (
                "PRIMARY" if expected == "CREATED" else "ASSISTANT"
            )
        # The CREATED conversation's inactivity timer still expires 300 s after it was armed.
        gw.advance(290)
        assert state(gw, created.conversation_id) == "CLOSED"
        created_events = gw.events(created.conversation_id)
        assert [e["timestamp"] for e in created_events if e["name"] == "CUSTOMER_SLA_EXPIRED"] == [
            ts(300)
        ]
        # The ACTIVE one: the supervisor did not re-arm the agent SLA (expired at 60 s).
        expired = [e for e in gw.events(active.conversation_id) if e["name"] == "AGENT_SLA_EXPIRED"]
        assert expired[0]["timestamp"] == ts(60)


def test_whisper_supervisor_leaving_changes_nothing(make_gateway: MakeGateway) -> None:
    with make_gateway() as gw:
        ready(gw, "alice")
        gw.agent_login("sup")
        ref = active_with(gw, "alice")
        cid = ref.conversation_id
        gw.agent_join("sup", cid, role="WHISPER")
        tail = Tail(gw, cid)
        tail()
        gw.agent_leave("sup", cid)
        left = tail()
        assert nm(left) == ["AGENT_UNSUBSCRIBED"]
        assert left[0]["data"]["agent_id"] == "sup"
        assert state(gw, cid) == "ACTIVE"
        assert participant(gw.conversation(cid), "alice")["role"] == "PRIMARY"


# ---------------------------------------------------------------------- errors


def test_unknown_ids(make_gateway: MakeGateway) -> None:
    with make_gateway() as gw:
        ready(gw, "alice")
        ref = active_with(gw, "alice")
        cid = ref.conversation_id
        for call in (
            lambda: gw.conversation("conv-nope"),
            lambda: gw.events("conv-nope"),
            lambda: gw.customer_message("cs-nope", "x"),
            lambda: gw.end_session("cs-nope"),
            lambda: gw.request_agent("conv-nope"),
            lambda: gw.set_data("conv-nope", "k", 1),
            lambda: gw.end_conversation("conv-nope"),
            lambda: gw.add_activity("conv-nope", "X", {}),
            lambda: gw.agent_join("alice", "conv-nope"),
            lambda: gw.agent_message("alice", "conv-nope", "x"),
            lambda: gw.agent_ready("nobody"),
            lambda: gw.agent_not_ready("nobody"),
            lambda: gw.agent_logout("nobody"),
            lambda: gw.agent_join("nobody", cid),
            lambda: gw.agent_message("nobody", cid, "x"),
            lambda: gw.agent_leave("nobody", cid),
            lambda: gw.history("room-nope"),
        ):
            refused(gw, cid, UnknownIdError, call)


def test_bad_arguments(make_gateway: MakeGateway) -> None:
    with make_gateway() as gw:
        ready(gw, "alice")
        gw.agent_login("sup")
        ref = active_with(gw, "alice")
        cid, cs = ref.conversation_id, ref.channel_session_id
        for call in (
            lambda: gw.start_session("cust-1", "FAX", "v"),
            lambda: gw.start_session("cust-1", 3, "v"),  # type: ignore[arg-type]
            lambda: gw.end_session(cs, reason="BORED"),
            lambda: gw.end_session(cs, reason="FORCE_CLOSED"),
            lambda: gw.agent_leave("alice", cid, reason="BORED"),
            lambda: gw.agent_join("sup", cid, role="BOSS"),
            lambda: gw.agent_join("sup", cid, role="WRAP_UP"),
            lambda: gw.customer_message(cs, 42),  # type: ignore[arg-type]
            lambda: gw.customer_message(cs, None),  # type: ignore[arg-type]
            lambda: gw.agent_message("alice", cid, b"bytes"),  # type: ignore[arg-type]
            lambda: gw.start_session("cust-1", "WEB", "v", data={"x": object()}),
            lambda: gw.add_activity(cid, "X", {"x": {1, 2}}),
            lambda: gw.add_activity(cid, "X", {1: "non-string key"}),  # type: ignore[dict-item]
            lambda: gw.set_data(cid, "k", [1, 2]),  # type: ignore[arg-type]
            lambda: gw.hold("alice", cid, "10"),  # type: ignore[arg-type]
            lambda: gw.events(cid, after_seq=-1),
            lambda: gw.advance(-1),
            lambda: gw.apply_wrap_up("alice", cid, "not-a-list"),
        ):
            refused(gw, cid, BadArgumentError, call)


def test_illegal_transitions(make_gateway: MakeGateway) -> None:
    with make_gateway() as gw:
        ready(gw, "alice")
        gw.agent_login("carol")
        created = gw.start_session("cust-2", "WEB", "v")
        ref = active_with(gw, "alice")
        cid = ref.conversation_id
        for conversation_id, call in (
            (cid, lambda: gw.agent_join("carol", cid, role="PRIMARY")),
            (cid, lambda: gw.agent_join("alice", cid, role="ASSISTANT")),
            (cid, lambda: gw.resume("alice", cid)),
            (cid, lambda: gw.request_agent(cid)),
            (cid, lambda: gw.apply_wrap_up("alice", cid, ["X"])),
            (created.conversation_id, lambda: gw.hold("alice", created.conversation_id, 10)),
        ):
            refused(gw, conversation_id, IllegalTransitionError, call)
        # An ASSISTANT is fine, and the conversation keeps its one PRIMARY.
        gw.agent_join("carol", cid, role="ASSISTANT")
        assert participant(gw.conversation(cid), "carol")["role"] == "ASSISTANT"
        assert participant(gw.conversation(cid), "alice")["role"] == "PRIMARY"


def test_advance_on_real_time_gateway_is_refused(make_gateway: MakeGateway) -> None:
    with make_gateway(virtual_time=False) as gw:
        ref = gw.start_session("cust-1", "WEB", "v")
        refused(gw, ref.conversation_id, BadArgumentError, lambda: gw.advance(1))
        assert state(gw, ref.conversation_id) == "CREATED"


# ---------------------------------------------------------------------- data, rooms


def test_set_data_at_most_ten_keys(make_gateway: MakeGateway) -> None:
    with make_gateway() as gw:
        ref = gw.start_session("cust-1", "WEB", "v")
        cid = ref.conversation_id
        tail = Tail(gw, cid)
        tail()
        values: list[str | int | float | bool | None] = [
            "gold",
            3,
            2.5,
            True,
            None,
            "x",
            0,
            -1,
            False,
            "last",
        ]
        for i, value in enumerate(values):
            gw.set_data(cid, f"k{i}", value)
        changed = tail()
        assert nm(changed) == ["CONVERSATION_DATA_CHANGED"] * 10
        assert [(e["data"]["key"], e["data"]["value"]) for e in changed] == [
            (f"k{i}", v) for i, v in enumerate(values)
        ]
        assert all(e["type"] == "NOTIFICATION" for e in changed)
        refused(gw, cid, BadArgumentError, lambda: gw.set_data(cid, "k10", 1))
        # Changing an existing key is not an 11th key.
        gw.set_data(cid, "k0", "platinum")
        (change,) = tail()
        assert change["data"] == {"key": "k0", "value": "platinum"}
        expected = {f"k{i}": v for i, v in enumerate(values)} | {"k0": "platinum"}
        assert gw.conversation(cid)["data"] == expected
        gw.end_session(ref.channel_session_id)
        (archived,) = gw.history(ref.room_id)
        assert archived["data"] == expected


def test_start_session_with_unknown_or_foreign_room(make_gateway: MakeGateway) -> None:
    with make_gateway() as gw:
        with pytest.raises(UnknownIdError):
            gw.start_session("cust-1", "WEB", "v", room_id="room-does-not-exist")
        assert status_of(gw, "conversations") == {}
        mine = gw.start_session("cust-1", "WEB", "v")
        before = gw.events(mine.conversation_id)
        with pytest.raises(GatewayError):
            gw.start_session("cust-2", "WEB", "v", room_id=mine.room_id)
        assert gw.events(mine.conversation_id) == before
        assert status_of(gw, "conversations") == {"CREATED": 1}


# ---------------------------------------------------------------------- more timer rules


def test_timers_due_at_the_same_instant_fire_in_armed_order(make_gateway: MakeGateway) -> None:
    with make_gateway(bot={"enabled": False}) as gw:
        refs = [gw.start_session("cust-1", channel, "id") for channel in ("WEB", "SMS", "APP")]
        cid = refs[0].conversation_id
        assert {r.conversation_id for r in refs} == {cid}
        tail = Tail(gw, cid)
        tail()
        gw.advance(300)
        fired = [e for e in tail() if e["name"] == "CUSTOMER_SLA_EXPIRED"]
        assert [e["channel_session_id"] for e in fired] == [r.channel_session_id for r in refs]
        assert state(gw, cid) == "CLOSED"


def test_new_session_while_on_hold_starts_its_timer_at_resume(make_gateway: MakeGateway) -> None:
    with make_gateway() as gw:
        ready(gw, "alice")
        ref = active_with(gw, "alice")
        cid = ref.conversation_id
        gw.hold("alice", cid, 100)
        tail = Tail(gw, cid)
        tail()
        sms = gw.start_session("cust-1", "SMS", "+1")
        assert sms.conversation_id == cid
        assert nm(tail()) == ["CHANNEL_SESSION_STARTED"]
        gw.advance(400)  # nothing runs while ON_HOLD... but the hold itself expires at 100
        resumed = tail()
        assert resumed[0]["name"] == "CONVERSATION_RESUMED"
        assert resumed[0]["timestamp"] == ts(100)
        started = {e["channel_session_id"] for e in resumed if e["name"] == "CUSTOMER_SLA_STARTED"}
        assert started == {ref.channel_session_id, sms.channel_session_id}


def test_assistant_joining_rearms_the_agent_sla_and_expiry_removes_every_agent(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway() as gw:
        ready(gw, "alice")
        gw.agent_login("carol")
        ref = active_with(gw, "alice")
        cid = ref.conversation_id
        gw.advance(10)
        tail = Tail(gw, cid)
        tail()
        gw.agent_join("carol", cid, role="ASSISTANT")
        joined = tail()
        assert nm(joined) == ["AGENT_SUBSCRIBED", "AGENT_SLA_STARTED"]
        assert joined[0]["data"] == {"agent_id": "carol", "role": "ASSISTANT"}
        gw.advance(59.999)
        assert tail() == []
        gw.advance(0.001)
        expiry = tail()
        assert expiry[0]["name"] == "AGENT_SLA_EXPIRED"
        assert expiry[0]["timestamp"] == ts(70)
        removed = [e["data"] for e in expiry if e["name"] == "AGENT_UNSUBSCRIBED"]
        assert sorted(removed, key=lambda d: d["agent_id"]) == [
            {"agent_id": "alice", "reason": "SLA_EXPIRED"},
            {"agent_id": "carol", "reason": "SLA_EXPIRED"},
        ]
        changes = [e for e in expiry if e["name"] == "TOPIC_STATE_CHANGED"]
        assert (changes[0]["data"]["from"], changes[0]["data"]["to"]) == ("ACTIVE", "INACTIVE")


def test_direct_transfer_starts_no_customer_inactivity(make_gateway: MakeGateway) -> None:
    with make_gateway() as gw:
        ready(gw, "alice")
        ref = active_with(gw, "alice")
        cid = ref.conversation_id
        tail = Tail(gw, cid)
        tail()
        gw.agent_leave("alice", cid, reason="DIRECT_TRANSFER")
        left = tail()
        assert nm(left) == [
            "AGENT_UNSUBSCRIBED",
            "TOPIC_STATE_CHANGED",
            "PARTICIPANT_ROLE_CHANGED",
            "AGENT_SLA_STOPPED",
        ]
        assert left[0]["data"] == {"agent_id": "alice", "reason": "DIRECT_TRANSFER"}
        assert state(gw, cid) == "INACTIVE"


def test_agent_message_allowed_in_customer_left_refused_in_wrap_up(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway() as gw:
        ready(gw, "alice")
        ref = active_with(gw, "alice")
        gw.end_session(ref.channel_session_id)
        assert state(gw, ref.conversation_id) == "CUSTOMER_LEFT"
        gw.agent_message("alice", ref.conversation_id, "for the record")
        assert names(gw, ref.conversation_id)[-1] == "AGENT_MESSAGE"
        assert state(gw, ref.conversation_id) == "CUSTOMER_LEFT"
    with make_gateway(timers={"wrap_up": {"enabled": True}}) as gw:
        ready(gw, "alice")
        ref = active_with(gw, "alice")
        gw.end_session(ref.channel_session_id)
        assert state(gw, ref.conversation_id) == "WRAP_UP"
        refused(
            gw,
            ref.conversation_id,
            IllegalTransitionError,
            lambda: gw.agent_message("alice", ref.conversation_id, "too late"),
        )


# ---------------------------------------------------------------------- more routing


def test_priority_queue_first_then_oldest_request(make_gateway: MakeGateway) -> None:
    with make_gateway(routing={"queues": {"vip": {"priority": 5}}}) as gw:
        gw.agent_login("a1", queues=["default", "vip"], max_conversations=1)
        first = gw.start_session("cust-1", "WEB", "v")
        gw.request_agent(first.conversation_id)
        gw.advance(1)
        vip = gw.start_session("cust-2", "WEB", "v")
        gw.request_agent(vip.conversation_id, queue="vip")
        gw.advance(1)
        last = gw.start_session("cust-3", "WEB", "v")
        gw.request_agent(last.conversation_id)
        assert status_of(gw, "queues") == {"default": 2, "vip": 1}
        gw.agent_ready("a1")
        assert state(gw, vip.conversation_id) == "ACTIVE"
        assert state(gw, first.conversation_id) == "CREATED"
        gw.agent_leave("a1", vip.conversation_id)  # frees capacity: the oldest default next
        assert state(gw, first.conversation_id) == "ACTIVE"
        assert state(gw, last.conversation_id) == "CREATED"
        assert status_of(gw, "queues") == {"default": 1}


def test_pending_request_cancelled_by_direct_join_and_by_closing(make_gateway: MakeGateway) -> None:
    with make_gateway() as gw:
        gw.agent_login("a1")
        ref = gw.start_session("cust-1", "WEB", "v")
        cid = ref.conversation_id
        gw.request_agent(cid)
        assert status_of(gw, "queues") == {"default": 1}
        gw.agent_join("a1", cid)
        assert state(gw, cid) == "ACTIVE"
        assert status_of(gw, "queues") == {}
        gw.agent_leave("a1", cid)
        gw.request_agent(cid)
        assert status_of(gw, "queues") == {"default": 1}
        gw.end_session(ref.channel_session_id)  # INACTIVE, last customer session: CLOSING
        assert state(gw, cid) == "CLOSED"
        assert status_of(gw, "queues") == {}
        events = gw.events(cid)
        gw.advance(500)  # no TTL expiry, no NO_AGENT_AVAILABLE on the closed conversation
        assert gw.events(cid) == events


def test_request_while_the_only_ready_agent_is_wrapping_up_does_not_hang(
    make_gateway: MakeGateway,
) -> None:
    """request_agent in INACTIVE is accepted (docs/STATES.md) and returns when quiescent (README).

    alice (READY, capacity left) is still subscribed in role WRAP_UP to the conversation.
    """
    with make_gateway(timers={"wrap_up": {"enabled": True}}) as gw:
        ready(gw, "alice")
        ref = active_with(gw, "alice")
        cid = ref.conversation_id
        gw.agent_leave("alice", cid)
        assert state(gw, cid) == "INACTIVE"
        with watchdog(3, "request_agent"):
            gw.request_agent(cid)
        assert "AGENT_REQUESTED" in names(gw, cid)[-3:]
        ready(gw, "carol")
        assert state(gw, cid) == "ACTIVE"


def test_request_while_a_ready_supervisor_monitors_does_not_hang(
    make_gateway: MakeGateway,
) -> None:
    """A READY agent monitoring the conversation as SILENT_MONITOR; the bot then asks for an agent."""
    with make_gateway() as gw:
        ready(gw, "sup")
        ref = gw.start_session("cust-1", "WEB", "v")
        cid = ref.conversation_id
        gw.agent_join("sup", cid, role="SILENT_MONITOR")
        with watchdog(3, "customer_message"):
            gw.customer_message(ref.channel_session_id, "agent please")
        assert "AGENT_REQUESTED" in names(gw, cid)
        ready(gw, "carol")
        assert state(gw, cid) == "ACTIVE"


# ---------------------------------------------------------------------- storage


def test_add_activity_right_after_the_conversation_closed(make_gateway: MakeGateway) -> None:
    """The gateway just saw the conversation live; the late activity must still be archived."""
    with make_gateway() as gw:
        ref = gw.start_session("cust-1", "WEB", "v")
        cid = ref.conversation_id
        gw.end_conversation(cid)
        gw.add_activity(cid, "RECORDING_READY", {"url": "https://rec.example/2"})
        events = gw.events(cid)
        assert events[-1]["name"] == "RECORDING_READY"
        assert events[-1]["seq"] == len(events)
        assert events[-2]["name"] == "BOT_UNSUBSCRIBED"


def test_restart_keeps_rooms_and_archive_and_never_reuses_ids(tmp_path: Path) -> None:
    config = storage_config(tmp_path / "shared")
    config["logging"] = {"level": "error"}
    with watchdog(20, "the test"):
        with Gateway.embedded(config, seed=0) as gw:
            first = gw.start_session("cust-1", "WEB", "v")
            gw.end_session(first.channel_session_id)
            archived = gw.events(first.conversation_id)
        with Gateway.embedded(config, seed=0) as gw:
            assert [c["id"] for c in gw.history(first.room_id)] == [first.conversation_id]
            assert gw.events(first.conversation_id) == archived
            again = gw.start_session("cust-1", "WEB", "v")
            assert again.room_id == first.room_id  # rooms are permanent
            assert again.conversation_id != first.conversation_id
            assert again.channel_session_id != first.channel_session_id
            other = gw.start_session("cust-2", "WEB", "v")
            assert other.room_id != first.room_id


# ---------------------------------------------------------------------- closed and closing


def test_calls_to_a_closed_or_departed_conversation_say_which_and_why(
    make_gateway: MakeGateway,
) -> None:
    """The gateway sends a call to the conversation's host, looks the host up again when that
    host no longer has it, and retries once. Refused: a CLOSED conversation (the TopicMonitor
    says so), and one its host no longer has although the TopicMonitor still lists it (it closed
    and left, or moved, meanwhile: here its entities are taken off the host)."""
    with make_gateway() as gw:
        closed = gw.start_session("cust-1", "WEB", "v")
        cid, cs = closed.conversation_id, closed.channel_session_id
        gw.end_conversation(cid)
        departed = gw.start_session("cust-2", "WEB", "w")
        did, ds = departed.conversation_id, departed.channel_session_id
        host = testing.actor(gw, testing.host_of(gw, did))
        del host.entities[f"c:{did}"], host.entities[f"s:{ds}"]

        closed_at, closing = f"on conversation {cid} in state CLOSED", "its conversation is closing"
        illegal: list[tuple[Callable[[], object], str]] = [
            (lambda: gw.set_data(cid, "k", 1), f"set_data refused {closed_at}"),
            (lambda: gw.customer_message(cs, "x"), f"customer_message refused {closed_at}"),
            (lambda: gw.subscribe_session(cs), f"subscribe_session refused {closed_at}"),
            (lambda: gw.unsubscribe(f"session:{cs}"), f"unsubscribe refused {closed_at}"),
            (lambda: gw.set_data(did, "k", 1), f"set_data refused on conversation {did}: it is closing"),
            (lambda: gw.customer_message(ds, "x"), f"customer_message refused on channel session {ds}: {closing}"),
            (lambda: gw.end_session(ds), f"end_session refused on channel session {ds}: {closing}"),
            (lambda: gw.unsubscribe(f"session:{ds}"), f"unsubscribe refused on channel session {ds}: {closing}"),
            (lambda: gw.subscribe_session(ds), f"subscribe_session refused on conversation {did}: it is closing"),
        ]  # fmt: skip
        for call, message in illegal:
            with pytest.raises(IllegalTransitionError) as refused:
                call()
            assert str(refused.value) == message
        # Queries ask the archive instead, which has only the closed one.
        for query in (lambda: gw.conversation(did), lambda: gw.events(did)):
            with pytest.raises(UnknownIdError) as unknown:
                query()
            assert str(unknown.value) == f"no conversation {did}"
        assert gw.conversation(cid)["state"] == "CLOSED"
        gw.add_activity(cid, "NOTE", {})
        assert names(gw, cid)[-1] == "NOTE"
