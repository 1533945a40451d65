"""Everything a gateway keeps is bounded: the oldest entries go first beyond each bound.

(The location cache's bound is in tests/test_location_cache.py.)
"""

from __future__ import annotations

from typing import Any

import pytest

from actors.messages import AlarmAt, Reply
from runtime import gateway_calls, gateway_link, gateway_transport
from runtime.gateway_calls import Answers
from runtime.gateway_clock import VirtualClock
from runtime.gateway_order import PushOrder
from runtime.gateway_transport import ConnectedTransport, EmbeddedTransport, Unreachable
from runtime.gateway_types import PushedEvent


class _Quiet:
    """An actor system from which nothing arrives."""

    def listen(self, timeout: float) -> None:
        return None


def test_answers_kept_beyond_the_bound_drop_the_oldest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gateway_calls, "MAX_STRAY_ANSWERS", 3)
    answers = Answers(EmbeddedTransport(_Quiet()), lambda message: None)
    for n in range(5):
        answers.keep(Reply(f"call-{n}", n))
    assert [answers.ready(f"call-{n}") for n in range(2)] == [None, None]
    assert [answers.ready(f"call-{n}").value for n in range(2, 5)] == [2, 3, 4]  # type: ignore[union-attr]


def test_answer_times_kept_beyond_the_bound_drop_the_oldest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(gateway_calls, "MAX_STRAY_ANSWERS", 2)
    answers = Answers(EmbeddedTransport(_Quiet()), lambda message: None)
    for n in range(3):
        answers.time(f"call-{n}")
        answers.keep(Reply(f"call-{n}", n))
    assert answers.came("call-0") is None
    assert answers.came("call-1") is not None and answers.came("call-2") is not None


def test_dead_hosts_beyond_the_bound_are_no_longer_refused_without_a_send(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[Any] = []
    monkeypatch.setattr(gateway_transport, "DEAD_HOSTS_KEPT", 2)
    monkeypatch.setattr(
        gateway_link, "send", lambda system, address, message: sent.append(address) or True
    )
    transport = ConnectedTransport(_Quiet())
    for host in ("host-a", "host-b", "host-c"):
        transport.host_died(host)
    transport.send("host-a", "hello")  # forgotten: sent (and refused by its address, if dead)
    for host in ("host-b", "host-c"):
        with pytest.raises(Unreachable):
            transport.send(host, "hello")
    assert sent == ["host-a"]


def test_a_timer_owner_with_nothing_due_leaves_the_clocks_table() -> None:
    clock = VirtualClock()
    clock.report(AlarmAt("owner-a", 1000))
    clock.report(AlarmAt("owner-b", 2000))
    clock.report(AlarmAt("owner-a", None))
    assert clock.alarms() == {"owner-b": 2000}


def test_push_streams_beyond_the_bound_drop_the_least_recently_used() -> None:
    order = PushOrder(max_streams=2)
    for n in range(3):
        order.add(PushedEvent(f"session:cs-{n}", f"conv-{n}", {"seq": 1}), None, 0.0)
    assert len(order) == 2
    assert order.last("session:cs-0", "conv-0") is None
    assert order.last("session:cs-2", "conv-2") == 1
