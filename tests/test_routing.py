"""The routing book: matching order, capacity, offers, RONA, TTL, cancel, and a property."""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.routing import (
    ArmRoutingAlarm,
    Assign,
    Report,
    ReportName,
    RoutingBook,
    RoutingEffect,
    RoutingPolicy,
    RoutingTimerKey,
    RoutingTimerKind,
    SetNotReady,
)

ACCEPT_MS = 30_000
TTL_MS = 120_000


def make(**kwargs: Any) -> RoutingBook:
    return RoutingBook(RoutingPolicy(**kwargs))


def assigns(effects: Sequence[RoutingEffect]) -> list[tuple[str, str]]:
    return [(e.request_id, e.agent_id) for e in effects if isinstance(e, Assign)]


def alarms(effects: Sequence[RoutingEffect]) -> list[ArmRoutingAlarm]:
    return [e for e in effects if isinstance(e, ArmRoutingAlarm)]


def alarm_for(effects: Sequence[RoutingEffect], kind: RoutingTimerKind) -> ArmRoutingAlarm:
    (found,) = [a for a in alarms(effects) if a.key.kind is kind]
    return found


def ready(
    book: RoutingBook, agent: str, now: int, free: int = 1, queues: tuple[str, ...] = ("q",)
) -> list[RoutingEffect]:
    return book.agent_available(agent, ready=True, free=free, queues=queues, now=now)


# --- matching order ---------------------------------------------------------------------------


def test_enqueue_arms_the_ttl_and_waits_without_agents() -> None:
    book = make()
    effects = book.enqueue("r1", "c1", "q", 1_000)
    assert effects == [
        ArmRoutingAlarm(RoutingTimerKey(RoutingTimerKind.TTL, "r1"), 1, 1_000 + TTL_MS)
    ]
    assert book.waiting() == {"q": 1}


def test_highest_priority_first() -> None:
    book = make(priorities={"vip": 5, "low": -1})
    book.enqueue("r-low", "c1", "low", 0)
    book.enqueue("r-std", "c2", "std", 1)
    book.enqueue("r-vip", "c3", "vip", 2)
    queues = ("low", "std", "vip")
    assert assigns(ready(book, "a", 10, queues=queues)) == [("r-vip", "a")]
    assert assigns(ready(book, "a", 11, queues=queues)) == [("r-std", "a")]
    assert assigns(ready(book, "a", 12, queues=queues)) == [("r-low", "a")]


def test_oldest_first_within_a_priority_then_enqueue_order() -> None:
    book = make()
    book.enqueue("r-late", "c1", "q", 50)
    book.enqueue("r-b", "c2", "q", 10)
    book.enqueue("r-a", "c3", "q", 10)  # same time as r-b, enqueued after it
    effects = ready(book, "a", 100, free=3)
    assert assigns(effects) == [("r-b", "a"), ("r-a", "a"), ("r-late", "a")]


def test_longest_waiting_agent_is_chosen() -> None:
    book = make()
    ready(book, "a1", 0, free=5)
    ready(book, "a2", 5, free=5)
    assert assigns(book.enqueue("r1", "c1", "q", 10)) == [("r1", "a1")]  # waited since 0
    assert assigns(book.enqueue("r2", "c2", "q", 11)) == [("r2", "a2")]  # since 5 < 10
    assert assigns(book.enqueue("r3", "c3", "q", 12)) == [("r3", "a1")]  # 10 < 11
    # a report does not reset the wait; only an assignment does
    ready(book, "a1", 13, free=5)
    assert assigns(book.enqueue("r4", "c4", "q", 14)) == [("r4", "a2")]


def test_agents_tied_on_wait_go_by_registration_order() -> None:
    book = make()
    ready(book, "b", 0)
    ready(book, "a", 0)
    assert assigns(book.enqueue("r1", "c1", "q", 1)) == [("r1", "b")]


