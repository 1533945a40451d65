"""The transition table against the machine: every state x every command, refusals, and a
property test of the state rules' invariants (docs/STATES.md) over random command sequences
and policies."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
from domain.conversation import COMMAND_TYPES, ConversationMachine
from domain.effects import ArchiveConversation, Effect, Publish
from domain.enums import (
    OPEN_STATES,
    PRESENT_ROLES,
    Channel,
    ConsultOutcome,
    EndedBy,
    EventType,
    ParticipantType,
    Role,
    SessionEndReason,
    State,
    ThresholdAction,
    UnsubscribeReason,
)
from domain.errors import IllegalTransition, InvalidArgument, Refused, UnknownParticipant
from domain.policy import Policy, Threshold
from domain.records import SYSTEM, Emitter, Event
from domain.timers import OBSERVABLE_KINDS, TimerKey, TimerKind
from domain.transitions import (
    ACCEPTED_IN,
    SUPERVISOR_ACCEPTED_IN,
    TRANSITIONS,
    MissingTransition,
    Trigger,
    mermaid,
    target_of,
)
from tests.model_driver import (
    AGENT,
    BUILDERS,
    FIRST_SESSION,
    Driver,
    Step,
    active,
    fingerprint,
    inactive,
    published,
    wrap_up,
)

RECORDER = Emitter("recorder", ParticipantType.APP)
AGENT_STATES = frozenset({State.ACTIVE, State.ON_HOLD, State.CUSTOMER_LEFT})
CUSTOMER_STATES = frozenset({State.CREATED, State.ACTIVE, State.ON_HOLD, State.INACTIVE})
#: Where a timer of each observable kind may run, hence report a threshold or expire.
TIMER_STATES = {
    "AGENT_SLA": frozenset({State.ACTIVE}),
    "CUSTOMER_SLA": frozenset({State.CREATED, State.ACTIVE, State.INACTIVE}),
}


def is_row(source: State | None, target: State) -> bool:
    return any(source in row.sources and row.target is target for row in TRANSITIONS)


def state_changes(events: Iterable[Event]) -> list[tuple[State | None, State, str]]:
    return [
        (
            State(e.data["from"]) if e.data["from"] is not None else None,
            State(e.data["to"]),
            e.data["reason"],
        )
        for e in events
        if e.name == "TOPIC_STATE_CHANGED"
    ]


# ---------------------------------------------------------------------- representative commands


@dataclass(frozen=True)
class _View:
    live: list[str]
    present: list[str]
    wrapping: list[str]
    agents: list[str]


def _view(machine: ConversationMachine) -> _View:
    agents = machine.subscribed_agents()
    return _View(
        live=machine.live_session_ids(),
        present=[a for a in agents if machine.participant_role(a) in PRESENT_ROLES],
        wrapping=[a for a in agents if machine.participant_role(a) is Role.WRAP_UP],
        agents=agents,
    )


def representative(kind: type[Any], machine: ConversationMachine) -> tuple[Command, bool]:
    """An instance of ``kind`` for ``machine``, and whether it is otherwise valid there.

    Where no valid instance can exist (no live session for a customer message, no agent in
    WRAP_UP for apply_wrap_up, ...), an instance naming the obvious subject is returned with
    False: the machine must refuse it.
    """
    v = _view(machine)
    session = v.live[0] if v.live else FIRST_SESSION
    if kind is StartSession:
        return StartSession("s-new", Channel.SMS, "+99"), True
    if kind is CustomerMessage:
        return CustomerMessage(session, "hello", "m-new"), bool(v.live)
    if kind is EndSession:
        return EndSession(session), bool(v.live)
    if kind is RequestAgent:
        return RequestAgent("default", SYSTEM), machine.pending_request is None
    if kind is SubscribeAgent:
        return SubscribeAgent("a-new"), True
    if kind is AgentMessage:
        speakers = v.present + v.wrapping
        return AgentMessage(speakers[0] if speakers else AGENT, "hi", "m-a"), bool(speakers)
    if kind is BotMessage:
        return BotMessage("hi", "b-new"), machine.bot_role() is not None
    if kind is BotNotification:
        return BotNotification("note"), machine.bot_role() is not None
    if kind is Hold:
        return Hold(v.present[0] if v.present else AGENT, 10), bool(v.present)
    if kind is Resume:
        return Resume(v.present[0] if v.present else AGENT), bool(v.present)
    if kind is AgentLeave:
        if v.present:
            return AgentLeave(v.present[0]), True
        if v.wrapping:  # an agent in WRAP_UP only leaves involuntarily
            return AgentLeave(v.wrapping[0], UnsubscribeReason.AGENT_LOGOUT), True
        return AgentLeave(AGENT), False
    if kind is ApplyWrapUp:
        return ApplyWrapUp(v.wrapping[0] if v.wrapping else AGENT, ("X",)), bool(v.wrapping)
    if kind is SetData:
        return SetData("k", "v"), True
    if kind is EndConversation:
        return EndConversation(EndedBy.OPERATOR), True
    if kind is AddActivity:
        return AddActivity("RECORDING", {"url": "x"}, RECORDER), True
    if kind is TimerFired:
        timers = machine.running_timers()
        if timers:
            key, timer = min(timers.items(), key=lambda kv: (kv[1].deadline, kv[0]))
            return TimerFired(key, timer.token, 100), True
        return TimerFired(TimerKey(TimerKind.AGENT_SLA), 10_000, 100), True  # stale
    if kind is RoutingUpdate:
        if machine.pending_request is not None:
            return RoutingUpdate("RONA", machine.pending_request, "default", "a-x"), True
        return RoutingUpdate("NO_AGENT_AVAILABLE", "stale", "default"), True
    if kind is ArchiveCommitted:
        return ArchiveCommitted(machine.seq), True
    if kind is Transfer:
        primary = [a for a in v.present if machine.participant_role(a) is Role.PRIMARY]
        valid = bool(primary) and machine.pending_request is None
        return Transfer(primary[0] if primary else AGENT, "billing"), valid
    if kind is Consult:
        valid = bool(v.present) and machine.pending_request is None
        return Consult(v.present[0] if v.present else AGENT, "billing"), valid
    if kind is ConcludeConsult:  # no consult is ever running in the matrix's states
        return ConcludeConsult(v.present[0] if v.present else AGENT, ConsultOutcome.END), False
    if kind is Whisper:
        return Whisper(v.present[0] if v.present else AGENT, "psst", "w-1"), bool(v.present)
    if kind is BargeIn:  # no supervisor is subscribed in the matrix's states
        return BargeIn(v.agents[0] if v.agents else AGENT), False
    if kind is Typing:
        return Typing(session_id=session), bool(v.live)
    if kind is ReadReceipt:
        return ReadReceipt(machine.seq, session_id=session), bool(v.live)
    raise AssertionError(f"no representative for {kind}")


#: (state builder, command) pairs where the command is accepted in the state but no valid
#: instance can exist there: the machine must refuse it on the participant or session.
NO_VALID_INSTANCE = {
    ("CREATED", AgentLeave),
    ("CREATED", ApplyWrapUp),
    ("ACTIVE", ApplyWrapUp),
    ("ON_HOLD", ApplyWrapUp),
    ("CUSTOMER_LEFT", CustomerMessage),
    ("CUSTOMER_LEFT", EndSession),
    ("CUSTOMER_LEFT", ApplyWrapUp),
    ("WRAP_UP", CustomerMessage),
    ("WRAP_UP", EndSession),
    ("INACTIVE", AgentMessage),
    ("INACTIVE", AgentLeave),
    ("INACTIVE", ApplyWrapUp),
    ("ACTIVE", ConcludeConsult),  # no consult runs in the states built here
    ("ON_HOLD", ConcludeConsult),
    ("CREATED", Whisper),
    ("INACTIVE", Whisper),
    ("WRAP_UP", Whisper),
    ("CREATED", BargeIn),  # no supervisor in the states built here
    ("ACTIVE", BargeIn),
    ("ON_HOLD", BargeIn),
    ("INACTIVE", BargeIn),
    ("INACTIVE_WRAPPING_UP", Whisper),
    ("INACTIVE_WRAPPING_UP", BargeIn),
    ("CUSTOMER_LEFT", Typing),
    ("WRAP_UP", Typing),
    ("CUSTOMER_LEFT", ReadReceipt),
    ("WRAP_UP", ReadReceipt),
}

MATRIX = [(name, kind) for name in BUILDERS for kind in COMMAND_TYPES]


def test_every_command_type_has_an_accepted_in_row() -> None:
    assert set(ACCEPTED_IN) == set(COMMAND_TYPES)
    assert len(COMMAND_TYPES) == 25


@pytest.mark.parametrize("wrap", [False, True], ids=["wrap-up-off", "wrap-up-on"])
@pytest.mark.parametrize(("name", "kind"), MATRIX, ids=[f"{n}-{k.__name__}" for n, k in MATRIX])
def test_matrix(name: str, kind: type[Any], wrap: bool) -> None:
    driver = BUILDERS[name](Policy(wrap_up_enabled=wrap))
    machine = driver.machine
    state = machine.state
    assert state is not None
    command, valid = representative(kind, machine)
    before = fingerprint(machine)
    if state not in ACCEPTED_IN[kind]:
        with pytest.raises(IllegalTransition) as refused:
            driver.handle(command)
        assert refused.value.state == state.value
        assert fingerprint(machine) == before
        return
    assert valid == ((name, kind) not in NO_VALID_INSTANCE)
    if not valid:
        with pytest.raises(Refused):
            driver.handle(command)
        assert fingerprint(machine) == before
        return
    effects = driver.handle(command)
    after = machine.state
    changes = state_changes(published(effects))
    if after is state:
        assert changes == []
        return
    assert changes, f"{state} -> {after} without TOPIC_STATE_CHANGED"
    assert changes[0][0] is state and changes[-1][1] is after
    for source, target, reason in changes:
        assert is_row(source, target), (source, target)
        assert target_of(source, Trigger(reason), machine) is target


def test_matrix_reaches_every_row_of_the_table() -> None:
    """The matrix is not vacuous: its commands drive every (source, target) pair of the table
    (but none -> CREATED, which only ``open`` does)."""
    reached: set[tuple[State | None, State]] = set()
    for wrapping in (False, True):
        for name, kind in MATRIX:
            driver = BUILDERS[name](Policy(wrap_up_enabled=wrapping))
            command, valid = representative(kind, driver.machine)
            if valid and driver.state in ACCEPTED_IN[kind]:
                effects = driver.handle(command)
                reached |= {(s, t) for s, t, _ in state_changes(published(effects))}
    rows = {(s, row.target) for row in TRANSITIONS for s in row.sources}
    assert rows - reached == {(None, State.CREATED)}


@pytest.mark.parametrize("name", list(BUILDERS))
@pytest.mark.parametrize("role", [Role.SILENT_MONITOR, Role.WHISPER])
def test_supervisor_join_matrix(name: str, role: Role) -> None:
    driver = BUILDERS[name]()
    before = fingerprint(driver.machine)
    state = driver.state
    if state not in SUPERVISOR_ACCEPTED_IN:
        with pytest.raises(IllegalTransition):
            driver.handle(SubscribeAgent("sup", role=role))
        assert fingerprint(driver.machine) == before
        return
    timers = driver.machine.running_timers()
    effects = driver.handle(SubscribeAgent("sup", role=role))
    assert [e.name for e in published(effects)] == ["AGENT_SUBSCRIBED"]
    assert driver.state is state
    assert driver.machine.running_timers() == timers


@pytest.mark.parametrize("name", [n for n in BUILDERS if n not in ("CLOSING", "CLOSED")])
def test_barge_in_matrix(name: str) -> None:
    """A supervisor that barges in becomes PRIMARY (no agent is) or ASSISTANT, and the
    conversation is ACTIVE (ON_HOLD stays so) where the table accepts it; elsewhere it is
    refused and changes nothing."""
    driver = BUILDERS[name]()
    driver.handle(SubscribeAgent("sup", role=Role.WHISPER))
    state, machine = driver.state, driver.machine
    before = fingerprint(machine)
    if state not in ACCEPTED_IN[BargeIn]:
        with pytest.raises(IllegalTransition):
            driver.handle(BargeIn("sup"))
        assert fingerprint(machine) == before
        return
    had_primary = any(machine.participant_role(a) is Role.PRIMARY for a in machine.subscribed_agents())
    driver.handle(BargeIn("sup"))
    assert machine.participant_role("sup") is (Role.ASSISTANT if had_primary else Role.PRIMARY)
    assert driver.state is (State.ON_HOLD if state is State.ON_HOLD else State.ACTIVE)


# ---------------------------------------------------------------------- look up, then mutate


def _assert_unchanged(driver: Driver, command: Command, kind: type[Refused]) -> None:
    before = fingerprint(driver.machine)
    with pytest.raises(kind):
        driver.handle(command)
    assert fingerprint(driver.machine) == before


@pytest.mark.parametrize("name", [n for n in BUILDERS if n not in ("CLOSING", "CLOSED")])
def test_bad_arguments_change_nothing_in_every_open_state(name: str) -> None:
    driver = BUILDERS[name]()
    _assert_unchanged(driver, CustomerMessage("unknown", "hi", "m"), UnknownParticipant)
    _assert_unchanged(driver, EndSession("unknown"), UnknownParticipant)
    _assert_unchanged(driver, AgentLeave("ghost"), UnknownParticipant)
    _assert_unchanged(driver, ApplyWrapUp("ghost", ("X",)), UnknownParticipant)
    _assert_unchanged(driver, SetData("k" * 65, 1), InvalidArgument)
    _assert_unchanged(driver, AddActivity("n" * 65, {}, RECORDER), InvalidArgument)
    _assert_unchanged(driver, AddActivity("BOT_MESSAGE", {}, RECORDER), InvalidArgument)
    _assert_unchanged(driver, StartSession("s-long", Channel.WEB, "i" * 257), InvalidArgument)
    _assert_unchanged(driver, StartSession(FIRST_SESSION, Channel.WEB, "x"), IllegalTransition)
    _assert_unchanged(driver, BotMessage(b"bytes", "b"), InvalidArgument)  # type: ignore[arg-type]
    live = driver.machine.live_session_ids()
    if live:
        text = CustomerMessage(live[0], ["not", "text"], "m")  # type: ignore[arg-type]
        _assert_unchanged(driver, text, InvalidArgument)
    else:  # the ended session is known but may not speak or end again
        _assert_unchanged(driver, CustomerMessage(FIRST_SESSION, "hi", "m"), IllegalTransition)
        _assert_unchanged(driver, EndSession(FIRST_SESSION), IllegalTransition)
    for agent in driver.machine.subscribed_agents():
        if driver.state in ACCEPTED_IN[AgentMessage]:
            bad = AgentMessage(agent, 7, "m")  # type: ignore[arg-type]
            _assert_unchanged(driver, bad, InvalidArgument)
        if driver.machine.participant_role(agent) is Role.WRAP_UP:
            _assert_unchanged(driver, ApplyWrapUp(agent, ("c" * 65,)), InvalidArgument)
    if driver.state in ACCEPTED_IN[RequestAgent]:
        _assert_unchanged(driver, RequestAgent("q" * 65, SYSTEM), InvalidArgument)
    if driver.state in ACCEPTED_IN[Hold]:
        _assert_unchanged(driver, Hold(AGENT, 0), InvalidArgument)
        _assert_unchanged(driver, Hold("ghost", 10), UnknownParticipant)


def test_ended_session_and_left_agent_are_refused() -> None:
    driver = inactive()  # a1 has left
    _assert_unchanged(driver, AgentLeave(AGENT), UnknownParticipant)
    driver.handle(StartSession("s2", Channel.WEB, "web-2"))
    driver.handle(EndSession("s2"))
    _assert_unchanged(driver, CustomerMessage("s2", "hi", "m"), IllegalTransition)
    _assert_unchanged(driver, EndSession("s2"), IllegalTransition)
    left = wrap_up()
    _assert_unchanged(left, AgentLeave(AGENT, UnsubscribeReason.LEFT), IllegalTransition)


def test_mermaid_has_a_line_for_every_row() -> None:
    lines = set(mermaid().splitlines())
    assert "stateDiagram-v2" in lines
    for row in TRANSITIONS:
        label = row.trigger.value + (f" [{row.guard.label}]" if row.guard.label else "")
        if row.sources == frozenset(OPEN_STATES):
            assert f"    ANY_OPEN --> {row.target.value} : {label}" in lines
            continue
        for source in row.sources:
            name = "[*]" if source is None else source.value
            assert f"    {name} --> {row.target.value} : {label}" in lines, (source, row)


def test_transition_table_covers_the_design() -> None:
    """Spot checks of target_of against the state rules of docs/STATES.md."""

    @dataclass
    class Situation:
        wrap_up_enabled: bool = False
        agents_wrapping_up: bool = False

    off, on = Situation(), Situation(wrap_up_enabled=True)
    wrapping = Situation(agents_wrapping_up=True)
    assert target_of(None, Trigger.FIRST_SESSION, off) is State.CREATED
    assert target_of(State.ACTIVE, Trigger.LAST_CUSTOMER_LEFT, on) is State.WRAP_UP
    assert target_of(State.ACTIVE, Trigger.LAST_CUSTOMER_LEFT, off) is State.CUSTOMER_LEFT
    assert target_of(State.INACTIVE, Trigger.LAST_CUSTOMER_LEFT, wrapping) is State.WRAP_UP
    assert target_of(State.INACTIVE, Trigger.LAST_CUSTOMER_LEFT, off) is State.CLOSING
    assert target_of(State.CUSTOMER_LEFT, Trigger.LAST_AGENT_LEFT, off) is State.CLOSING
    assert target_of(State.WRAP_UP, Trigger.CUSTOMER_RETURNED, off) is State.INACTIVE
    with pytest.raises(MissingTransition):
        target_of(State.ACTIVE, Trigger.AGENT_ARRIVED, off)
    with pytest.raises(MissingTransition):
        target_of(State.CLOSING, Trigger.END_CONVERSATION, off)
    for state in OPEN_STATES:
        assert target_of(state, Trigger.END_CONVERSATION, off) is State.CLOSING
    assert target_of(State.CLOSING, Trigger.ARCHIVED, off) is State.CLOSED


# ---------------------------------------------------------------------- property test

AGENT_IDS = ("a0", "a1", "a2", "a3")
THRESHOLDS = st.lists(
    st.sampled_from(
        [
            Threshold(25, ThresholdAction.NONE),
            Threshold(50, ThresholdAction.NOTIFY_CUSTOMER),
            Threshold(80, ThresholdAction.NOTIFY_AGENT),
        ]
    ),
    unique=True,
    max_size=2,
).map(lambda ts: tuple(sorted(ts, key=lambda t: t.percent)))

POLICIES = st.builds(
    Policy,
    bot_enabled=st.booleans(),
    wrap_up_enabled=st.booleans(),
    wrap_up_ms=st.sampled_from([20_000, 60_000]),
    hold_max_ms=st.just(600_000),
    agent_sla_ms=st.sampled_from([30_000, 60_000]),
    agent_sla_thresholds=THRESHOLDS,
    queue_sla_ms=st.just(MappingProxyType({"billing": 45_000})),
    inactivity_ms=st.sampled_from([60_000, 120_000]),
    channel_inactivity_ms=st.just(MappingProxyType({"WHATSAPP": 200_000})),
    inactivity_thresholds=THRESHOLDS,
)
CHANNELS = st.sampled_from([Channel.WEB, Channel.WHATSAPP, Channel.SMS, Channel.VOICE])
ROLES = (None, None, None, Role.PRIMARY, Role.ASSISTANT, Role.SILENT_MONITOR, Role.WHISPER)
HOLD_SECONDS = (10, 30, 0.5, 600, 0, -5, 601, True)
LEAVE_REASONS = (
    UnsubscribeReason.LEFT,
    UnsubscribeReason.LEFT,
    UnsubscribeReason.DIRECT_TRANSFER,
    UnsubscribeReason.AGENT_LOGOUT,
)
ADVANCES = (500, 5_000, 15_000, 20_000, 30_000, 45_000, 60_000, 300_000)
ROUTING = ("NO_AGENT_AVAILABLE", "RONA", "AGENT_OFFERED")
#: Operations, repeated to weight them: agents and time matter most, ending the whole
#: conversation least.
OPS = (
    *["start"] * 2,
    *["customer_message"] * 3,
    *["end_session"] * 2,
    *["request"] * 2,
    *["subscribe"] * 4,
    *["agent_message"] * 3,
    *["hold"] * 3,
    *["resume"] * 2,
    *["leave"] * 2,
    *["apply_wrap_up"] * 2,
    "set_data",
    "bot_message",
    *["routing"] * 2,
    "activity",
    "end_conversation",
    "archive_committed",
    *["advance"] * 5,
)
#: The command type each operation sends.
OP_TYPES: dict[str, type[Any]] = {
    "start": StartSession,
    "customer_message": CustomerMessage,
    "end_session": EndSession,
    "request": RequestAgent,
    "subscribe": SubscribeAgent,
    "agent_message": AgentMessage,
    "hold": Hold,
    "resume": Resume,
    "leave": AgentLeave,
    "apply_wrap_up": ApplyWrapUp,
    "set_data": SetData,
    "bot_message": BotMessage,
    "routing": RoutingUpdate,
    "activity": AddActivity,
    "end_conversation": EndConversation,
    "archive_committed": ArchiveCommitted,
}
PARAMS = st.tuples(st.integers(0, 7), st.integers(0, 7), st.integers(0, 5))


def _operations(state: State | None) -> list[str]:
    """The operations the state accepts (and advancing the clock), weighted as in OPS."""
    return [op for op in OPS if op == "advance" or state in ACCEPTED_IN[OP_TYPES[op]]]


def draw_step(data: st.DataObject, state: State | None) -> tuple[str, int, int, int]:
    """One step: an operation and three small numbers it reads as it needs them (which
    subject, which variant, whether to pick an existing subject or any name at all).

    Mostly an operation the state accepts, so that long runs reach deep states; one time in
    six any operation at all, so that refusals of the state are exercised too.
    """
    anything = data.draw(st.integers(0, 5)) == 0
    op = data.draw(st.sampled_from(OPS if anything else _operations(state)))
    i, j, k = data.draw(PARAMS)
    return op, i, j, k


class _Checker:
    """Follows one driver and checks the invariants of docs/STATES.md after every step."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self.checked_steps = 0
        self.timers_seen: set[tuple[str, str | None]] = set()
        self.closed_fingerprint: dict[str, Any] | None = None
        self.had_primary = False

    def check(self) -> None:
        driver = self.driver
        machine = driver.machine
        # sequence numbers: 1..n, gap-free, in publication order; the only numbers given out
        # and not yet published are the closing events of a conversation being archived
        assert driver.seqs() == list(range(1, len(driver.events) + 1))
        pending = 0
        if machine.state is State.CLOSING:
            assert driver.archive is not None
            pending = len(driver.archive.closing_events)
            assert driver.archive.record.state is State.CLOSED
            assert driver.archive.record.seq == machine.seq
        assert machine.seq == len(driver.events) + pending

        for step in driver.steps[self.checked_steps :]:
            self.check_step(step)
        self.checked_steps = len(driver.steps)
        self._check_state()

    def check_step(self, step: Step) -> None:
        events = step.events
        # one trigger, one timestamp (an ArchiveCommitted publishes events of the CLOSING time)
        if not isinstance(step.command, ArchiveCommitted):
            assert {e.timestamp for e in events} <= {step.now}
        # state changes: rows of the table, chained from the state before
        state = step.state_before
        for source, target, _ in state_changes(events):
            assert source is state, (source, state)
            assert is_row(source, target), (source, target)
            state = target
        assert state is step.state_after
        if step.state_before is None:
            assert step.state_after is State.CREATED
        # thresholds and expiries only where their timer may run, and only from alarms
        for event in events:
            for kind, states in TIMER_STATES.items():
                if event.name in (f"{kind}_THRESHOLD", f"{kind}_EXPIRED"):
                    assert isinstance(step.command, TimerFired)
                    assert step.state_before in states, (event.name, step.state_before)
        self._check_order(step)
        if isinstance(step.command, TimerFired) and events:
            self._check_alarm(step)
        self._check_timer_events(events)
        archives = [e for e in step.effects if isinstance(e, ArchiveConversation)]
        if step.state_after is State.CLOSING and step.state_before is not State.CLOSING:
            assert len(archives) == 1
        if step.state_after is State.CLOSED:
            assert not any(isinstance(e, ArchiveConversation) for e in step.effects)

    @staticmethod
    def _check_order(step: Step) -> None:
        """Within each trigger: own event, TOPIC_STATE_CHANGED second, timer stops, starts."""
        names = [e.name for e in step.events]
        triggers = [names]
        if isinstance(step.command, AgentMessage) and step.state_before is State.ON_HOLD:
            split = names.index("AGENT_MESSAGE")  # the resume is a trigger of its own, first
            assert names[0] == "CONVERSATION_RESUMED"
            triggers = [names[:split], names[split:]]
        for trigger in triggers:
            timers = [n for n in trigger if _is_timer(n)]
            assert trigger[len(trigger) - len(timers) :] == timers, trigger  # timers come last
            stopped = [n.endswith("_STOPPED") for n in timers]
            assert stopped == sorted(stopped, reverse=True), trigger  # stops before starts
            if not isinstance(step.command, ArchiveCommitted):  # closing events start with it
                changes = [i for i, n in enumerate(trigger) if n == "TOPIC_STATE_CHANGED"]
                assert changes in ([], [1]), trigger  # right after the trigger's own event

    @staticmethod
    def _check_alarm(step: Step) -> None:
        """An alarm that did something belongs to the running timer and is on time."""
        alarm = step.command
        assert isinstance(alarm, TimerFired)
        timer = step.timers_before.get(alarm.key)
        assert timer is not None and timer.token == alarm.token, (alarm, timer)
        duration = timer.deadline - timer.started_at
        assert step.now == timer.started_at + duration * alarm.percent // 100

    def _check_timer_events(self, events: list[Event]) -> None:
        """_STOPPED, _THRESHOLD and _EXPIRED only for a running timer."""
        for event in events:
            for kind in ("AGENT_SLA", "CUSTOMER_SLA"):
                if not event.name.startswith(kind + "_"):
                    continue
                key = (kind, event.channel_session_id)
                suffix = event.name[len(kind) + 1 :]
                if suffix == "STARTED":
                    self.timers_seen.add(key)
                elif suffix in ("STOPPED", "EXPIRED"):
                    assert key in self.timers_seen, (event.name, key)
                    self.timers_seen.discard(key)
                else:
                    assert key in self.timers_seen, (event.name, key)

    def _check_state(self) -> None:
        machine = self.driver.machine
        state = machine.state
        assert state is not None
        if state in AGENT_STATES:
            assert machine.agents_present, state
        if state in CUSTOMER_STATES:
            assert machine.customer_present, state
        if not machine.customer_present and not machine.subscribed_agents():
            assert state in (State.CLOSING, State.CLOSED), state
        if state is State.WRAP_UP:
            assert machine.agents_wrapping_up and not machine.customer_present
        # a PRIMARY that goes while other agents stay present hands over to one of them
        roles = [machine.participant_role(a) for a in machine.subscribed_agents()]
        if self.had_primary and machine.agents_present:
            assert Role.PRIMARY in roles, roles
        self.had_primary = Role.PRIMARY in roles
        # the observable timers the events say are running are the machine's
        running = machine.running_timers()
        observable = {
            (k.kind.value, k.subject or None) for k in running if k.kind in OBSERVABLE_KINDS
        }
        assert observable == self.timers_seen
        for key in running:
            if key.kind is TimerKind.AGENT_SLA:
                assert state is State.ACTIVE and not machine.voice_active
            elif key.kind is TimerKind.CUSTOMER_SLA:
                assert state in TIMER_STATES["CUSTOMER_SLA"]
                assert key.subject in machine.live_session_ids() and not machine.voice_active
            elif key.kind is TimerKind.HOLD:
                assert state is State.ON_HOLD
            else:
                assert machine.participant_role(key.subject) is Role.WRAP_UP
        if state is State.ON_HOLD:
            assert TimerKey(TimerKind.HOLD) in running
        if state in OPEN_STATES:
            for agent in machine.subscribed_agents():
                if machine.participant_role(agent) is Role.WRAP_UP:
                    assert TimerKey(TimerKind.WRAP_UP, agent) in running
        # CLOSED never changes again
        if state is State.CLOSED:
            if self.closed_fingerprint is None:
                self.closed_fingerprint = fingerprint(machine)
            assert fingerprint(machine) == self.closed_fingerprint
            assert not running


