"""A dead host's conversations are rebuilt on several hosts side by side, sent in shares.

Under ``simpleSystemBase`` every actor runs in this process, so the share sizes of
``actors.recovery_desk`` can be lowered for a handful of conversations.
"""

from __future__ import annotations

import pytest
from thespian.actors import ActorExitRequest

from actors import recovery_desk
from actors.base import EngineActor
from actors.messages import Batch, Deliver
from runtime import testing
from tests.conftest import MakeGateway


def test_a_dead_hosts_conversations_are_rebuilt_on_restore_hosts_hosts(
    make_gateway: MakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recovery_desk, "RESTORE_SHARE", 2)
    monkeypatch.setattr(recovery_desk, "RESTORE_BATCH", 2)
    gw = make_gateway(placement={"restore_hosts": 3})
    refs = [gw.start_session(f"cust-{n}", "WEB", f"browser-{n}") for n in range(6)]
    for ref in refs:
        gw.customer_message(ref.channel_session_id, "hello")
    dead = testing.host_of(gw, refs[0].conversation_id)
    testing.system(gw).tell(dead, ActorExitRequest())
    hosts = set()
    for ref in refs:
        testing.forget_host(gw, ref.conversation_id)
        hosts.add(str(testing.host_of(gw, ref.conversation_id)))
        texts = [e["data"].get("text") for e in gw.events(ref.conversation_id)]
        assert "hello" in texts
    assert len(hosts) == 3 and str(dead) not in hosts


def test_a_small_rebuild_goes_to_one_host(
    make_gateway: MakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recovery_desk, "RESTORE_BATCH", 1)
    gw = make_gateway(placement={"restore_hosts": 4})
    refs = [gw.start_session(f"cust-{n}", "WEB", f"browser-{n}") for n in range(3)]
    dead = testing.host_of(gw, refs[0].conversation_id)
    testing.system(gw).tell(dead, ActorExitRequest())
    for ref in refs:
        testing.forget_host(gw, ref.conversation_id)
    assert len({str(testing.host_of(gw, ref.conversation_id)) for ref in refs}) == 1


class Recorder(EngineActor):
    """An engine actor whose sends are recorded instead of handed to Thespian."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[object, object]] = []

    def send(self, target: object, message: object) -> None:
        self.sent.append((target, message))


def test_items_posted_in_batches_follow_what_was_posted_before_in_shares_of_the_size() -> None:
    actor = Recorder()
    earlier = Deliver("entity-0", "earlier")
    actor.post_to("host", earlier)
    actor.post_to("other", Deliver("entity-9", "elsewhere"))
    items = [Deliver(f"entity-{n}", n) for n in range(1, 6)]
    actor.post_in_batches("host", items, 2)
    batches = [m for target, m in actor.sent if target == "host"]
    assert all(isinstance(b, Batch) for b in batches)
    assert [list(b.items) for b in batches if isinstance(b, Batch)] == [
        [earlier, items[0]],
        items[1:3],
        items[3:5],
    ]
    actor.flush()  # what was posted elsewhere still leaves with the handler
    assert [target for target, _ in actor.sent] == ["host"] * 3 + ["other"]