def test_agent_queues_are_respected() -> None:
    book = make()
    ready(book, "billing-agent", 0, queues=("billing",))
    assert book.enqueue("r1", "c1", "sales", 1) == [
        ArmRoutingAlarm(RoutingTimerKey(RoutingTimerKind.TTL, "r1"), 1, 1 + TTL_MS)
    ]
    assert assigns(ready(book, "sales-agent", 2, queues=("sales",))) == [("r1", "sales-agent")]


def test_a_top_request_without_an_agent_does_not_block_others() -> None:
    book = make(priorities={"vip": 9})
    book.enqueue("r-vip", "c1", "vip", 0)
    book.enqueue("r-std", "c2", "std", 1)
    assert assigns(ready(book, "a", 2, queues=("std",))) == [("r-std", "a")]
    assert book.waiting() == {"vip": 1, "std": 0}


def test_not_ready_agents_get_nothing() -> None:
    book = make()
    book.enqueue("r1", "c1", "q", 0)
    assert book.agent_available("a", ready=False, free=3, queues=("q",), now=1) == []
    assert assigns(ready(book, "a", 2)) == [("r1", "a")]


# --- capacity and declines --------------------------------------------------------------------


def test_capacity_is_respected_until_the_next_report() -> None:
    book = make()
    ready(book, "a", 0, free=1)
    assert assigns(book.enqueue("r1", "c1", "q", 1)) == [("r1", "a")]
    assert assigns(book.enqueue("r2", "c2", "q", 2)) == []
    assert book.waiting() == {"q": 1}
    assert book.accepted("r1", "a", 3) == []
    assert assigns(ready(book, "a", 4, free=1)) == [("r2", "a")]


def test_declined_requeues_keeping_age_and_skips_that_agent_until_it_reports() -> None:
    book = make()
    ready(book, "a1", 0, free=2)
    assert assigns(book.enqueue("r1", "c1", "q", 1)) == [("r1", "a1")]
    assert book.declined("r1", "a1", 2) == []  # a1 had one unit left, but counts as full now
    assert book.waiting() == {"q": 1}
    assert assigns(book.enqueue("r2", "c2", "q", 3)) == []
    assert assigns(ready(book, "a2", 4)) == [("r1", "a2")]  # r1 kept its age: before r2
    assert assigns(ready(book, "a1", 5, free=1)) == [("r2", "a1")]


def test_a_refused_agent_is_excluded_from_that_request_only() -> None:
    """The conversation would not have the agent (it is wrapping up there): the request must
    never go back to it, however often it reports, while other requests still may."""
    book = make()
    ready(book, "a1", 0, free=2)
    assert assigns(book.enqueue("r1", "c1", "q", 1)) == [("r1", "a1")]
    assert assigns(book.declined("r1", "a1", 2, refused=True)) == []
    assert assigns(ready(book, "a1", 3, free=2)) == []  # no loop back to a1
    assert book.waiting() == {"q": 1}
    assert assigns(book.enqueue("r2", "c2", "q", 4)) == [("r2", "a1")]  # a1 kept its capacity
    assert assigns(ready(book, "a2", 5)) == [("r1", "a2")]


def test_excluded_agents_at_enqueue_never_get_the_request() -> None:
    book = make()
    ready(book, "expired", 0, free=3)
    assert assigns(book.enqueue("r1", "c1", "q", 1, excluded=("expired",))) == []
    assert assigns(book.enqueue("r2", "c2", "q", 2)) == [("r2", "expired")]  # younger, not excluded
    assert assigns(ready(book, "other", 3)) == [("r1", "other")]


def test_a_declining_agent_stays_full_even_when_another_of_its_offers_is_withdrawn() -> None:
    book = make(auto_accept=False)
    ready(book, "a", 0, free=2)
    book.enqueue("r1", "c1", "q", 1)
    book.enqueue("r2", "c2", "q", 2)
    assert book.declined("r1", "a", 3) == []
    assert book.cancel("r2") == []  # its unit is not given back: "a" counts as full
    assert book.waiting() == {"q": 1}
    assert assigns(ready(book, "a", 4)) == [("r1", "a")]