def _is_timer(name: str) -> bool:
    return name.startswith(("AGENT_SLA_", "CUSTOMER_SLA_")) and name.endswith(
        ("_STARTED", "_STOPPED")
    )


def _pick(existing: list[str], fallback: Iterable[str], index: int, any_name: bool) -> str:
    """Mostly a subject that exists; sometimes any name (possibly unknown or gone)."""
    pool = list(fallback) if any_name or not existing else existing
    return pool[index % len(pool)]


def _command(step: tuple[str, int, int, int], driver: Driver, counter: int) -> Command | None:
    machine = driver.machine
    op, i, j, k = step
    any_name = k == 0
    session = _pick(machine.live_session_ids(), machine.session_ids(), i, any_name)
    agent = _pick(machine.subscribed_agents(), AGENT_IDS, i, any_name)
    if op == "start":
        channel = (Channel.WEB, Channel.WHATSAPP, Channel.SMS, Channel.VOICE)[j % 4]
        return StartSession(f"s-{counter}", channel, f"id-{counter}")
    if op == "customer_message":
        return CustomerMessage(session, "hello", f"m-{counter}")
    if op == "end_session":
        reason = (SessionEndReason.CUSTOMER, SessionEndReason.NETWORK)[j % 2]
        return EndSession(session, reason)
    if op == "request":
        return RequestAgent(("default", "billing")[j % 2], SYSTEM)
    if op == "subscribe":
        request = machine.pending_request if k % 2 else None
        return SubscribeAgent(AGENT_IDS[i % len(AGENT_IDS)], ROLES[j % len(ROLES)], request)
    if op == "agent_message":
        return AgentMessage(agent, "hi", f"m-{counter}")
    if op == "hold":
        return Hold(agent, HOLD_SECONDS[j])
    if op == "resume":
        return Resume(agent)
    if op == "leave":
        return AgentLeave(agent, LEAVE_REASONS[j % len(LEAVE_REASONS)])
    if op == "apply_wrap_up":
        return ApplyWrapUp(agent, ("DONE",), "note")
    if op == "set_data":
        return SetData(f"k{i + j}", counter)
    if op == "bot_message":
        return BotMessage("can I help?", f"b-{counter}")
    if op == "routing":
        pending = None if any_name else machine.pending_request
        return RoutingUpdate(ROUTING[j % 3], pending or "stale", "default", "a-x")
    if op == "activity":
        return AddActivity(("RECORDING", "AGENT_MESSAGE")[j % 2], {"n": counter}, RECORDER)
    if op == "end_conversation":
        return EndConversation()
    if op == "archive_committed":
        return ArchiveCommitted(machine.seq if j % 2 else len(driver.events))
    assert op == "advance"
    return None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy=POLICIES, first=CHANNELS, length=st.integers(10, 40), data=st.data())
