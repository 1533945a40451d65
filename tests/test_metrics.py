"""The engine's metrics: ``Gateway.metrics()`` and the Prometheus collector over it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from thespian.actors import ActorExitRequest

from infra import journal
from runtime import testing
from runtime.gateway import Gateway, UnavailableError
from runtime.metrics import SERIES, render
from tests.conftest import MakeGateway, storage_config
from tests.test_archivist import locked
from tests.test_storage_faults import FaultyDisk

#: Offers (not auto-accepted) time out after 10 s, requests after 60 s; an agent must answer a
#: customer within 30 s; a silent customer expires after 120 s; the service level is 15 s.
DAY = {
    "routing": {"auto_accept": False, "accept_timeout_seconds": 10, "request_ttl_seconds": 60},
    "timers": {"agent_sla": {"seconds": 30}, "customer_inactivity": {"seconds": 120}},
    "metrics": {"service_level_seconds": 15},
}


def scraped(gw: Gateway) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of one scrape of the collector, by name and labels."""
    text = render(gw.metrics).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def a_day(gw: Gateway) -> list[str]:
    """Four customers: one answered in 5 s, one after a RONA in 18 s, one never answered,
    one silent; agents that leave customers unanswered. Returns the conversation ids."""
    gw.agent_login("bob", max_conversations=2)
    gw.agent_ready("bob")
    gw.agent_login("carol", max_conversations=1)
    first = gw.start_session("cust-1", "WEB", "v1")
    gw.request_agent(first.conversation_id)
    gw.advance(5)
    gw.agent_join("bob", first.conversation_id)
    second = gw.start_session("cust-2", "WEB", "v2")
    gw.request_agent(second.conversation_id)
    gw.advance(10)  # bob does not take the offer: RONA
    gw.agent_ready("carol")
    gw.advance(8)
    gw.agent_join("carol", second.conversation_id)
    third = gw.start_session("cust-3", "SMS", "v3")
    gw.request_agent(third.conversation_id)
    gw.customer_message(first.channel_session_id, "hello?")
    gw.advance(61)
    fourth = gw.start_session("cust-4", "WEB", "v4")
    gw.advance(200)
    return [ref.conversation_id for ref in (first, second, third, fourth)]