def test_a_report_replaces_the_capacity_a_withdrawn_hold_was_taken_from() -> None:
    book = make()
    ready(book, "a", 0, free=1)
    book.enqueue("r1", "c1", "q", 1)
    ready(book, "a", 2, free=0)  # authoritative: counts r1's join already
    book.enqueue("r2", "c2", "q", 3)
    assert book.cancel("r1") == []  # no unit back: the report said 0
    assert book.waiting() == {"q": 1}


def test_a_decline_by_an_agent_not_holding_the_request_is_ignored() -> None:
    book = make()
    ready(book, "a1", 0, free=2)
    book.enqueue("r1", "c1", "q", 1)
    assert book.declined("r1", "a2", 2) == []
    assert book.declined("nope", "a1", 2) == []
    assert book.waiting() == {"q": 0}
    assert assigns(book.enqueue("r2", "c2", "q", 3)) == [("r2", "a1")]


def test_accepted_stops_the_ttl() -> None:
    book = make()
    ready(book, "a", 0)
    effects = book.enqueue("r1", "c1", "q", 1)
    ttl = alarm_for(effects, RoutingTimerKind.TTL)
    assert book.accepted("r1", "a", 2) == []
    assert book.alarm(ttl.key, ttl.token, ttl.at) == []
    assert book.waiting() == {"q": 0}


def test_the_ttl_runs_until_accepted_in_auto_accept_mode() -> None:
    book = make()
    ready(book, "a", 0)
    ttl = alarm_for(book.enqueue("r1", "c1", "q", 1), RoutingTimerKind.TTL)
    book.enqueue("r2", "c2", "q", 2)
    effects = book.alarm(ttl.key, ttl.token, ttl.at)
    assert effects[0] == Report("c1", "r1", ReportName.NO_AGENT_AVAILABLE, "q", None)
    assert assigns(effects) == [("r2", "a")]  # the withdrawn assignment gave its unit back
    assert book.accepted("r1", "a", ttl.at + 1) == []  # too late: ignored


# --- offer mode --------------------------------------------------------------------------------


def test_offer_mode_offers_and_arms_the_accept_timeout() -> None:
    book = make(auto_accept=False)
    ready(book, "a", 0)
    effects = book.enqueue("r1", "c1", "q", 100)
    ttl_key = RoutingTimerKey(RoutingTimerKind.TTL, "r1")
    accept_key = RoutingTimerKey(RoutingTimerKind.ACCEPT, "r1")
    assert effects == [
        ArmRoutingAlarm(ttl_key, 1, 100 + TTL_MS),
        Assign("r1", "c1", "a", "q", offer=True),
        Report("c1", "r1", ReportName.AGENT_OFFERED, "q", "a"),
        ArmRoutingAlarm(accept_key, 2, 100 + ACCEPT_MS),
    ]
    assert book.waiting() == {"q": 0}


def test_accept_stops_both_timers() -> None:
    book = make(auto_accept=False)
    ready(book, "a", 0)
    effects = book.enqueue("r1", "c1", "q", 100)
    assert book.accepted("r1", "a", 200) == []
    for armed in alarms(effects):
        assert book.alarm(armed.key, armed.token, armed.at) == []


def test_accept_timeout_is_a_rona_and_the_request_goes_to_another_agent() -> None:
    book = make(auto_accept=False)
    ready(book, "a1", 0)
    ready(book, "a2", 1)
    book.enqueue("r0", "c0", "q", 5)  # an older request, accepted: a1 waited since 0
    book.accepted("r0", "a1", 6)
    ready(book, "a1", 7)
    effects = book.enqueue("r1", "c1", "q", 10)
    assert assigns(effects) == [("r1", "a2")]
    accept = alarm_for(effects, RoutingTimerKind.ACCEPT)
    effects = book.alarm(accept.key, accept.token, accept.at)
    assert effects == [
        Report("c1", "r1", ReportName.RONA, "q", "a2"),
        SetNotReady("a2"),
        Assign("r1", "c1", "a1", "q", offer=True),
        Report("c1", "r1", ReportName.AGENT_OFFERED, "q", "a1"),
        ArmRoutingAlarm(accept.key, accept.token + 1, accept.at + ACCEPT_MS),
    ]
    assert book.agents() == {"READY": 1, "NOT_READY": 1}
    assert book.alarm(accept.key, accept.token, accept.at + ACCEPT_MS) == []  # stale now


