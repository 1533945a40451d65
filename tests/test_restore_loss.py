"""A host that dies while conversations are being rebuilt on it, before it journaled them
again: they are read again from the journal they came from and rebuilt on another host."""

from __future__ import annotations

from typing import Any

import pytest
from thespian.actors import ActorExitRequest

from actors.topic_monitor import TopicMonitor
from infra.journal_store import open_store
from runtime import testing
from tests.conftest import MakeGateway


def test_conversations_whose_new_host_dies_before_it_rebuilt_them_are_rebuilt_elsewhere(
    make_gateway: MakeGateway, monkeypatch: pytest.MonkeyPatch, journal_at: str | None
) -> None:
    original = TopicMonitor.restoring
    killed: list[Any] = []

    def restoring(self: TopicMonitor, conversation_id: str, live: Any) -> None:
        original(self, conversation_id, live)
        if not killed:  # the first host given conversations to rebuild dies before it hears of them
            killed.append(live.host.address)
            self.send(live.host.address, ActorExitRequest())

    monkeypatch.setattr(TopicMonitor, "restoring", restoring)
    gw = make_gateway(storage={"postgres": journal_at})
    ref = gw.start_session("cust-1", "WEB", "v")
    gw.customer_message(ref.channel_session_id, "before", message_id="m-1")
    first = testing.host_of(gw, ref.conversation_id)
    testing.system(gw).tell(first, ActorExitRequest())
    testing.forget_host(gw, ref.conversation_id)
    gw.customer_message(ref.channel_session_id, "after", message_id="m-2")
    events = gw.events(ref.conversation_id)
    ids = [e["data"]["message_id"] for e in events if e["name"] == "CUSTOMER_MESSAGE"]
    assert killed and ids == ["m-1", "m-2"]
    assert testing.host_of(gw, ref.conversation_id) not in (first, killed[0])
    # both dead hosts' journals are deleted once the conversation is back: only its new host's
    assert len(open_store(gw.engine.settings.storage).writers()) == 1