def test_metrics_after_a_scripted_day_equal_status_and_the_archive(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway(**DAY) as gw:
        conversations = a_day(gw)
        for conversation_id in conversations:
            if gw.conversation(conversation_id)["state"] not in ("CLOSING", "CLOSED"):
                gw.end_conversation(conversation_id)
        gw.advance(5)
        assert [gw.conversation(c)["state"] for c in conversations] == ["CLOSED"] * 4
        archived = Counter(e["name"] for c in conversations for e in gw.events(c))
        status, figures, samples = gw.status(), gw.metrics(), scraped(gw)

    assert figures["conversations"] == status["conversations"]
    assert figures["agents"] == status["agents"]
    assert {q: f["waiting"] for q, f in figures["queues"].items()} == status["queues"]
    assert figures["events"]["by_name"] == dict(archived)
    assert figures["routing"] == {
        "assigned": archived["AGENT_OFFERED"],
        "rona": archived["RONA"],
        "no_agent": archived["NO_AGENT_AVAILABLE"],
    }
    assert figures["sla_breaches"] == archived["AGENT_SLA_EXPIRED"] > 0
    assert figures["inactivity_expiries"] == archived["CUSTOMER_SLA_EXPIRED"] > 0
    assert figures["archive"]["writes"] == 4
    for presence, count in status["agents"].items():
        assert samples[("cx_agents", (("presence", presence),))] == count
    for name, count in archived.items():
        assert samples[("cx_events_total", (("name", name),))] == count
    for outcome, count in figures["routing"].items():
        labels = (("outcome", outcome), ("queue", "default"))
        assert samples[("cx_routing_outcomes_total", labels)] == count
    assert samples[("cx_sla_breaches_total", ())] == archived["AGENT_SLA_EXPIRED"]
    assert samples[("cx_inactivity_expiries_total", ())] == archived["CUSTOMER_SLA_EXPIRED"]
    assert samples[("cx_archive_writes_total", ())] == 4
    assert samples[("cx_hosts", ())] == figures["hosts"] == 1


def test_live_figures_equal_status_while_the_day_runs(make_gateway: MakeGateway) -> None:
    with make_gateway(**DAY) as gw:
        gw.agent_login("bob", max_conversations=1)
        gw.agent_ready("bob")
        first = gw.start_session("cust-1", "WEB", "v1")
        gw.request_agent(first.conversation_id)
        gw.agent_join("bob", first.conversation_id)
        second = gw.start_session("cust-2", "WEB", "v2")
        gw.request_agent(second.conversation_id)
        status, samples = gw.status(), scraped(gw)
    assert status["conversations"] == {"ACTIVE": 1, "CREATED": 1}
    for state, count in status["conversations"].items():
        assert samples[("cx_conversations", (("state", state),))] == count
    assert (
        samples[("cx_queue_waiting", (("queue", "default"),))] == status["queues"]["default"] == 1
    )


def test_a_busy_agent_is_not_counted_ready(make_gateway: MakeGateway) -> None:
    with make_gateway(bot={"enabled": False}) as gw:
        gw.agent_login("bob", max_conversations=1)
        gw.agent_ready("bob")
        gw.agent_login("carol")
        gw.agent_ready("carol")
        gw.agent_login("dave")
        ref = gw.start_session("cust-1", "WEB", "v1")
        gw.agent_join("bob", ref.conversation_id)
        assert gw.status()["agents"] == {"READY": 1, "BUSY": 1, "NOT_READY": 1}


def test_the_oldest_wait_of_a_queue_is_its_oldest_waiting_request(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway(bot={"enabled": False}) as gw:
        first = gw.start_session("cust-1", "WEB", "v1")
        gw.request_agent(first.conversation_id, "sales")
        gw.advance(40)
        second = gw.start_session("cust-2", "WEB", "v2")
        gw.request_agent(second.conversation_id, "sales")
        gw.advance(2)
        sales = gw.metrics()["queues"]["sales"]
    assert (sales["waiting"], sales["oldest_wait_ms"]) == (2, 42_000)


def test_the_service_level_is_the_share_answered_within_the_threshold(
    make_gateway: MakeGateway,
) -> None:
    with make_gateway(metrics={"service_level_seconds": 15}, bot={"enabled": False}) as gw:
        waits = [5, 15, 16, 30]
        for n, wait in enumerate(waits):
            ref = gw.start_session(f"cust-{n}", "WEB", f"v{n}")
            gw.request_agent(ref.conversation_id)
            gw.advance(wait)
            gw.agent_login(f"agent-{n}", max_conversations=1)
            gw.agent_ready(f"agent-{n}")  # answers the waiting request now
        default = gw.metrics()["queues"]["default"]
    assert (default["answered"], default["answered_within"]) == (4, 2)
    assert default["service_level"] == 0.5


def test_a_replaced_router_and_a_lost_host_count_as_restarts(make_gateway: MakeGateway) -> None:
    with make_gateway(bot={"enabled": False}) as gw:
        assert gw.metrics()["restarts"] == {"archivist": 0, "host": 0, "router": 0}
        ref = gw.start_session("cust-1", "WEB", "v1")
        testing.system(gw).tell(testing.directory(gw)["router"], ActorExitRequest())
        testing.system(gw).tell(testing.host_of(gw, ref.conversation_id), ActorExitRequest())
        figures = gw.metrics()
    assert figures["restarts"] == {"archivist": 0, "host": 1, "router": 1}
    assert figures["hosts"] == 1


def test_a_scrape_when_the_engine_does_not_answer_reports_it_down() -> None:
    def unanswered() -> dict[str, Any]:
        raise TimeoutError("no answer")

    families = list(text_string_to_metric_families(render(unanswered).decode()))
    assert [(f.name, [s.value for s in f.samples]) for f in families] == [("cx_up", [0.0])]


def test_every_series_scraped_is_listed(make_gateway: MakeGateway) -> None:
    with make_gateway(**DAY) as gw:
        a_day(gw)
        names = {name for name, _ in scraped(gw)}
    assert names <= set(SERIES)
    assert set(SERIES) - names <= {"cx_queue_service_level"}  # only once a request is answered


def test_a_failed_journal_write_counts_as_a_failure_and_its_events_as_never_published(
    make_gateway: MakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = FaultyDisk()
    monkeypatch.setattr(journal, "DISK", disk)
    with make_gateway() as gw:
        ref = gw.start_session("cust-1", "WEB", "v1")
        before = gw.metrics()
        disk.full = True
        with pytest.raises(UnavailableError):
            gw.customer_message(ref.channel_session_id, "lost")
        after = gw.metrics()
    assert after["journal"]["failures"] - before["journal"]["failures"] == 1
    assert after["journal"]["failing_hosts"] == 1
    assert after["events"] == before["events"]


def test_an_archive_write_refused_by_a_lock_counts_as_a_failure_and_waits(
    make_gateway: MakeGateway, tmp_path: Path
) -> None:
    archive = tmp_path / "locked" / "archive.sqlite3"
    with make_gateway(**storage_config(tmp_path / "locked")) as gw:
        ref = gw.start_session("cust-1", "WEB", "v1")
        with locked(archive):
            gw.end_conversation(ref.conversation_id)
            refused = gw.metrics()["archive"]
        gw.advance(1)  # the retry finds the archive free
        written = gw.metrics()["archive"]
    assert (refused["writes"], refused["failures"], refused["waiting"]) == (1, 1, 1)
    assert (written["writes"], written["failures"], written["waiting"]) == (2, 1, 0)


def test_the_draining_gauge_is_1_once_the_engine_drains(make_gateway: MakeGateway) -> None:
    with make_gateway() as gw:
        before = scraped(gw)[("cx_draining", ())]
        gw.drain_engine()
        after = scraped(gw)[("cx_draining", ())]
    assert (before, after) == (0, 1)