def test_rona_without_another_agent_requeues_keeping_age() -> None:
    book = make(auto_accept=False)
    ready(book, "a1", 0)
    accept = alarm_for(book.enqueue("r1", "c1", "q", 1), RoutingTimerKind.ACCEPT)
    book.enqueue("r2", "c2", "q", 2)
    effects = book.alarm(accept.key, accept.token, accept.at)
    assert effects == [Report("c1", "r1", ReportName.RONA, "q", "a1"), SetNotReady("a1")]
    assert book.waiting() == {"q": 2}
    assert assigns(ready(book, "a2", accept.at + 1)) == [("r1", "a2")]


def test_a_late_accept_after_a_rona_still_ends_the_request() -> None:
    book = make(auto_accept=False)
    ready(book, "a1", 0)
    ready(book, "a2", 1)
    accept = alarm_for(book.enqueue("r1", "c1", "q", 2), RoutingTimerKind.ACCEPT)
    book.alarm(accept.key, accept.token, accept.at)  # RONA a1, offered to a2
    assert book.accepted("r1", "a1", accept.at + 1) == []  # a1 joined after all
    assert book.waiting() == {"q": 0}
    # a2's offer was withdrawn: its unit is back
    assert assigns(book.enqueue("r2", "c2", "q", accept.at + 2)) == [("r2", "a2")]


def test_ttl_is_no_agent_available_and_the_request_is_gone() -> None:
    book = make()
    ttl = alarm_for(book.enqueue("r1", "c1", "q", 0), RoutingTimerKind.TTL)
    assert ttl.at == TTL_MS
    assert book.alarm(ttl.key, ttl.token, ttl.at) == [
        Report("c1", "r1", ReportName.NO_AGENT_AVAILABLE, "q", None)
    ]
    assert book.waiting() == {"q": 0}
    assert ready(book, "a", ttl.at + 1) == []
    assert book.cancel("r1") == []
    assert book.alarm(ttl.key, ttl.token, ttl.at) == []


def test_ttl_withdraws_an_outstanding_offer() -> None:
    book = make(auto_accept=False, accept_timeout_ms=TTL_MS * 2)
    ready(book, "a", 0)
    effects = book.enqueue("r1", "c1", "q", 0)
    ttl = alarm_for(effects, RoutingTimerKind.TTL)
    accept = alarm_for(effects, RoutingTimerKind.ACCEPT)
    book.enqueue("r2", "c2", "q", 1)
    effects = book.alarm(ttl.key, ttl.token, ttl.at)
    assert effects[0] == Report("c1", "r1", ReportName.NO_AGENT_AVAILABLE, "q", None)
    assert assigns(effects) == [("r2", "a")]
    assert book.alarm(accept.key, accept.token, accept.at) == []


# --- cancel, logout, idempotence, stale alarms, status ----------------------------------------


def test_cancel_removes_the_request() -> None:
    book = make()
    ttl = alarm_for(book.enqueue("r1", "c1", "q", 0), RoutingTimerKind.TTL)
    assert book.cancel("r1") == []
    assert book.waiting() == {"q": 0}
    assert ready(book, "a", 1) == []
    assert book.alarm(ttl.key, ttl.token, ttl.at) == []
    assert book.cancel("r1") == []
    assert book.cancel("never") == []


def test_cancelling_an_offer_gives_the_agent_back_and_matches() -> None:
    book = make(auto_accept=False)
    ready(book, "a", 0)
    effects = book.enqueue("r1", "c1", "q", 1)
    accept = alarm_for(effects, RoutingTimerKind.ACCEPT)
    book.enqueue("r2", "c2", "q", 2)
    assert assigns(book.cancel("r1")) == [("r2", "a")]
    assert book.alarm(accept.key, accept.token, accept.at) == []