def test_random_sequences_keep_the_invariants(
    policy: Policy, first: Channel, length: int, data: st.DataObject
) -> None:
    driver = Driver(policy, first=StartSession("s-0", first, "id-0"))
    checker = _Checker(driver)
    checker.check()
    for counter in range(1, length + 1):
        step = draw_step(data, driver.state)
        command = _command(step, driver, counter)
        if command is None:
            driver.advance(ADVANCES[step[1]])
            checker.check()
            continue
        before = fingerprint(driver.machine)
        events_before = len(driver.events)
        effects: list[Effect] | Refused = driver.try_handle(command)
        if isinstance(effects, Refused):
            assert fingerprint(driver.machine) == before, command
            assert len(driver.events) == events_before
            assert effects.conversation_id == "conv-1"
        elif not effects:
            assert fingerprint(driver.machine) == before, command
        checker.check()


def test_property_checker_rejects_a_broken_sequence() -> None:
    """The checker is not vacuous: an agent SLA expiry reported in INACTIVE is caught."""
    driver = active()
    checker = _Checker(driver)
    checker.check()
    driver.handle(AgentLeave(AGENT))
    checker.check()
    fake = Event(
        "conv-1",
        "room-1",
        len(driver.events) + 1,
        "AGENT_SLA_EXPIRED",
        EventType.NOTIFICATION,
        driver.now,
        SYSTEM,
        None,
        {},
    )
    alarm = TimerFired(TimerKey(TimerKind.AGENT_SLA), 1, 100)
    step = Step(alarm, driver.now, State.INACTIVE, State.INACTIVE, [Publish(fake)])
    with pytest.raises(AssertionError):
        checker.check_step(step)
