"""The gateway's location cache holds live conversations only, and never more than its bound."""

from __future__ import annotations

from collections.abc import Callable

from runtime import testing
from runtime.gateway import Gateway
from runtime.gateway_cache import LOCATION_CACHE_SIZE, LocationCache


def test_ten_thousand_conversations_never_said_closed_leave_the_cache_at_its_bound() -> None:
    cache = LocationCache()
    for n in range(10_000):
        cache.put_host(f"conv-{n}", ("host", n % 7))
        cache.put_session(f"cs-{n}", f"conv-{n}")
    assert len(cache) == LOCATION_CACHE_SIZE
    assert cache.host("conv-9999") == ("host", 9999 % 7)  # the most recent stay
    assert cache.host("conv-0") is None and cache.conversation_of("cs-0") is None


def test_closed_conversations_leave_nothing_in_the_cache() -> None:
    cache = LocationCache()
    for n in range(10_000):
        cache.put_host(f"conv-{n}", "host")
        cache.put_session(f"cs-{n}", f"conv-{n}")
        cache.closed(f"conv-{n}")
    assert len(cache) == 0 and cache.conversation_of("cs-9999") is None


def test_a_conversation_the_gateway_saw_close_is_dropped_from_its_cache(
    make_gateway: Callable[..., Gateway],
) -> None:
    gw = make_gateway()
    refs = [gw.start_session(f"cust-{n}", "WEB", "v") for n in range(5)]
    for ref in refs:
        gw.subscribe_session(ref.channel_session_id)
        gw.customer_message(ref.channel_session_id, "hello")
    assert len(testing.location_cache(gw)) == 5
    for ref in refs:
        gw.end_conversation(ref.conversation_id)
    gw.pushed()  # their TOPIC_STATE_CHANGED to CLOSING
    assert len(testing.location_cache(gw)) == 0


def test_a_dead_hosts_conversations_are_dropped_from_the_cache() -> None:
    cache = LocationCache()
    cache.put_host("conv-1", "host-a")
    cache.put_host("conv-2", "host-b")
    assert cache.host_lost("host-a") == ["conv-1"]
    assert cache.as_dict() == {"conv-2": "host-b"}