def test_agent_gone_returns_its_offered_request_to_the_queue() -> None:
    book = make(auto_accept=False)
    ready(book, "a1", 0)
    accept = alarm_for(book.enqueue("r1", "c1", "q", 1), RoutingTimerKind.ACCEPT)
    assert book.agent_gone("a1") == []
    assert book.waiting() == {"q": 1}
    assert book.agents() == {"READY": 0, "NOT_READY": 0}
    assert book.alarm(accept.key, accept.token, accept.at) == []
    effects = ready(book, "a2", 2)
    assert assigns(effects) == [("r1", "a2")]
    assert book.agent_gone("a2")[:1] == []  # nobody else: waits again
    assert book.agent_gone("unknown") == []


def test_agent_gone_matches_at_once_when_another_agent_is_ready() -> None:
    book = make(auto_accept=False)
    ready(book, "a1", 0)
    ready(book, "a2", 1)
    book.enqueue("r1", "c1", "q", 2)
    assert assigns(book.agent_gone("a1")) == [("r1", "a2")]


def test_agent_gone_keeps_an_auto_assignment_in_flight() -> None:
    book = make()
    ready(book, "a1", 0)
    book.enqueue("r1", "c1", "q", 1)
    ready(book, "a2", 2)
    assert book.agent_gone("a1") == []  # the routed join is under way
    assert book.waiting() == {"q": 0}
    assert assigns(book.declined("r1", "a1", 3)) == [("r1", "a2")]


def test_enqueue_is_idempotent() -> None:
    book = make()
    assert book.enqueue("r1", "c1", "q", 0) != []
    assert book.enqueue("r1", "c1", "q", 1) == []
    assert book.waiting() == {"q": 1}
    book.cancel("r1")
    assert book.enqueue("r1", "c1", "q", 2) == []  # an ended request is not revived
    assert book.waiting() == {"q": 0}


def test_stale_and_unknown_alarms_are_ignored() -> None:
    book = make()
    ttl = alarm_for(book.enqueue("r1", "c1", "q", 0), RoutingTimerKind.TTL)
    assert book.alarm(ttl.key, ttl.token + 7, ttl.at) == []
    other = RoutingTimerKey(RoutingTimerKind.ACCEPT, "r1")
    assert book.alarm(other, ttl.token, ttl.at) == []
    assert book.alarm(RoutingTimerKey(RoutingTimerKind.TTL, "r9"), 1, 0) == []
    assert book.waiting() == {"q": 1}
    assert book.alarm(ttl.key, ttl.token, ttl.at) != []
    assert book.alarm(ttl.key, ttl.token, ttl.at) == []  # fires once


def test_waiting_and_agent_counts() -> None:
    book = make()
    assert book.waiting() == {}
    assert book.agents() == {"READY": 0, "NOT_READY": 0}
    book.enqueue("r1", "c1", "sales", 0)
    book.enqueue("r2", "c2", "billing", 0)
    book.enqueue("r3", "c3", "sales", 0)
    assert book.waiting() == {"sales": 2, "billing": 1}
    book.agent_available("a1", ready=False, free=1, queues=("sales",), now=1)
    book.agent_available("a2", ready=True, free=1, queues=("sales",), now=1)
    assert book.agents() == {"READY": 1, "NOT_READY": 1}
    assert book.waiting() == {"sales": 1, "billing": 1}
    book.cancel("r2")
    assert book.waiting() == {"sales": 1, "billing": 0}  # queues stay listed
    book.agent_gone("a1")
    assert book.agents() == {"READY": 1, "NOT_READY": 0}


# --- property ---------------------------------------------------------------------------------

REQUESTS = [f"r{i}" for i in range(6)]
AGENTS = ["a0", "a1", "a2"]
QUEUES = ["q0", "q1"]

