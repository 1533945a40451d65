"""Scenario tests of the pure conversation state machine: its state and timer rules.

Every scenario asserts the exact event names in publication order (docs/EVENTS.md fixes the
order within one trigger: own event, TOPIC_STATE_CHANGED, participant events, follow-on events,
timer _STOPPED, timer _STARTED) and the data it names.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import MappingProxyType
from typing import Any

import pytest

from domain.commands import (
    AddActivity,
    AgentLeave,
    AgentMessage,
    ApplyWrapUp,
    ArchiveCommitted,
    BargeIn,
    BotMessage,
    BotNotification,
    Command,
    ConcludeConsult,
    Consult,
    CustomerMessage,
    EndConversation,
    EndSession,
    Hold,
    ReadReceipt,
    RequestAgent,
    Resume,
    RoutingUpdate,
    SetData,
    StartSession,
    SubscribeAgent,
    TimerFired,
    Transfer,
    Typing,
    Whisper,
)
from domain.conversation import COMMAND_TYPES
from domain.effects import (
    ArchiveConversation,
    ArchiveLate,
    ArmAlarm,
    CancelRoute,
    Effect,
    Publish,
    ReleaseAgent,
    ReportState,
    RouteRequest,
)
from domain.enums import (
    Channel,
    ConsultOutcome,
    EndedBy,
    EventType,
    ParticipantState,
    ParticipantType,
    Role,
    SessionEndReason,
    SessionState,
    State,
    ThresholdAction,
    UnsubscribeReason,
)
from domain.errors import IllegalTransition, InvalidArgument, Refused
from domain.policy import Policy, Threshold
from domain.records import SYSTEM, Emitter, Event
from domain.timers import TimerKey, TimerKind
from tests.model_driver import (
    AGENT,
    FIRST_SESSION,
    Driver,
    active,
    closed,
    closing,
    created,
    customer_left,
    fingerprint,
    inactive,
    inactive_wrapping_up,
    names,
    of_type,
    on_hold,
    published,
    wrap_up,
)

WRAP_ON = Policy(wrap_up_enabled=True)
AGENT_SLA = TimerKey(TimerKind.AGENT_SLA)
RECORDER = Emitter("recorder", ParticipantType.APP)


def sla(session_id: str) -> TimerKey:
    return TimerKey(TimerKind.CUSTOMER_SLA, session_id)


def only(effects: Iterable[Effect], name: str) -> Event:
    """The one published event called ``name``."""
    found = [e for e in published(effects) if e.name == name]
    assert len(found) == 1, (name, names(effects))
    return found[0]


def state_change(effects: Iterable[Effect]) -> tuple[Any, Any]:
    event = only(effects, "TOPIC_STATE_CHANGED")
    return event.data["from"], event.data["to"]


def role_changes(effects: Iterable[Effect]) -> list[tuple[str, str, str]]:
    return [
        (e.data["participant_id"], e.data["from"], e.data["to"])
        for e in published(effects)
        if e.name == "PARTICIPANT_ROLE_CHANGED"
    ]


def unsubscribed(effects: Iterable[Effect]) -> list[tuple[str, str]]:
    return [
        (e.data["agent_id"], e.data["reason"])
        for e in published(effects)
        if e.name == "AGENT_UNSUBSCRIBED"
    ]


def assert_refused(
    driver: Driver, command: Command, kind: type[Refused] = IllegalTransition
) -> Refused:
    """``command`` is refused with ``kind`` and the machine is exactly as it was."""
    before = fingerprint(driver.machine)
    events_before = len(driver.events)
    with pytest.raises(kind) as refused:
        driver.handle(command)
    assert fingerprint(driver.machine) == before
    assert len(driver.events) == events_before
    return refused.value


def running(driver: Driver) -> set[TimerKey]:
    return set(driver.machine.running_timers())


# ---------------------------------------------------------------------- creation


def test_creation_publishes_session_state_bot_and_inactivity() -> None:
    driver = Driver()
    effects = driver.steps[0].effects
    assert names(effects) == [
        "CHANNEL_SESSION_STARTED",
        "TOPIC_STATE_CHANGED",
        "BOT_SUBSCRIBED",
        "CUSTOMER_SLA_STARTED",
    ]
    started, changed, bot, timer = published(effects)
    assert started.channel_session_id == FIRST_SESSION
    assert started.data == {"channel": "WEB", "identifier": "web-1"}
    assert (changed.data["from"], changed.data["to"]) == (None, "CREATED")
    assert bot.data == {"role": "PRIMARY"}
    assert bot.emitter.type is ParticipantType.BOT
    assert timer.channel_session_id == FIRST_SESSION
    assert timer.data["seconds"] == 300
    assert [e.seq for e in published(effects)] == [1, 2, 3, 4]
    assert of_type(effects, ArmAlarm) == [ArmAlarm(sla(FIRST_SESSION), 1, 300_000, 100)]
    assert driver.state is State.CREATED
    assert driver.machine.bot_role() is Role.PRIMARY


def test_creation_without_bot_has_no_bot_subscribed() -> None:
    driver = Driver(Policy(bot_enabled=False))
    assert driver.names() == [
        "CHANNEL_SESSION_STARTED",
        "TOPIC_STATE_CHANGED",
        "CUSTOMER_SLA_STARTED",
    ]
    assert driver.machine.bot_role() is None


def test_creation_on_voice_starts_no_inactivity_timer() -> None:
    driver = Driver(first=StartSession("v1", Channel.VOICE, "+100"))
    assert driver.names() == ["CHANNEL_SESSION_STARTED", "TOPIC_STATE_CHANGED", "BOT_SUBSCRIBED"]
    assert running(driver) == set()


def test_inactivity_duration_per_channel() -> None:
    policy = Policy(channel_inactivity_ms=MappingProxyType({"WHATSAPP": 86_400_000}))
    driver = Driver(policy, first=StartSession("w1", Channel.WHATSAPP, "+1"))
    assert only(driver.steps[0].effects, "CUSTOMER_SLA_STARTED").data["seconds"] == 86_400


# ---------------------------------------------------------------------- agents arrive


def test_agent_subscribes_from_created() -> None:
    driver = created()
    effects = driver.handle(SubscribeAgent(AGENT))
    assert names(effects) == [
        "AGENT_SUBSCRIBED",
        "TOPIC_STATE_CHANGED",
        "PARTICIPANT_ROLE_CHANGED",
        "CUSTOMER_SLA_STOPPED",
        "AGENT_SLA_STARTED",
    ]
    assert only(effects, "AGENT_SUBSCRIBED").data == {"agent_id": AGENT, "role": "PRIMARY"}
    assert state_change(effects) == ("CREATED", "ACTIVE")
    assert role_changes(effects) == [("bot", "PRIMARY", "ASSISTANT")]
    assert only(effects, "CUSTOMER_SLA_STOPPED").channel_session_id == FIRST_SESSION
    assert only(effects, "AGENT_SLA_STARTED").data["seconds"] == 60
    assert of_type(effects, CancelRoute) == []
    assert driver.state is State.ACTIVE
    assert running(driver) == {AGENT_SLA}


def test_direct_join_with_pending_request_cancels_it() -> None:
    driver = created()
    driver.handle(RequestAgent("default", SYSTEM))
    request_id = driver.machine.pending_request
    assert request_id is not None
    effects = driver.handle(SubscribeAgent(AGENT))
    assert of_type(effects, CancelRoute) == [CancelRoute(request_id, "default")]
    assert driver.machine.pending_request is None
    assert driver.state is State.ACTIVE


def test_routed_join_answers_the_request_without_cancelling() -> None:
    driver = created()
    driver.handle(RequestAgent("default", SYSTEM))
    request_id = driver.machine.pending_request
    effects = driver.handle(SubscribeAgent(AGENT, request_id=request_id))
    assert of_type(effects, CancelRoute) == []
    assert driver.machine.pending_request is None
    assert driver.state is State.ACTIVE


def test_routed_join_with_stale_request_is_refused() -> None:
    driver = created()
    driver.handle(RequestAgent("default", SYSTEM))
    assert_refused(driver, SubscribeAgent(AGENT, request_id="conv-1/r99"))
    fresh = created()
    assert_refused(fresh, SubscribeAgent(AGENT, request_id="conv-1/r1"))  # nothing pending


def test_second_agent_is_assistant_and_rearms_agent_sla() -> None:
    driver = active()
    driver.advance(5_000)
    effects = driver.handle(SubscribeAgent("a2"))
    assert names(effects) == ["AGENT_SUBSCRIBED", "AGENT_SLA_STARTED"]
    assert only(effects, "AGENT_SUBSCRIBED").data["role"] == "ASSISTANT"
    assert driver.machine.running_timers()[AGENT_SLA].deadline == driver.now + 60_000
    assert_refused(driver, SubscribeAgent("a3", role=Role.PRIMARY))  # a PRIMARY is there


def test_agent_cannot_join_twice() -> None:
    assert_refused(active(), SubscribeAgent(AGENT))


@pytest.mark.parametrize("role", [Role.SILENT_MONITOR, Role.WHISPER])
@pytest.mark.parametrize("build", [created, active, on_hold, customer_left, wrap_up, inactive])
def test_supervisors_join_in_any_open_state_and_change_nothing_else(build: Any, role: Role) -> None:
    driver = build()
    state, timers, bot = driver.state, running(driver), driver.machine.bot_role()
    effects = driver.handle(SubscribeAgent("sup", role=role))
    assert names(effects) == ["AGENT_SUBSCRIBED"]
    assert only(effects, "AGENT_SUBSCRIBED").data == {"agent_id": "sup", "role": role.value}
    assert (driver.state, running(driver), driver.machine.bot_role()) == (state, timers, bot)
    assert driver.machine.participant_role("sup") is role
    leave = driver.handle(AgentLeave("sup"))
    assert names(leave) == ["AGENT_UNSUBSCRIBED"]
    assert (driver.state, running(driver)) == (state, timers)


@pytest.mark.parametrize("build", [closing, closed])
def test_no_agent_or_supervisor_joins_a_closing_conversation(build: Any) -> None:
    driver = build()
    for role in (None, Role.PRIMARY, Role.SILENT_MONITOR, Role.WHISPER):
        assert_refused(driver, SubscribeAgent("late", role=role))


# ---------------------------------------------------------------------- hold and resume


def test_hold_stops_agent_sla_and_customer_inactivity() -> None:
    driver = active()
    driver.handle(BotMessage("hello", "b1"))  # starts the customer's inactivity timer
    assert running(driver) == {AGENT_SLA, sla(FIRST_SESSION)}
    driver.advance(1_000)
    effects = driver.handle(Hold(AGENT, 30))
    assert names(effects)[:2] == ["CONVERSATION_PAUSED", "TOPIC_STATE_CHANGED"]
    assert sorted(names(effects)[2:]) == ["AGENT_SLA_STOPPED", "CUSTOMER_SLA_STOPPED"]
    assert only(effects, "CONVERSATION_PAUSED").data == {"seconds": 30}
    assert state_change(effects) == ("ACTIVE", "ON_HOLD")
    assert running(driver) == {TimerKey(TimerKind.HOLD)}
    assert [a.at for a in of_type(effects, ArmAlarm)] == [driver.now + 30_000]


@pytest.mark.parametrize("seconds", [0, -1, -0.5, 600.001, 601, 10_000, True, False])
def test_hold_seconds_out_of_range_are_refused(seconds: Any) -> None:
    driver = active()
    refused = assert_refused(driver, Hold(AGENT, seconds), InvalidArgument)
    assert refused.state == "ACTIVE"


def test_hold_max_seconds_comes_from_policy() -> None:
    driver = active()
    driver.handle(Hold(AGENT, 600))
    assert driver.state is State.ON_HOLD
    short = active(Policy(hold_max_ms=10_000))
    assert_refused(short, Hold(AGENT, 11), InvalidArgument)
    short.handle(Hold(AGENT, 10))
    assert short.state is State.ON_HOLD


def test_hold_by_unknown_or_supervisor_is_refused() -> None:
    driver = active()
    driver.handle(SubscribeAgent("sup", role=Role.SILENT_MONITOR))
    assert_refused(driver, Hold("ghost", 10), Refused)
    assert_refused(driver, Hold("sup", 10))


def test_hold_expiry_resumes_with_hold_expired() -> None:
    driver = on_hold()
    held_at = driver.now
    assert driver.advance(29_999) == []
    effects = driver.advance(1)
    assert names(effects) == [
        "CONVERSATION_RESUMED",
        "TOPIC_STATE_CHANGED",
        "CUSTOMER_SLA_STARTED",
        "AGENT_SLA_STARTED",
    ]
    assert only(effects, "CONVERSATION_RESUMED").data == {"reason": "HOLD_EXPIRED"}
    assert only(effects, "CONVERSATION_RESUMED").timestamp == held_at + 30_000
    assert state_change(effects) == ("ON_HOLD", "ACTIVE")
    assert running(driver) == {AGENT_SLA, sla(FIRST_SESSION)}


def test_resume_by_agent() -> None:
    driver = on_hold()
    effects = driver.handle(Resume(AGENT))
    assert names(effects)[:2] == ["CONVERSATION_RESUMED", "TOPIC_STATE_CHANGED"]
    assert only(effects, "CONVERSATION_RESUMED").data == {"reason": "AGENT"}
    assert driver.state is State.ACTIVE
    assert driver.advance(30_000) == []  # the hold alarm is stale now


def test_agent_message_on_hold_resumes_first() -> None:
    driver = on_hold()
    effects = driver.handle(AgentMessage(AGENT, "back", "m1"))
    # one trigger: the resume and its state change, then the message; the PRIMARY answered,
    # so the agent SLA never starts, and the customer's inactivity timer starts once
    assert names(effects) == [
        "CONVERSATION_RESUMED",
        "TOPIC_STATE_CHANGED",
        "AGENT_MESSAGE",
        "CUSTOMER_SLA_STARTED",
    ]
    assert only(effects, "CONVERSATION_RESUMED").data == {"reason": "AGENT_MESSAGE"}
    assert driver.state is State.ACTIVE


def test_agent_message_on_hold_publishes_no_agent_sla_start_and_stop_pair() -> None:
    driver = on_hold()
    effects = driver.handle(AgentMessage(AGENT, "back", "m1"))
    sla = [n for n in names(effects) if n.startswith("AGENT_SLA_")]
    assert sla == []
    assert TimerKey(TimerKind.AGENT_SLA) not in driver.machine.running_timers()


def test_new_session_on_hold_waits_for_resume() -> None:
    driver = on_hold()
    effects = driver.handle(StartSession("s2", Channel.SMS, "+2"))
    assert names(effects) == ["CHANNEL_SESSION_STARTED"]
    assert running(driver) == {TimerKey(TimerKind.HOLD)}
    resumed = driver.handle(Resume(AGENT))
    started = [e.channel_session_id for e in published(resumed) if e.name == "CUSTOMER_SLA_STARTED"]
    assert started == [FIRST_SESSION, "s2"]


# ---------------------------------------------------------------------- agents leave


def test_last_agent_leaves_active_without_wrap_up() -> None:
    driver = active()
    effects = driver.handle(AgentLeave(AGENT))
    assert names(effects) == [
        "AGENT_UNSUBSCRIBED",
        "TOPIC_STATE_CHANGED",
        "PARTICIPANT_ROLE_CHANGED",
        "AGENT_SLA_STOPPED",
        "CUSTOMER_SLA_STARTED",
    ]
    assert unsubscribed(effects) == [(AGENT, "LEFT")]
    assert state_change(effects) == ("ACTIVE", "INACTIVE")
    assert role_changes(effects) == [("bot", "ASSISTANT", "PRIMARY")]
    assert of_type(effects, ReleaseAgent) == [ReleaseAgent(AGENT, UnsubscribeReason.LEFT)]
    assert driver.machine.bot_role() is Role.PRIMARY
    assert running(driver) == {sla(FIRST_SESSION)}


def test_last_agent_leaves_by_direct_transfer_starts_no_inactivity() -> None:
    driver = active()
    effects = driver.handle(AgentLeave(AGENT, UnsubscribeReason.DIRECT_TRANSFER))
    assert names(effects) == [
        "AGENT_UNSUBSCRIBED",
        "TOPIC_STATE_CHANGED",
        "PARTICIPANT_ROLE_CHANGED",
        "AGENT_SLA_STOPPED",
    ]
    assert unsubscribed(effects) == [(AGENT, "DIRECT_TRANSFER")]
    assert driver.state is State.INACTIVE
    assert running(driver) == set()


def test_last_agent_leaves_on_hold() -> None:
    driver = on_hold()
    effects = driver.handle(AgentLeave(AGENT))
    assert state_change(effects) == ("ON_HOLD", "INACTIVE")
    assert running(driver) == {sla(FIRST_SESSION)}  # the hold timer went with ON_HOLD
    assert driver.advance(30_000) == []


def test_last_agent_leaves_with_wrap_up_on() -> None:
    driver = active(WRAP_ON)
    effects = driver.handle(AgentLeave(AGENT))
    assert names(effects) == [
        "PARTICIPANT_ROLE_CHANGED",
        "TOPIC_STATE_CHANGED",
        "PARTICIPANT_ROLE_CHANGED",
        "AGENT_SLA_STOPPED",
        "CUSTOMER_SLA_STARTED",
    ]
    assert role_changes(effects) == [(AGENT, "PRIMARY", "WRAP_UP"), ("bot", "ASSISTANT", "PRIMARY")]
    assert state_change(effects) == ("ACTIVE", "INACTIVE")
    assert of_type(effects, ReleaseAgent) == []
    wrap_key = TimerKey(TimerKind.WRAP_UP, AGENT)
    assert [(a.key, a.at) for a in of_type(effects, ArmAlarm) if a.key == wrap_key] == [
        (wrap_key, driver.now + 60_000)
    ]
    assert driver.machine.participant_role(AGENT) is Role.WRAP_UP
    assert driver.advance(59_999) == []
    expired = driver.advance(1)
    assert names(expired) == ["AGENT_UNSUBSCRIBED"]
    assert unsubscribed(expired) == [(AGENT, "WRAP_UP_EXPIRED")]
    assert of_type(expired, ReleaseAgent) == [
        ReleaseAgent(AGENT, UnsubscribeReason.WRAP_UP_EXPIRED)
    ]
    assert driver.state is State.INACTIVE
    assert driver.machine.subscribed_agents() == []


def test_agent_in_wrap_up_cannot_leave_voluntarily_but_can_apply() -> None:
    driver = inactive_wrapping_up()
    assert_refused(driver, AgentLeave(AGENT))
    effects = driver.handle(ApplyWrapUp(AGENT, ("SOLD",), "done"))
    assert names(effects) == ["WRAPUP_APPLIED", "AGENT_UNSUBSCRIBED"]
    assert unsubscribed(effects) == [(AGENT, "WRAP_UP_APPLIED")]
    assert driver.state is State.INACTIVE
    assert driver.advance(60_000) == []  # its wrap-up alarm is stale


def test_primary_leaves_while_assistant_remains() -> None:
    driver = active()
    driver.handle(SubscribeAgent("a2"))
    effects = driver.handle(AgentLeave(AGENT))
    assert names(effects) == ["AGENT_UNSUBSCRIBED", "PARTICIPANT_ROLE_CHANGED"]
    assert role_changes(effects) == [("a2", "ASSISTANT", "PRIMARY")]
    assert driver.state is State.ACTIVE
    assert driver.machine.participant_role("a2") is Role.PRIMARY


def test_primary_leaves_into_wrap_up_while_assistant_remains() -> None:
    driver = active(WRAP_ON)
    driver.handle(SubscribeAgent("a2"))
    effects = driver.handle(AgentLeave(AGENT))
    assert names(effects) == ["PARTICIPANT_ROLE_CHANGED", "PARTICIPANT_ROLE_CHANGED"]
    assert role_changes(effects) == [(AGENT, "PRIMARY", "WRAP_UP"), ("a2", "ASSISTANT", "PRIMARY")]
    assert driver.state is State.ACTIVE
    assert TimerKey(TimerKind.WRAP_UP, AGENT) in running(driver)


def test_last_agent_leaves_customer_left_closes() -> None:
    driver = customer_left()
    effects = driver.handle(AgentLeave(AGENT))
    assert names(effects) == ["AGENT_UNSUBSCRIBED", "TOPIC_STATE_CHANGED"]
    assert state_change(effects) == ("CUSTOMER_LEFT", "CLOSING")
    assert len(of_type(effects, ArchiveConversation)) == 1


# ---------------------------------------------------------------------- the customer leaves


def test_last_customer_session_ends_in_active_without_wrap_up() -> None:
    driver = active()
    effects = driver.handle(EndSession(FIRST_SESSION))
    assert names(effects) == ["CHANNEL_SESSION_ENDED", "TOPIC_STATE_CHANGED", "AGENT_SLA_STOPPED"]
    assert only(effects, "CHANNEL_SESSION_ENDED").data == {"end_reason": "CUSTOMER"}
    assert state_change(effects) == ("ACTIVE", "CUSTOMER_LEFT")
    assert driver.machine.participant_role(AGENT) is Role.PRIMARY
    assert running(driver) == set()


def test_last_customer_session_ends_in_active_with_wrap_up() -> None:
    driver = active(WRAP_ON)
    driver.handle(SubscribeAgent("a2"))
    effects = driver.handle(EndSession(FIRST_SESSION))
    assert names(effects) == [
        "CHANNEL_SESSION_ENDED",
        "TOPIC_STATE_CHANGED",
        "PARTICIPANT_ROLE_CHANGED",
        "PARTICIPANT_ROLE_CHANGED",
        "AGENT_SLA_STOPPED",
    ]
    assert state_change(effects) == ("ACTIVE", "WRAP_UP")
    assert role_changes(effects) == [
        (AGENT, "PRIMARY", "WRAP_UP"),
        ("a2", "ASSISTANT", "WRAP_UP"),
    ]
    assert {a.key for a in of_type(effects, ArmAlarm)} == {
        TimerKey(TimerKind.WRAP_UP, AGENT),
        TimerKey(TimerKind.WRAP_UP, "a2"),
    }
    assert running(driver) == {
        TimerKey(TimerKind.WRAP_UP, AGENT),
        TimerKey(TimerKind.WRAP_UP, "a2"),
    }


def test_last_customer_session_ends_on_hold() -> None:
    driver = on_hold()
    effects = driver.handle(EndSession(FIRST_SESSION))
    assert state_change(effects) == ("ON_HOLD", "CUSTOMER_LEFT")
    assert running(driver) == set()
    held = on_hold(WRAP_ON)
    assert state_change(held.handle(EndSession(FIRST_SESSION))) == ("ON_HOLD", "WRAP_UP")


def test_last_customer_session_ends_in_created_cancels_request() -> None:
    driver = created()
    driver.handle(RequestAgent("default", SYSTEM))
    request_id = driver.machine.pending_request
    effects = driver.handle(EndSession(FIRST_SESSION))
    assert names(effects) == ["CHANNEL_SESSION_ENDED", "TOPIC_STATE_CHANGED"]
    assert state_change(effects) == ("CREATED", "CLOSING")
    assert of_type(effects, CancelRoute) == [CancelRoute(str(request_id), "default")]
    assert driver.machine.pending_request is None
    assert len(of_type(effects, ArchiveConversation)) == 1


def test_last_customer_session_ends_in_created_stops_its_inactivity() -> None:
    driver = created()
    effects = driver.handle(EndSession(FIRST_SESSION))
    assert names(effects) == [
        "CHANNEL_SESSION_ENDED",
        "TOPIC_STATE_CHANGED",
        "CUSTOMER_SLA_STOPPED",
    ]
    assert driver.state is State.CLOSING


def test_last_customer_session_ends_in_inactive_closes() -> None:
    driver = inactive()
    driver.handle(RequestAgent("default", SYSTEM))
    request_id = driver.machine.pending_request
    effects = driver.handle(EndSession(FIRST_SESSION))
    assert names(effects) == ["CHANNEL_SESSION_ENDED", "TOPIC_STATE_CHANGED"]
    assert state_change(effects) == ("INACTIVE", "CLOSING")
    assert of_type(effects, CancelRoute) == [CancelRoute(str(request_id), "default")]


def test_last_customer_session_ends_in_inactive_with_agents_wrapping_up() -> None:
    driver = inactive_wrapping_up()
    driver.handle(RequestAgent("default", SYSTEM))
    request_id = driver.machine.pending_request
    effects = driver.handle(EndSession(FIRST_SESSION))
    assert names(effects) == ["CHANNEL_SESSION_ENDED", "TOPIC_STATE_CHANGED"]
    assert state_change(effects) == ("INACTIVE", "WRAP_UP")
    assert of_type(effects, CancelRoute) == [CancelRoute(str(request_id), "default")]
    assert driver.machine.participant_role(AGENT) is Role.WRAP_UP
    assert of_type(effects, ArmAlarm) == []  # the agent's wrap-up timer keeps running
    expired = driver.advance(60_000)
    assert names(expired) == ["AGENT_UNSUBSCRIBED", "TOPIC_STATE_CHANGED"]
    assert unsubscribed(expired) == [(AGENT, "WRAP_UP_EXPIRED")]
    assert state_change(expired) == ("WRAP_UP", "CLOSING")


def test_session_that_is_not_the_last_ends_without_state_change() -> None:
    driver = active()
    driver.handle(StartSession("s2", Channel.SMS, "+2"))
    effects = driver.handle(EndSession("s2", SessionEndReason.NETWORK))
    assert names(effects) == ["CHANNEL_SESSION_ENDED", "CUSTOMER_SLA_STOPPED"]
    assert only(effects, "CHANNEL_SESSION_ENDED").data == {"end_reason": "NETWORK"}
    assert driver.state is State.ACTIVE


def test_customer_comes_back_to_customer_left() -> None:
    driver = customer_left()
    effects = driver.handle(StartSession("s2", Channel.WHATSAPP, "+2"))
    assert names(effects) == [
        "CHANNEL_SESSION_STARTED",
        "TOPIC_STATE_CHANGED",
        "CUSTOMER_SLA_STARTED",
    ]
    assert state_change(effects) == ("CUSTOMER_LEFT", "ACTIVE")
    assert driver.machine.participant_role(AGENT) is Role.PRIMARY
    assert only(effects, "CUSTOMER_SLA_STARTED").channel_session_id == "s2"


def test_customer_comes_back_to_wrap_up() -> None:
    driver = wrap_up()
    effects = driver.handle(StartSession("s2", Channel.WEB, "web-2"))
    assert names(effects) == [
        "CHANNEL_SESSION_STARTED",
        "TOPIC_STATE_CHANGED",
        "PARTICIPANT_ROLE_CHANGED",
        "CUSTOMER_SLA_STARTED",
    ]
    assert state_change(effects) == ("WRAP_UP", "INACTIVE")
    assert role_changes(effects) == [("bot", "ASSISTANT", "PRIMARY")]
    assert driver.machine.participant_role(AGENT) is Role.WRAP_UP


def test_wrap_up_applied_by_last_agent_closes() -> None:
    driver = active(WRAP_ON)
    driver.handle(SubscribeAgent("a2"))
    driver.handle(EndSession(FIRST_SESSION))
    first = driver.handle(ApplyWrapUp("a2", ("X",)))
    assert names(first) == ["WRAPUP_APPLIED", "AGENT_UNSUBSCRIBED"]
    assert driver.state is State.WRAP_UP
    effects = driver.handle(ApplyWrapUp(AGENT, ("SOLD", "UPSELL"), "happy"))
    assert names(effects) == ["WRAPUP_APPLIED", "TOPIC_STATE_CHANGED", "AGENT_UNSUBSCRIBED"]
    applied = only(effects, "WRAPUP_APPLIED")
    assert applied.type is EventType.ACTIVITY
    assert applied.data == {"agent_id": AGENT, "codes": ["SOLD", "UPSELL"], "note": "happy"}
    assert state_change(effects) == ("WRAP_UP", "CLOSING")
    assert unsubscribed(effects) == [(AGENT, "WRAP_UP_APPLIED")]
    assert of_type(effects, ReleaseAgent) == [
        ReleaseAgent(AGENT, UnsubscribeReason.WRAP_UP_APPLIED)
    ]
    assert len(of_type(effects, ArchiveConversation)) == 1


def test_apply_wrap_up_by_agent_not_in_wrap_up_is_refused() -> None:
    driver = active()
    assert_refused(driver, ApplyWrapUp(AGENT, ("X",)))
    wrapping = wrap_up()
    assert_refused(wrapping, ApplyWrapUp(AGENT, ("",)), InvalidArgument)
    assert_refused(wrapping, ApplyWrapUp(AGENT, tuple(f"c{i}" for i in range(33))), InvalidArgument)


# ---------------------------------------------------------------------- voice


def test_voice_session_stops_inactivity_and_agent_sla() -> None:
    driver = active()
    driver.handle(StartSession("s2", Channel.WHATSAPP, "+2"))
    driver.handle(BotMessage("hello", "b1"))
    assert running(driver) == {AGENT_SLA, sla(FIRST_SESSION), sla("s2")}
    effects = driver.handle(StartSession("v1", Channel.VOICE, "+3"))
    assert names(effects)[0] == "CHANNEL_SESSION_STARTED"
    assert sorted(names(effects)[1:]) == [
        "AGENT_SLA_STOPPED",
        "CUSTOMER_SLA_STOPPED",
        "CUSTOMER_SLA_STOPPED",
    ]
    stopped = {e.channel_session_id for e in published(effects) if e.name == "CUSTOMER_SLA_STOPPED"}
    assert stopped == {FIRST_SESSION, "s2"}
    assert running(driver) == set()

    message = driver.handle(CustomerMessage(FIRST_SESSION, "still here", "m1"))
    assert names(message) == ["CUSTOMER_MESSAGE"]  # no agent SLA, no inactivity while on voice
    assert driver.handle(AgentMessage(AGENT, "hi", "m2")) and running(driver) == set()

    ended = driver.handle(EndSession("v1"))
    assert names(ended) == ["CHANNEL_SESSION_ENDED", "CUSTOMER_SLA_STARTED", "CUSTOMER_SLA_STARTED"]
    started = {e.channel_session_id for e in published(ended) if e.name == "CUSTOMER_SLA_STARTED"}
    assert started == {FIRST_SESSION, "s2"}


def test_voice_ending_with_one_web_session_left_starts_its_inactivity() -> None:
    driver = Driver(first=StartSession("v1", Channel.VOICE, "+1"))
    driver.handle(StartSession("w1", Channel.WEB, "web-1"))
    assert running(driver) == set()
    effects = driver.handle(EndSession("v1"))
    assert names(effects) == ["CHANNEL_SESSION_ENDED", "CUSTOMER_SLA_STARTED"]
    assert only(effects, "CUSTOMER_SLA_STARTED").channel_session_id == "w1"
    assert driver.state is State.CREATED


# ---------------------------------------------------------------------- customer inactivity


def test_customer_inactivity_expiry_of_last_session_closes() -> None:
    driver = created()
    assert driver.advance(299_999) == []
    effects = driver.advance(1)
    assert names(effects) == [
        "CUSTOMER_SLA_EXPIRED",
        "TOPIC_STATE_CHANGED",
        "CHANNEL_SESSION_ENDED",
    ]
    assert only(effects, "CUSTOMER_SLA_EXPIRED").channel_session_id == FIRST_SESSION
    assert only(effects, "CHANNEL_SESSION_ENDED").data == {"end_reason": "INACTIVITY"}
    assert state_change(effects) == ("CREATED", "CLOSING")
    assert {e.timestamp for e in published(effects)} == {300_000}


def test_customer_inactivity_expiry_of_one_session_keeps_state() -> None:
    driver = inactive()  # s1's inactivity started when the agent left, at 2 s
    driver.handle(StartSession("s2", Channel.SMS, "+2"))
    driver.advance(10_000)
    driver.handle(CustomerMessage("s2", "hi", "m1"))  # s2's stops, s1's restarts at 12 s
    effects = driver.advance(300_000)
    assert names(effects) == ["CUSTOMER_SLA_EXPIRED", "CHANNEL_SESSION_ENDED"]
    assert {e.channel_session_id for e in published(effects)} == {FIRST_SESSION}
    assert driver.state is State.INACTIVE
    assert driver.machine.live_session_ids() == ["s2"]


def test_inactivity_thresholds_fire_at_their_time_and_never_restart() -> None:
    policy = Policy(
        inactivity_ms=100_000,
        inactivity_thresholds=(
            Threshold(50, ThresholdAction.NOTIFY_CUSTOMER),
            Threshold(80, ThresholdAction.NONE),
        ),
    )
    driver = created(policy)
    timer = driver.machine.running_timers()[sla(FIRST_SESSION)]
    assert driver.advance(49_999) == []
    half = driver.advance(1)
    assert names(half) == ["CUSTOMER_SLA_THRESHOLD"]
    event = only(half, "CUSTOMER_SLA_THRESHOLD")
    assert (event.timestamp, event.channel_session_id) == (50_000, FIRST_SESSION)
    assert event.data == {"percent": 50, "action": "NOTIFY_CUSTOMER"}
    after = driver.machine.running_timers()[sla(FIRST_SESSION)]
    # not restarted: same token and deadline; it only remembers which thresholds were reached
    assert (after.token, after.started_at, after.deadline) == (
        timer.token,
        timer.started_at,
        timer.deadline,
    )
    assert after.fired == (50,)
    assert of_type(half, ArmAlarm) == []
    late = driver.advance(30_000)
    assert names(late) == ["CUSTOMER_SLA_THRESHOLD"]
    assert only(late, "CUSTOMER_SLA_THRESHOLD").data == {"percent": 80, "action": "NONE"}
    assert only(late, "CUSTOMER_SLA_THRESHOLD").timestamp == 80_000
    end = driver.advance(20_000)
    assert names(end)[0] == "CUSTOMER_SLA_EXPIRED"
    assert end and published(end)[0].timestamp == 100_000
    assert "CUSTOMER_SLA_STARTED" not in driver.names()[4:]


def test_thresholds_of_a_restarted_timer_are_stale() -> None:
    policy = Policy(
        inactivity_ms=100_000,
        inactivity_thresholds=(Threshold(50, ThresholdAction.NOTIFY_CUSTOMER),),
    )
    driver = created(policy)
    driver.advance(40_000)
    driver.handle(BotMessage("anything else?", "b1"))  # restarts s1's timer at 40 s
    assert driver.advance(49_999) == []  # the 50 s and 100 s alarms of the first run are stale
    assert names(driver.advance(1)) == ["CUSTOMER_SLA_THRESHOLD"]  # 90 s
    assert driver.advance(49_999) == []
    assert names(driver.advance(1))[0] == "CUSTOMER_SLA_EXPIRED"  # 140 s


# ---------------------------------------------------------------------- agent SLA


def test_agent_sla_expiry_removes_agents_and_requests_again() -> None:
    driver = active()
    driver.handle(SubscribeAgent("a2"))
    driver.handle(SubscribeAgent("sup", role=Role.SILENT_MONITOR))
    subscribed_at = driver.now
    assert driver.advance(59_999) == []
    effects = driver.advance(1)
    assert names(effects) == [
        "AGENT_SLA_EXPIRED",
        "TOPIC_STATE_CHANGED",
        "AGENT_UNSUBSCRIBED",
        "AGENT_UNSUBSCRIBED",
        "PARTICIPANT_ROLE_CHANGED",
        "AGENT_REQUESTED",
    ]
    assert only(effects, "AGENT_SLA_EXPIRED").timestamp == subscribed_at + 60_000
    assert state_change(effects) == ("ACTIVE", "INACTIVE")
    assert unsubscribed(effects) == [(AGENT, "SLA_EXPIRED"), ("a2", "SLA_EXPIRED")]
    assert role_changes(effects) == [("bot", "ASSISTANT", "PRIMARY")]
    assert of_type(effects, ReleaseAgent) == [
        ReleaseAgent(AGENT, UnsubscribeReason.SLA_EXPIRED),
        ReleaseAgent("a2", UnsubscribeReason.SLA_EXPIRED),
    ]
    requested = only(effects, "AGENT_REQUESTED")
    assert requested.data["queue"] == "default"
    request_id = driver.machine.pending_request
    assert request_id == requested.data["request_id"]
    # The new request must not go back to the agents that let the SLA expire.
    assert of_type(effects, RouteRequest) == [
        RouteRequest(str(request_id), "default", excluded=(AGENT, "a2"))
    ]
    assert driver.machine.participant_role("sup") is Role.SILENT_MONITOR  # supervisors stay
    assert running(driver) == set()  # the queued request keeps inactivity stopped


def test_agent_sla_duration_and_requeue_follow_the_queue() -> None:
    policy = Policy(queue_sla_ms=MappingProxyType({"billing": 90_000}))
    driver = created(policy)
    driver.handle(RequestAgent("billing", SYSTEM))
    request_id = driver.machine.pending_request
    effects = driver.handle(SubscribeAgent(AGENT, request_id=request_id))
    assert only(effects, "AGENT_SLA_STARTED").data["seconds"] == 90
    assert [a.at for a in of_type(effects, ArmAlarm)] == [driver.now + 90_000]
    assert driver.advance(60_000) == []
    expired = driver.advance(30_000)
    assert "AGENT_SLA_EXPIRED" in names(expired)
    assert only(expired, "AGENT_REQUESTED").data["queue"] == "billing"
    assert [r.queue for r in of_type(expired, RouteRequest)] == ["billing"]


def test_agent_sla_thresholds() -> None:
    policy = Policy(agent_sla_thresholds=(Threshold(50, ThresholdAction.NOTIFY_AGENT),))
    driver = active(policy)
    effects = driver.advance(30_000)
    assert names(effects) == ["AGENT_SLA_THRESHOLD"]
    assert only(effects, "AGENT_SLA_THRESHOLD").data == {"percent": 50, "action": "NOTIFY_AGENT"}
    assert driver.state is State.ACTIVE


def test_agent_sla_starts_on_customer_message_and_stops_on_primary_message() -> None:
    driver = active()
    stop = driver.handle(AgentMessage(AGENT, "hello", "m1"))
    assert names(stop) == ["AGENT_MESSAGE", "AGENT_SLA_STOPPED", "CUSTOMER_SLA_STARTED"]
    again = driver.handle(CustomerMessage(FIRST_SESSION, "hi", "m2"))
    assert names(again) == ["CUSTOMER_MESSAGE", "CUSTOMER_SLA_STOPPED", "AGENT_SLA_STARTED"]
    driver.handle(SubscribeAgent("a2"))
    assistant = driver.handle(AgentMessage("a2", "me too", "m3"))
    assert names(assistant) == ["AGENT_MESSAGE", "CUSTOMER_SLA_STARTED"]  # SLA keeps running
    assert AGENT_SLA in running(driver)


# ---------------------------------------------------------------------- routing reports


def test_no_agent_available_restarts_inactivity_of_every_live_session_latest_first() -> None:
    """A session left without its inactivity timer would keep the conversation open for ever
    (no agent comes, and nothing else ends it)."""
    driver = created()
    driver.handle(StartSession("s2", Channel.SMS, "+2"))
    request = driver.handle(RequestAgent("default", SYSTEM))
    assert names(request) == ["AGENT_REQUESTED", "CUSTOMER_SLA_STOPPED", "CUSTOMER_SLA_STOPPED"]
    request_id = str(driver.machine.pending_request)
    effects = driver.handle(RoutingUpdate("NO_AGENT_AVAILABLE", request_id, "default"))
    assert names(effects) == ["NO_AGENT_AVAILABLE", "CUSTOMER_SLA_STARTED", "CUSTOMER_SLA_STARTED"]
    assert only(effects, "NO_AGENT_AVAILABLE").data == {"queue": "default"}
    started = [e.channel_session_id for e in published(effects) if e.name == "CUSTOMER_SLA_STARTED"]
    assert started == ["s2", FIRST_SESSION]
    assert driver.machine.pending_request is None
    assert driver.state is State.CREATED


def test_a_conversation_whose_agent_request_found_no_agent_closes_when_the_customer_goes_quiet() -> None:
    driver = created()
    driver.handle(StartSession("s2", Channel.SMS, "+2"))
    driver.handle(RequestAgent("default", SYSTEM))
    request_id = str(driver.machine.pending_request)
    driver.handle(RoutingUpdate("NO_AGENT_AVAILABLE", request_id, "default"))
    driver.advance(driver.machine.policy.inactivity_ms * 2)
    assert driver.state is not State.CREATED


def test_offer_and_rona_are_published_and_keep_the_request() -> None:
    driver = created()
    driver.handle(RequestAgent("default", SYSTEM))
    request_id = str(driver.machine.pending_request)
    offered = driver.handle(RoutingUpdate("AGENT_OFFERED", request_id, "default", AGENT))
    assert names(offered) == ["AGENT_OFFERED"]
    assert only(offered, "AGENT_OFFERED").data == {"queue": "default", "agent_id": AGENT}
    assert names(driver.handle(RoutingUpdate("RONA", request_id, "default", AGENT))) == ["RONA"]
    assert driver.machine.pending_request == request_id


def test_routing_update_for_stale_request_is_ignored() -> None:
    driver = created()
    driver.handle(RequestAgent("default", SYSTEM))
    before = fingerprint(driver.machine)
    assert driver.handle(RoutingUpdate("NO_AGENT_AVAILABLE", "conv-1/r0", "default")) == []
    assert fingerprint(driver.machine) == before


def test_second_request_while_pending_is_refused() -> None:
    driver = created()
    driver.handle(RequestAgent("default", SYSTEM))
    assert_refused(driver, RequestAgent("default", SYSTEM))


# ---------------------------------------------------------------------- closing


def test_end_conversation_from_active_then_archive() -> None:
    driver = active()
    driver.handle(SubscribeAgent("a2"))
    driver.handle(StartSession("s2", Channel.SMS, "+2"))
    assert running(driver) == {AGENT_SLA, sla("s2")}
    driver.advance(1_000)
    effects = driver.handle(EndConversation(EndedBy.AGENT))
    assert names(effects)[:6] == [
        "END_CONVERSATION",
        "TOPIC_STATE_CHANGED",
        "CHANNEL_SESSION_ENDED",
        "CHANNEL_SESSION_ENDED",
        "AGENT_UNSUBSCRIBED",
        "AGENT_UNSUBSCRIBED",
    ]
    assert sorted(names(effects)[6:]) == ["AGENT_SLA_STOPPED", "CUSTOMER_SLA_STOPPED"]
    assert only(effects, "END_CONVERSATION").data == {"by": "AGENT"}
    assert state_change(effects) == ("ACTIVE", "CLOSING")
    ended = [
        (e.channel_session_id, e.data["end_reason"])
        for e in published(effects)
        if e.name == "CHANNEL_SESSION_ENDED"
    ]
    assert ended == [(FIRST_SESSION, "FORCE_CLOSED"), ("s2", "FORCE_CLOSED")]
    assert unsubscribed(effects) == [(AGENT, "FORCE_CLOSED"), ("a2", "FORCE_CLOSED")]
    assert role_changes(effects) == []
    assert of_type(effects, ReleaseAgent) == [
        ReleaseAgent(AGENT, UnsubscribeReason.FORCE_CLOSED),
        ReleaseAgent("a2", UnsubscribeReason.FORCE_CLOSED),
    ]
    assert driver.state is State.CLOSING
    assert running(driver) == set()

    [archive] = of_type(effects, ArchiveConversation)
    last_seq = driver.events[-1].seq
    assert archive.record.state is State.CLOSED
    assert archive.record.seq == last_seq + 2 == driver.machine.seq
    assert archive.record.ended_at == driver.now
    assert all(s.state is SessionState.ENDED for s in archive.record.channel_sessions)
    assert all(p.state is ParticipantState.UNSUBSCRIBED for p in archive.record.participants)
    roles = {p.id: p.role for p in archive.record.participants}
    assert roles == {"bot": Role.ASSISTANT, AGENT: Role.PRIMARY, "a2": Role.ASSISTANT}
    closing_events = archive.closing_events
    assert [(e.name, e.seq) for e in closing_events] == [
        ("TOPIC_STATE_CHANGED", last_seq + 1),
        ("BOT_UNSUBSCRIBED", last_seq + 2),
    ]
    assert (closing_events[0].data["from"], closing_events[0].data["to"]) == ("CLOSING", "CLOSED")

    committed = driver.handle(ArchiveCommitted(archive.record.seq))
    assert of_type(committed, Publish) == [Publish(e) for e in closing_events]
    assert of_type(committed, ReportState) == [ReportState(State.CLOSED)]
    assert driver.steps[-1].state_after is State.CLOSED
    assert driver.machine.record() == archive.record
    assert driver.seqs() == list(range(1, driver.machine.seq + 1))


def test_end_conversation_cancels_pending_request() -> None:
    driver = created()
    driver.handle(RequestAgent("default", SYSTEM))
    request_id = str(driver.machine.pending_request)
    effects = driver.handle(EndConversation(EndedBy.BOT))
    assert of_type(effects, CancelRoute) == [CancelRoute(request_id, "default")]
    assert state_change(effects) == ("CREATED", "CLOSING")


def _every_command(driver: Driver) -> list[Command]:
    timer = TimerFired(AGENT_SLA, 1, 100)
    return [
        StartSession("s9", Channel.WEB, "web-9"),
        CustomerMessage(FIRST_SESSION, "hello?", "m9"),
        EndSession(FIRST_SESSION),
        RequestAgent("default", SYSTEM),
        SubscribeAgent("a9"),
        SubscribeAgent("a9", role=Role.SILENT_MONITOR),
        AgentMessage(AGENT, "hi", "m9"),
        BotMessage("hi", "b9"),
        BotNotification("hold on"),
        Hold(AGENT, 10),
        Resume(AGENT),
        AgentLeave(AGENT),
        Transfer(AGENT, "billing"),
        Consult(AGENT, "billing"),
        ConcludeConsult(AGENT, ConsultOutcome.END),
        Whisper(AGENT, "psst", "w9"),
        BargeIn(AGENT),
        Typing(session_id=FIRST_SESSION),
        ReadReceipt(1, session_id=FIRST_SESSION),
        ApplyWrapUp(AGENT, ("X",)),
        SetData("k", "v"),
        EndConversation(),
        AddActivity("RECORDING", {"url": "x"}, RECORDER),
        timer,
        RoutingUpdate("NO_AGENT_AVAILABLE", "conv-1/r1", "default"),
        ArchiveCommitted(driver.machine.seq),
    ]


def test_closed_conversation_refuses_everything_and_never_changes() -> None:
    driver = closing()
    driver.handle(ArchiveCommitted(driver.machine.seq))
    assert driver.state is State.CLOSED
    commands = _every_command(driver)
    assert {type(c) for c in commands} == set(COMMAND_TYPES)
    before = fingerprint(driver.machine)
    for command in commands:
        if isinstance(command, TimerFired | RoutingUpdate):
            assert driver.handle(command) == []  # stale reports are ignored, not refused
        else:
            assert_refused(driver, command)
    for alarm in driver.alarms():
        assert driver.handle(TimerFired(alarm.key, alarm.token, alarm.percent)) == []
    assert driver.advance(10 * 3_600_000) == []
    assert fingerprint(driver.machine) == before


def test_closing_refuses_live_commands() -> None:
    driver = closing()
    for command in _every_command(driver):
        if isinstance(command, TimerFired | RoutingUpdate | AddActivity | ArchiveCommitted):
            continue
        assert_refused(driver, command)


def test_add_activity_in_closing_joins_the_closing_events() -> None:
    driver = closing()
    first = driver.archive
    assert first is not None
    driver.advance(500)
    effects = driver.handle(AddActivity("RECORDING_LINK", {"url": "https://rec/1"}, RECORDER))
    [archive] = effects
    assert isinstance(archive, ArchiveConversation)
    last_seq = first.record.seq
    assert [(e.name, e.seq) for e in archive.closing_events] == [
        ("TOPIC_STATE_CHANGED", last_seq - 1),
        ("BOT_UNSUBSCRIBED", last_seq),
        ("RECORDING_LINK", last_seq + 1),
    ]
    activity = archive.closing_events[-1]
    assert activity.type is EventType.ACTIVITY
    assert activity.data == {"url": "https://rec/1"}
    assert activity.emitter == RECORDER
    assert archive.record.seq == last_seq + 1
    assert archive.record.state is State.CLOSED

    # the first archive write committed: the activity came too late for it
    committed = driver.handle(ArchiveCommitted(last_seq))
    assert [p.event for p in of_type(committed, Publish)] == list(archive.closing_events)
    assert of_type(committed, ArchiveLate) == [ArchiveLate((activity,))]
    assert driver.state is State.CLOSED
    assert driver.seqs() == list(range(1, last_seq + 2))


def test_add_activity_committed_with_the_archive_is_not_late() -> None:
    driver = closing()
    driver.handle(AddActivity("NOTE", {"n": 1}, RECORDER))
    committed = driver.handle(ArchiveCommitted(driver.machine.seq))
    assert of_type(committed, ArchiveLate) == []
    assert [e.name for e in published(committed)] == [
        "TOPIC_STATE_CHANGED",
        "BOT_UNSUBSCRIBED",
        "NOTE",
    ]


@pytest.mark.parametrize("build", [active, closing])
@pytest.mark.parametrize("name", ["AGENT_MESSAGE", "TOPIC_STATE_CHANGED", "CUSTOMER_SLA_EXPIRED"])
def test_add_activity_with_reserved_name_is_refused(build: Any, name: str) -> None:
    assert_refused(build(), AddActivity(name, {}, RECORDER), InvalidArgument)


def test_add_activity_in_open_state_is_published() -> None:
    driver = active()
    effects = driver.handle(AddActivity("CRM_LINKED", {"ticket": 7}, RECORDER))
    assert names(effects) == ["CRM_LINKED"]
    assert published(effects)[0].type is EventType.ACTIVITY


# ---------------------------------------------------------------------- data


def test_set_data_holds_at_most_ten_keys() -> None:
    driver = active()
    for i in range(10):
        effects = driver.handle(SetData(f"k{i}", i))
        assert names(effects) == ["CONVERSATION_DATA_CHANGED"]
        assert only(effects, "CONVERSATION_DATA_CHANGED").data == {"key": f"k{i}", "value": i}
    assert_refused(driver, SetData("k10", "one too many"), InvalidArgument)
    effects = driver.handle(SetData("k3", "changed"))
    assert names(effects) == ["CONVERSATION_DATA_CHANGED"]
    assert driver.machine.data["k3"] == "changed"
    assert len(driver.machine.data) == 10


def test_set_data_bad_values_are_refused() -> None:
    driver = active()
    assert_refused(driver, SetData("", 1), InvalidArgument)
    assert_refused(driver, SetData("k" * 65, 1), InvalidArgument)
    assert_refused(driver, SetData("k", [1, 2]), InvalidArgument)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- timer semantics


def test_starting_a_running_timer_rearms_it_without_stopped() -> None:
    driver = active()
    first = driver.machine.running_timers()[AGENT_SLA]
    driver.advance(5_000)
    effects = driver.handle(CustomerMessage(FIRST_SESSION, "hello?", "m1"))
    assert names(effects) == ["CUSTOMER_MESSAGE", "AGENT_SLA_STARTED"]
    second = driver.machine.running_timers()[AGENT_SLA]
    assert second.token != first.token
    assert second.deadline == first.deadline + 5_000
    assert [(a.token, a.at) for a in of_type(effects, ArmAlarm)] == [
        (second.token, second.deadline)
    ]
    before = fingerprint(driver.machine)
    # the first run's alarm comes and is ignored
    assert driver.advance(first.deadline - driver.now) == []
    assert fingerprint(driver.machine) == before
    assert names(driver.advance(5_000))[0] == "AGENT_SLA_EXPIRED"


def test_stopping_a_timer_that_is_not_running_emits_nothing() -> None:
    driver = active()
    assert "AGENT_SLA_STOPPED" in names(driver.handle(AgentMessage(AGENT, "a", "m1")))
    assert names(driver.handle(AgentMessage(AGENT, "b", "m2"))) == [
        "AGENT_MESSAGE",
        "CUSTOMER_SLA_STARTED",
    ]
    left = customer_left()
    assert names(left.handle(AgentLeave(AGENT))) == ["AGENT_UNSUBSCRIBED", "TOPIC_STATE_CHANGED"]


def test_stale_alarm_is_ignored() -> None:
    driver = created()
    key = sla(FIRST_SESSION)
    token = driver.machine.running_timers()[key].token
    driver.handle(BotMessage("hi", "b1"))  # re-arms with a new token
    before = fingerprint(driver.machine)
    assert driver.handle(TimerFired(key, token, 100)) == []
    assert driver.handle(TimerFired(TimerKey(TimerKind.HOLD), 999, 100)) == []
    assert fingerprint(driver.machine) == before


def test_alarms_due_at_the_same_instant_fire_in_arm_order() -> None:
    driver = created(Policy(inactivity_ms=100_000))
    driver.handle(StartSession("s2", Channel.SMS, "+2"))
    driver.handle(BotMessage("hi", "b1"))  # both restart at 0 ms: s1 then s2
    effects = driver.advance(100_000)
    assert [(e.name, e.channel_session_id) for e in published(effects)] == [
        ("CUSTOMER_SLA_EXPIRED", FIRST_SESSION),
        ("CHANNEL_SESSION_ENDED", FIRST_SESSION),
        ("CUSTOMER_SLA_EXPIRED", "s2"),
        ("TOPIC_STATE_CHANGED", None),
        ("CHANNEL_SESSION_ENDED", "s2"),
    ]


# ---------------------------------------------------------------------- sequence and time


def test_sequence_numbers_and_timestamps_over_a_whole_run() -> None:
    driver = Driver(
        Policy(
            wrap_up_enabled=True,
            inactivity_thresholds=(Threshold(50, ThresholdAction.NOTIFY_CUSTOMER),),
        )
    )
    script: list[Command | int] = [
        BotMessage("welcome", "b1"),
        2_000,
        CustomerMessage(FIRST_SESSION, "I want an agent", "m1"),
        RequestAgent("default", SYSTEM),
        RoutingUpdate("AGENT_OFFERED", "conv-1/r1", "default", "a9"),
        RoutingUpdate("RONA", "conv-1/r1", "default", "a9"),
        3_000,
        SubscribeAgent(AGENT, request_id="conv-1/r1"),
        CustomerMessage(FIRST_SESSION, "hello", "m2"),
        StartSession("s2", Channel.VOICE, "+1"),
        Hold(AGENT, 20),
        25_000,
        AgentMessage(AGENT, "thanks for waiting", "m3"),
        EndSession("s2"),
        SetData("topic", "billing"),
        200_000,
        EndSession(FIRST_SESSION),
        10_000,
        ApplyWrapUp(AGENT, ("DONE",)),
    ]
    for item in script:
        if isinstance(item, int):
            driver.advance(item)
        else:
            driver.handle(item)
    assert driver.state is State.CLOSING
    driver.advance(1_000)
    driver.handle(ArchiveCommitted(driver.machine.seq))
    assert driver.steps[-1].state_after is State.CLOSED
    assert driver.seqs() == list(range(1, len(driver.events) + 1))
    assert driver.machine.seq == len(driver.events)
    assert "CUSTOMER_SLA_THRESHOLD" in driver.names()
    for step in driver.steps:
        stamps = {e.timestamp for e in step.events}
        assert len(stamps) <= 1, step.command
        if isinstance(step.command, ArchiveCommitted):
            continue  # the closing events carry the time of CLOSING
        assert stamps <= {step.now}
    assert [e.timestamp for e in driver.events] == sorted(e.timestamp for e in driver.events)
    assert {e.conversation_id for e in driver.events} == {"conv-1"}
    assert len({e.id for e in driver.events}) == len(driver.events)


# ---------------------------------------------------------------------- refusals change nothing


@pytest.mark.parametrize(
    ("command", "kind"),
    [
        (CustomerMessage("nope", "hi", "m1"), Refused),
        (CustomerMessage(FIRST_SESSION, 123, "m1"), InvalidArgument),  # type: ignore[arg-type]
        (CustomerMessage(FIRST_SESSION, "x" * 70_000, "m1"), InvalidArgument),
        (EndSession("nope"), Refused),
        (AgentMessage("ghost", "hi", "m1"), Refused),
        (AgentMessage(AGENT, None, "m1"), InvalidArgument),  # type: ignore[arg-type]
        (AgentLeave("ghost"), Refused),
        (Resume(AGENT), IllegalTransition),
        (StartSession(FIRST_SESSION, Channel.WEB, "again"), IllegalTransition),
        (StartSession("s2", Channel.WEB, "x" * 257), InvalidArgument),
        (StartSession("s2", "FAX", "x"), InvalidArgument),  # type: ignore[arg-type]
        (SubscribeAgent("bot"), Refused),
        (SubscribeAgent("a2", role=Role.WRAP_UP), InvalidArgument),
        (SubscribeAgent("a2", role=Role.CUSTOMER), InvalidArgument),
        (AddActivity("x" * 65, {}, RECORDER), InvalidArgument),
        (AddActivity("", {}, RECORDER), InvalidArgument),
        (RoutingUpdate("WHATEVER", "conv-1/r0", "default"), None),
        (BotMessage(42, "b1"), InvalidArgument),  # type: ignore[arg-type]
    ],
)
def test_bad_arguments_in_active_change_nothing(
    command: Command, kind: type[Refused] | None
) -> None:
    driver = active()
    if kind is None:  # stale report: ignored before it is even looked at
        before = fingerprint(driver.machine)
        assert driver.handle(command) == []
        assert fingerprint(driver.machine) == before
    else:
        assert_refused(driver, command, kind)


def test_bad_arguments_in_created_change_nothing() -> None:
    driver = created()
    assert_refused(driver, RequestAgent("q" * 65, SYSTEM), InvalidArgument)
    assert_refused(driver, RequestAgent("", SYSTEM), InvalidArgument)
    driver.handle(RequestAgent("default", SYSTEM))
    request_id = str(driver.machine.pending_request)
    assert_refused(driver, RoutingUpdate("WHATEVER", request_id, "default"), InvalidArgument)
    ended = created()
    ended.handle(StartSession("s2", Channel.SMS, "+2"))
    ended.handle(EndSession("s2"))
    assert_refused(ended, CustomerMessage("s2", "hi", "m1"))
    assert_refused(ended, EndSession("s2"))
    assert_refused(ended, StartSession("s2", Channel.SMS, "+2"))  # ids are never reused


def test_bot_messages_need_a_subscribed_bot() -> None:
    driver = created(Policy(bot_enabled=False))
    assert_refused(driver, BotMessage("hi", "b1"))
    assert_refused(driver, BotNotification("hi"))


def test_bot_notification_starts_no_timer() -> None:
    driver = on_hold()
    effects = driver.handle(BotNotification("you are on hold"))
    assert names(effects) == ["BOT_NOTIFICATION"]
    assert running(driver) == {TimerKey(TimerKind.HOLD)}


def test_values_of_the_wrong_type_are_refused_and_change_nothing() -> None:
    """Commands built by other code than the gateway: a plain string where an enum belongs,
    a string where seconds belong, are refused before anything changes."""

    from domain.commands import AgentLeave, EndConversation, EndSession, Hold
    from domain.errors import InvalidArgument
    from tests.model_driver import active, fingerprint

    driver = active()
    machine = driver.machine
    session = machine.live_session_ids()[0]
    agent = next(a for a in machine.subscribed_agents())
    bad: list[Any] = [
        EndSession(session, "CUSTOMER"),  # type: ignore[arg-type]
        AgentLeave(agent, "LEFT"),  # type: ignore[arg-type]
        EndConversation("OPERATOR"),  # type: ignore[arg-type]
        Hold(agent, "30"),  # type: ignore[arg-type]
    ]
    for command in bad:
        before = fingerprint(machine)
        with pytest.raises(InvalidArgument):
            machine.handle(command, 1_000)
        assert fingerprint(machine) == before
