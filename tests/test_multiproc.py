"""One conversation through a real multiprocTCPBase system, with each conversation in its own
host process (placement.per_host: 1) and with many per host. Bounded, always shut down."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.gateway import Gateway, GatewayError, PushedEvent
from tests.multiproc_support import eventually, free_port, running_system, write_config

pytestmark = pytest.mark.multiproc


@pytest.mark.parametrize("per_host", [1, 1000])
def test_one_conversation_end_to_end(tmp_path: Path, per_host: int) -> None:
    config = write_config(tmp_path, placement={"per_host": per_host})
    with running_system(config), Gateway.connect(config) as gw:
        ref = gw.start_session("cust-1", "WEB", "visitor-1")
        gw.subscribe_session(ref.channel_session_id)
        gw.customer_message(ref.channel_session_id, "hello", message_id="m-1")
        gw.customer_message(ref.channel_session_id, "hello", message_id="m-1")  # duplicate
        gw.agent_login("alice")
        gw.agent_join("alice", ref.conversation_id)
        assert gw.conversation(ref.conversation_id)["state"] == "ACTIVE"
        gw.agent_message("alice", ref.conversation_id, "Hi, Alice here")
        gw.end_conversation(ref.conversation_id)
        eventually(lambda: gw.conversation(ref.conversation_id)["state"] == "CLOSED")

        names = [e["name"] for e in gw.events(ref.conversation_id)]
        seqs = [e["seq"] for e in gw.events(ref.conversation_id)]
        assert seqs == list(range(1, len(seqs) + 1))
        assert names.count("CUSTOMER_MESSAGE") == 1
        assert "AGENT_MESSAGE" in names and names[-2:] == [
            "TOPIC_STATE_CHANGED",
            "BOT_UNSUBSCRIBED",
        ]
        assert [c["id"] for c in gw.history(ref.room_id)] == [ref.conversation_id]

        # The subscribed session got its events pushed in order, once each, through the end of
        # the trigger that ended it (END_CONVERSATION) and the closing events, the last final.
        events = gw.events(ref.conversation_id)
        (ended,) = [e for e in events if e["name"] == "CHANNEL_SESSION_ENDED"]
        received: list[PushedEvent] = []
        eventually(lambda: received.extend(gw.pushed(0.05)) or any(p.final for p in received))
        pushed = [p.event["seq"] for p in received]
        assert pushed == list(range(1, len(pushed) + 1))
        assert ended["seq"] < pushed[-1] == events[-1]["seq"]
        assert [p.final for p in received].count(True) == 1 and received[-1].final


def test_connect_without_a_running_system_fails_clearly(tmp_path: Path) -> None:
    config = write_config(tmp_path, system={"admin_port": free_port()})
    with pytest.raises(GatewayError, match="no actor system is running"):
        Gateway.connect(config)