_op = st.one_of(
    st.tuples(st.just("enqueue"), st.sampled_from(REQUESTS), st.sampled_from(QUEUES)),
    st.tuples(st.just("cancel"), st.sampled_from(REQUESTS)),
    st.tuples(
        st.just("report"),
        st.sampled_from(AGENTS),
        st.sampled_from([True, True, True, False]),
        st.integers(-1, 3),
        st.lists(st.sampled_from(QUEUES), min_size=1, unique=True).map(tuple),
    ),
    st.tuples(st.just("gone"), st.sampled_from(AGENTS)),
    st.tuples(st.just("accept"), st.sampled_from(REQUESTS), st.sampled_from([*AGENTS, None])),
    st.tuples(st.just("decline"), st.sampled_from(REQUESTS), st.sampled_from([*AGENTS, None])),
    st.tuples(st.just("fire"), st.integers(0, 10)),
    st.tuples(st.just("tick"), st.integers(0, 60_000)),
)
# the holder answers more often than a random agent does
_ops = st.one_of(
    _op,
    st.tuples(st.sampled_from(["accept", "decline"]), st.sampled_from(REQUESTS), st.none()),
    st.tuples(st.just("enqueue"), st.sampled_from(REQUESTS), st.sampled_from(QUEUES)),
)


@dataclass
class _Model:
    """What the effects say, checked against the book's rules."""

    book: RoutingBook
    auto_accept: bool
    clock: int = 0
    seen: set[str] = field(default_factory=set)  # request ids ever enqueued
    queues: list[str] = field(default_factory=list)  # in order of first use
    live: dict[str, str] = field(default_factory=dict)  # request -> queue
    holder: dict[str, tuple[str, bool]] = field(default_factory=dict)  # -> (agent, offered)
    ended: Counter[str] = field(default_factory=Counter)
    reported: dict[str, tuple[bool, int, tuple[str, ...]]] = field(default_factory=dict)
    ronad: set[str] = field(default_factory=set)
    declined: set[str] = field(default_factory=set)  # count as full until their next report
    # requests assigned since the agent's last report and not withdrawn (accepted ones count)
    held_since: dict[str, list[str]] = field(default_factory=dict)
    pending: list[tuple[int, int, RoutingTimerKey]] = field(default_factory=list)

    def end(self, request: str) -> None:
        assert request in self.live
        del self.live[request]
        self.ended[request] += 1

    def withdraw(self, request: str) -> None:
        """The holder (if any) lets go without taking the request."""
        held = self.holder.pop(request, None)
        if held is not None and request in self.held_since.get(held[0], []):
            self.held_since[held[0]].remove(request)

    def apply(self, effects: list[RoutingEffect]) -> None:
        for i, effect in enumerate(effects):
            if isinstance(effect, ArmRoutingAlarm):
                heapq.heappush(self.pending, (effect.at, effect.token, effect.key))
            elif isinstance(effect, Assign):
                request, agent = effect.request_id, effect.agent_id
                assert request in self.live and request not in self.holder  # was waiting
                assert effect.queue == self.live[request]
                assert agent in self.reported and agent not in self.ronad
                assert agent not in self.declined
                is_ready, _, queues = self.reported[agent]
                assert is_ready and effect.queue in queues
                assert effect.offer is not self.auto_accept
                self.holder[request] = (agent, effect.offer)
                self.held_since[agent].append(request)
                if effect.offer:
                    nxt = effects[i + 1]
                    assert isinstance(nxt, Report) and nxt.name is ReportName.AGENT_OFFERED
            elif isinstance(effect, Report):
                if effect.name is ReportName.NO_AGENT_AVAILABLE:
                    self.withdraw(effect.request_id)
                    self.end(effect.request_id)
                elif effect.name is ReportName.RONA:
                    assert self.holder[effect.request_id] == (effect.agent_id, True)
                    self.withdraw(effect.request_id)
                    nxt = effects[i + 1]
                    assert nxt == SetNotReady(str(effect.agent_id))
                    self.ronad.add(str(effect.agent_id))

    def check(self) -> None:
        for agent, held in self.held_since.items():
            assert len(held) <= max(self.reported[agent][1], 0), (agent, held)
        expected = {q: 0 for q in self.book.waiting()}
        for request, queue in self.live.items():
            if request not in self.holder:
                expected[queue] += 1
        assert self.book.waiting() == expected
        assert list(self.book.waiting()) == self.queues
        assert all(count == 1 for count in self.ended.values())
        present = [self.reported[a][0] and a not in self.ronad for a in self.reported]
        assert self.book.agents() == {
            "READY": sum(present),
            "NOT_READY": len(present) - sum(present),
        }

    def run(self, op: tuple[Any, ...]) -> None:
        book = self.book
        kind = op[0]
        if kind == "enqueue":
            _, request, queue = op
            effects = book.enqueue(request, f"c-{request}", queue, self.clock)
            if request in self.seen:
                assert effects == []
            else:
                self.seen.add(request)
                self.live[request] = queue
                if queue not in self.queues:
                    self.queues.append(queue)
        elif kind == "cancel":
            effects = book.cancel(op[1])
            if op[1] in self.live:
                self.withdraw(op[1])
                self.end(op[1])
            else:
                assert effects == []
        elif kind == "report":
            _, agent, is_ready, free, queues = op
            self.reported[agent] = (is_ready, free, queues)
            self.ronad.discard(agent)
            self.declined.discard(agent)
            self.held_since[agent] = []
            effects = book.agent_available(
                agent, ready=is_ready, free=free, queues=queues, now=self.clock
            )
        elif kind == "gone":
            agent = op[1]
            effects = book.agent_gone(agent)
            if agent not in self.reported:
                assert effects == []
            self.reported.pop(agent, None)
            self.ronad.discard(agent)
            self.declined.discard(agent)
            self.held_since.pop(agent, None)
            for request, (holder, offered) in list(self.holder.items()):
                if holder == agent and offered:
                    del self.holder[request]
        elif kind in ("accept", "decline"):
            _, request, agent = op
            if agent is None:  # the holder, when there is one
                agent = self.holder.get(request, ("a0", False))[0]
            held = self.holder.get(request)
            if kind == "accept":
                effects = book.accepted(request, agent, self.clock)
                if request in self.live:
                    if held is not None and held[0] != agent:
                        self.withdraw(request)
                    self.holder.pop(request, None)
                    self.end(request)
                else:
                    assert effects == []
            else:
                effects = book.declined(request, agent, self.clock)
                if held is not None and held[0] == agent:
                    del self.holder[request]  # its unit stays counted: not given back
                    if agent in self.reported:
                        self.declined.add(agent)
                else:
                    assert effects == []
        elif kind == "fire":
            if not self.pending:
                return
            at, token, key = self.pending.pop(min(op[1], len(self.pending) - 1))
            heapq.heapify(self.pending)
            self.clock = max(self.clock, at)
            effects = book.alarm(key, token, self.clock)
        else:
            self.clock += op[1]
            return
        self.apply(effects)
        self.check()

    def drain(self) -> None:
        while self.pending:
            at, token, key = heapq.heappop(self.pending)
            self.clock = max(self.clock, at)
            self.apply(self.book.alarm(key, token, self.clock))
            self.check()


@settings(max_examples=400, deadline=None)
@given(
    auto_accept=st.booleans(),
    priorities=st.dictionaries(st.sampled_from(QUEUES), st.integers(-2, 2)),
    ops=st.lists(_ops, min_size=20, max_size=100),
)
def test_random_operations_keep_the_invariants(
    auto_accept: bool, priorities: dict[str, int], ops: list[tuple[Any, ...]]
) -> None:
    model = _Model(
        RoutingBook(RoutingPolicy(auto_accept=auto_accept, priorities=priorities)), auto_accept
    )
    for op in ops:
        model.run(op)
    model.drain()
    assert model.live == {}
    assert set(model.ended) == model.seen
    assert all(count == 0 for count in model.book.waiting().values())
