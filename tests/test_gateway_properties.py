"""Properties of the whole engine through the gateway: determinism and invariants under random use.

The invariants come from docs/STATES.md and docs/EVENTS.md: one live conversation per room, gap-free
sequence numbers, timer events only in the states whose timers may run, CLOSED is terminal,
an agent is never subscribed to more live conversations than its limit, every state change is
published, and every conversation closes once its customer and agents are gone.
"""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, example, given, note, settings
from hypothesis import strategies as st

from runtime.gateway import Gateway, GatewayError, SessionRef
from tests.conftest import EngineHung, MakeGateway, deep_merge, storage_config, watchdog

COUNTED_ROLES = {"PRIMARY", "ASSISTANT", "WRAP_UP"}
AGENT_SLA_STATES = {"ACTIVE"}
CUSTOMER_SLA_STATES = {"CREATED", "ACTIVE", "INACTIVE"}
TIMER_OUTCOMES = ("_THRESHOLD", "_EXPIRED")
ENVELOPE = {"seq", "name", "type", "timestamp", "emitter", "channel_session_id", "data"}


# ---------------------------------------------------------------------- determinism


def _scripted_run(gw: Gateway) -> dict[str, Any]:
    """A fixed script: several customers, channels, agents, routing, timers and closings."""
    refs: list[SessionRef] = []
    gw.agent_login("ann", max_conversations=2)
    gw.agent_login("ben", queues=("default", "billing"), max_conversations=1)
    gw.agent_ready("ann")
    a = gw.start_session("cust-a", "WEB", "visitor-a")
    b = gw.start_session("cust-b", "WHATSAPP", "+3100000001")
    refs += [a, b]
    gw.customer_message(a.channel_session_id, "hello")
    gw.customer_message(b.channel_session_id, "I need a human")
    gw.advance(12.5)
    c = gw.start_session("cust-c", "SMS", "+3100000002")
    refs.append(c)
    gw.request_agent(c.conversation_id, queue="billing")
    gw.agent_ready("ben")
    gw.agent_message("ben", c.conversation_id, "Billing, Ben here")
    gw.hold("ben", c.conversation_id, 30)
    gw.agent_message("ann", b.conversation_id, "Hi, Ann here")
    refs.append(gw.start_session("cust-b", "VOICE", "+3100000001"))
    gw.customer_message(a.channel_session_id, "agent please")
    gw.advance(61)  # the hold expires; a's agent SLA expires and a asks again
    gw.set_data(a.conversation_id, "tier", "gold")
    gw.end_session(refs[-1].channel_session_id)
    gw.end_session(a.channel_session_id)
    gw.advance(200)
    refs.append(gw.start_session("cust-a", "APP", "device-1"))  # a new conversation
    gw.end_conversation(c.conversation_id)
    assert gw.conversation(c.conversation_id)["state"] == "CLOSED"
    gw.add_activity(c.conversation_id, "RECORDING_READY", {"url": "https://rec/1"})
    gw.advance(400)
    gw.agent_logout("ann")
    gw.advance(400)
    live = gw.start_session("cust-d", "EMAIL", "d@example.com")
    refs.append(live)
    gw.customer_message(live.channel_session_id, "I need an agent")
    gw.advance(5)
    conversations = sorted({r.conversation_id for r in refs})
    rooms = sorted({r.room_id for r in refs})
    return {
        "refs": refs,
        "events": {cid: gw.events(cid) for cid in conversations},
        "snapshots": {cid: gw.conversation(cid) for cid in conversations},
        "history": {room: gw.history(room) for room in rooms},
        "status": gw.status(),
    }


def test_same_seed_same_run_other_seed_other_ids(make_gateway: MakeGateway) -> None:
    with make_gateway(seed=7) as gw:
        first = _scripted_run(gw)
    with make_gateway(seed=7) as gw:
        second = _scripted_run(gw)
    with make_gateway(seed=8) as gw:
        other = _scripted_run(gw)

    # The script did reach archived and live conversations, several rooms, a late activity.
    states = [s["state"] for s in first["snapshots"].values()]
    assert states.count("CLOSED") >= 3
    assert "CREATED" in states
    assert sum(len(h) for h in first["history"].values()) == states.count("CLOSED")
    every = [e["name"] for events in first["events"].values() for e in events]
    for name in ("AGENT_SUBSCRIBED", "CONVERSATION_PAUSED", "AGENT_SLA_EXPIRED", "RECORDING_READY"):
        assert name in every, name

    assert first["refs"] == second["refs"]
    assert first["events"] == second["events"]
    assert first["snapshots"] == second["snapshots"]
    assert first["history"] == second["history"]
    assert first["status"] == second["status"]

    first_ids = {r.conversation_id for r in first["refs"]}
    other_ids = {r.conversation_id for r in other["refs"]}
    assert first_ids.isdisjoint(other_ids)
    assert first["refs"] != other["refs"]


# ---------------------------------------------------------------------- random runs

CUSTOMERS = ("cust-0", "cust-1", "cust-2", "cust-3")
AGENTS = ("agent-0", "agent-1", "agent-2")
CHANNELS = ("WEB", "WHATSAPP", "SMS", "VOICE")
TEXTS = ("hello", "I want an agent", "HUMAN please", "thanks", "agentic?")
ROLES = ("PRIMARY", "ASSISTANT", "PRIMARY", "ASSISTANT", "SILENT_MONITOR", "WHISPER")

ADVANCES = (30, 60, 120, 150, 300, 400, 1, 20, 45, 59.999, 90, 0, 0.001, 299.5)
#: Operation kinds, weighted by repetition: those that move conversations along come up more.
KINDS = (
    *("start",) * 4,
    *("customer_message",) * 5,
    *("advance",) * 5,
    *("agent_message",) * 3,
    *("ready",) * 2,
    *("leave",) * 2,
    *("join",) * 2,
    *("end_session",) * 2,
    *("hold",) * 2,
    "resume",
    *("apply_wrap_up",) * 2,
    "request_agent",
    "end_conversation",
    "login",
    "not_ready",
    "logout",
)


def _decode(raw: tuple[str, int, int, int]) -> tuple[Any, ...]:
    """One operation from a kind and three generic numbers (they shrink well)."""
    kind, a, b, c = raw
    agent = a % len(AGENTS)
    if kind == "start":
        return (kind, a % len(CUSTOMERS), CHANNELS[b % len(CHANNELS)])
    if kind == "customer_message":
        return (kind, b, TEXTS[c % len(TEXTS)])
    if kind == "advance":
        return (kind, ADVANCES[b % len(ADVANCES)] if c % 3 else (c % 400_001) / 1000)
    if kind in ("end_session", "request_agent", "end_conversation"):
        return (kind, b)
    if kind in ("login", "ready", "not_ready", "logout"):
        return (kind, agent)
    if kind == "join":
        return (kind, agent, b, ROLES[c % len(ROLES)])
    if kind == "hold":
        return (kind, agent, b, 1 + c % 700)
    return (kind, agent, b)


_number = st.integers(min_value=0, max_value=1_000_000)
OPERATIONS = st.tuples(st.sampled_from(KINDS), _number, _number, _number).map(_decode)
_start = st.tuples(st.just("start"), _number, _number, _number).map(_decode)


@dataclass
class World:
    """What the test knows: its own bookkeeping, plus what the last check saw of the engine."""

    gw: Gateway
    limits: dict[str, int]
    sessions: list[str] = field(default_factory=list)
    conversations: list[str] = field(default_factory=list)
    room_of: dict[str, str] = field(default_factory=dict)
    logged_in: set[str] = field(default_factory=set)
    frozen: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = field(default_factory=dict)
    # Refreshed by every check: targets that make an operation likely to be accepted.
    live_sessions: list[str] = field(default_factory=list)
    live_conversations: list[str] = field(default_factory=list)
    member_of: dict[str, list[str]] = field(default_factory=dict)  # agent -> conversations

    @staticmethod
    def _choose(preferred: list[str], every: list[str], pick: int) -> str | None:
        # One pick in eight aims anywhere (closed conversations, ended sessions included),
        # so that refusals are exercised too; the others aim at a likely target.
        pool = preferred if preferred and pick % 8 != 7 else every
        return pool[pick % len(pool)] if pool else None

    def session(self, pick: int) -> str | None:
        return self._choose(self.live_sessions, self.sessions, pick)

    def conversation(self, pick: int, agent: str | None = None) -> str | None:
        preferred = self.member_of.get(agent, []) if agent is not None else []
        return self._choose(preferred or self.live_conversations, self.conversations, pick)


def _apply(world: World, op: tuple[Any, ...]) -> None:
    gw, kind = world.gw, op[0]
    if kind == "start":
        ref = gw.start_session(CUSTOMERS[op[1]], op[2], f"{CUSTOMERS[op[1]]}-{op[2]}")
        world.sessions.append(ref.channel_session_id)
        if ref.conversation_id not in world.conversations:
            world.conversations.append(ref.conversation_id)
        assert world.room_of.setdefault(ref.conversation_id, ref.room_id) == ref.room_id
        return
    if kind == "advance":
        gw.advance(op[1])
        return
    if kind in ("login", "ready", "not_ready", "logout"):
        agent = AGENTS[op[1]]
        if kind == "login":
            gw.agent_login(agent, max_conversations=world.limits[agent])
            world.logged_in.add(agent)
        elif kind == "ready":
            gw.agent_ready(agent)
        elif kind == "not_ready":
            gw.agent_not_ready(agent)
        else:
            gw.agent_logout(agent)
            world.logged_in.discard(agent)
        return
    if kind in ("customer_message", "end_session"):
        session = world.session(op[1])
        if session is None:
            return
        if kind == "customer_message":
            gw.customer_message(session, op[2])
        else:
            gw.end_session(session)
        return
    if kind in ("request_agent", "end_conversation"):
        conversation = world.conversation(op[1])
        if conversation is None:
            return
        if kind == "request_agent":
            gw.request_agent(conversation)
        else:
            gw.end_conversation(conversation)
        return
    agent = AGENTS[op[1]]
    if kind == "join":
        conversation = world.conversation(op[2])
        if conversation is not None:
            gw.agent_join(agent, conversation, role=op[3])
        return
    conversation = world.conversation(op[2], agent)
    if conversation is None:
        return
    if kind == "agent_message":
        gw.agent_message(agent, conversation, "agent says hi")
    elif kind == "hold":
        gw.hold(agent, conversation, op[3])
    elif kind == "resume":
        gw.resume(agent, conversation)
    elif kind == "leave":
        gw.agent_leave(agent, conversation)
    else:
        assert kind == "apply_wrap_up", kind
        gw.apply_wrap_up(agent, conversation, ["CODE"], "note")


def _check_events(conversation_id: str, events: list[dict[str, Any]], state: str) -> None:
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), conversation_id
    assert all(set(e) == ENVELOPE for e in events), conversation_id
    current: str | None = None
    for event in events:
        name = event["name"]
        if name == "TOPIC_STATE_CHANGED":
            assert event["data"]["from"] == current, (conversation_id, event)
            current = event["data"]["to"]
            continue
        if name.endswith(TIMER_OUTCOMES):
            if name.startswith("AGENT_SLA"):
                assert current in AGENT_SLA_STATES, (conversation_id, current, event)
            elif name.startswith("CUSTOMER_SLA"):
                assert current in CUSTOMER_SLA_STATES, (conversation_id, current, event)
    assert current == state, (conversation_id, current, state)


#: What each state means (docs/STATES.md): is the customer present, is an agent present?
CUSTOMER_PRESENT = {"CREATED": True, "ACTIVE": True, "ON_HOLD": True, "INACTIVE": True}
CUSTOMER_ABSENT = {"CUSTOMER_LEFT", "WRAP_UP", "CLOSED"}
AGENT_PRESENT = {"ACTIVE", "ON_HOLD", "CUSTOMER_LEFT"}
NO_AGENT_PRESENT = {"CREATED", "INACTIVE", "WRAP_UP", "CLOSED"}
BOT_PRIMARY = {"CREATED", "INACTIVE"}
BOT_ASSISTANT = {"ACTIVE", "ON_HOLD"}


def _check_snapshot(snapshot: dict[str, Any]) -> None:
    """The snapshot's state agrees with who is there."""
    state, cid = snapshot["state"], snapshot["id"]
    started = [s for s in snapshot["channel_sessions"] if s["state"] == "STARTED"]
    subscribed = [p for p in snapshot["participants"] if p["state"] == "SUBSCRIBED"]
    agents = [p for p in subscribed if p["type"] == "AGENT"]
    present = [p for p in agents if p["role"] in ("PRIMARY", "ASSISTANT")]
    if state in CUSTOMER_PRESENT:
        assert started, (cid, state, "no customer session")
    if state in CUSTOMER_ABSENT:
        assert not started, (cid, state, started)
    if state in AGENT_PRESENT:
        assert present, (cid, state, "no agent present")
    if state in NO_AGENT_PRESENT:
        assert not present, (cid, state, present)
    if state == "WRAP_UP":
        assert any(p["role"] == "WRAP_UP" for p in agents), (cid, agents)
    if state == "CLOSED":
        assert not subscribed, (cid, subscribed)
        assert snapshot["ended_at"] is not None, cid
    assert len([p for p in agents if p["role"] == "PRIMARY"]) <= 1, (cid, agents)
    bots = [p for p in subscribed if p["type"] == "BOT"]
    if state in BOT_PRIMARY:
        assert [b["role"] for b in bots] == ["PRIMARY"], (cid, state, bots)
    if state in BOT_ASSISTANT:
        assert [b["role"] for b in bots] == ["ASSISTANT"], (cid, state, bots)


def _check(world: World) -> None:
    gw = world.gw
    live_per_room: dict[str, list[str]] = {}
    subscribed: dict[str, int] = {}
    world.live_sessions, world.live_conversations, world.member_of = [], [], {}
    for conversation_id in world.conversations:
        snapshot = gw.conversation(conversation_id)
        events = gw.events(conversation_id)
        state = snapshot["state"]
        assert snapshot["id"] == conversation_id
        assert snapshot["room_id"] == world.room_of[conversation_id]
        assert snapshot["seq"] == len(events)
        _check_events(conversation_id, events, state)
        _check_snapshot(snapshot)
        if conversation_id in world.frozen:
            assert (snapshot, events) == world.frozen[conversation_id], conversation_id
            continue
        if state == "CLOSED":
            world.frozen[conversation_id] = (snapshot, events)
            continue
        live_per_room.setdefault(snapshot["room_id"], []).append(conversation_id)
        world.live_conversations.append(conversation_id)
        world.live_sessions += [
            s["id"] for s in snapshot["channel_sessions"] if s["state"] == "STARTED"
        ]
        for p in snapshot["participants"]:
            if p["type"] != "AGENT" or p["state"] != "SUBSCRIBED":
                continue
            world.member_of.setdefault(p["id"], []).append(conversation_id)
            if p["role"] in COUNTED_ROLES:
                subscribed[p["id"]] = subscribed.get(p["id"], 0) + 1
    for room, live in live_per_room.items():
        assert len(live) <= 1, (room, live)
    for agent, count in subscribed.items():
        assert count <= world.limits[agent], (agent, count, world.limits[agent])


def _wind_down(world: World, by_logout: bool) -> None:
    """End every session, get every agent out, let the timers run: everything closes."""
    gw = world.gw
    if by_logout:
        for agent in sorted(world.logged_in):
            gw.agent_logout(agent)
        world.logged_in.clear()
    else:
        for agent in sorted(world.logged_in):
            gw.agent_not_ready(agent)
    _check(world)
    for conversation_id in world.conversations:
        for session in gw.conversation(conversation_id)["channel_sessions"]:
            if session["state"] == "STARTED":
                gw.end_session(session["id"])
    _check(world)
    for conversation_id in world.conversations:
        snapshot = gw.conversation(conversation_id)
        if snapshot["state"] == "CLOSED":
            continue
        agents = [
            p
            for p in snapshot["participants"]
            if p["type"] == "AGENT" and p["state"] == "SUBSCRIBED"
        ]
        assert not (by_logout and agents), (conversation_id, agents)
        for p in agents:
            if p["role"] == "WRAP_UP":
                gw.apply_wrap_up(p["id"], conversation_id, ["DONE"])
            else:
                with contextlib.suppress(GatewayError):
                    gw.agent_leave(p["id"], conversation_id)
        if gw.conversation(conversation_id)["state"] != "CLOSED":
            for p in gw.conversation(conversation_id)["participants"]:
                if p["state"] == "SUBSCRIBED" and p["role"] == "WRAP_UP":
                    gw.apply_wrap_up(p["id"], conversation_id, ["DONE"])
        _check(world)
    gw.advance(2000)
    _check(world)
    states = {cid: gw.conversation(cid)["state"] for cid in world.conversations}
    assert set(states.values()) <= {"CLOSED"}, states
    assert gw.status()["conversations"] == {}
    for room in set(world.room_of.values()):
        archived = [c["id"] for c in gw.history(room)]
        mine = [cid for cid in world.conversations if world.room_of[cid] == room]
        assert sorted(archived) == sorted(mine)


#: One random run takes well under a second; longer means the engine never became quiescent.
RUN_TIME_LIMIT_S = 3.0


# Shrinking is left out: a run that finds a live-lock costs RUN_TIME_LIMIT_S per attempt, and
# the shrinker would make hundreds. A failure is reported with its full operation list (and the
# operation it failed on); the example database replays it first on the next run.
@settings(
    max_examples=40,
    deadline=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    wrap_up=st.booleans(),
    auto_accept=st.booleans(),
    limits=st.tuples(*(st.integers(min_value=1, max_value=2) for _ in AGENTS)),
    ready_at_start=st.tuples(*(st.booleans() for _ in AGENTS)),
    first=_start,
    ops=st.lists(OPERATIONS, min_size=30, max_size=90),
    by_logout=st.booleans(),
    seed=st.integers(min_value=0, max_value=3),
)
# A run the generator finds only now and then, kept so that it is always tried: a READY agent
# monitoring a conversation (SILENT_MONITOR) when the bot asks for an agent there.
@example(
    wrap_up=False,
    auto_accept=True,
    limits=(2, 2, 2),
    ready_at_start=(True, False, False),
    first=("start", 0, "WEB"),
    ops=[("join", 0, 0, "SILENT_MONITOR"), ("customer_message", 0, "I want an agent")],
    by_logout=False,
    seed=0,
)
def test_random_runs_keep_the_invariants(
    wrap_up: bool,
    auto_accept: bool,
    limits: tuple[int, ...],
    ready_at_start: tuple[bool, ...],
    first: tuple[Any, ...],
    ops: list[tuple[Any, ...]],
    by_logout: bool,
    seed: int,
) -> None:
    overrides = {
        "timers": {"wrap_up": {"enabled": wrap_up}},
        "routing": {"auto_accept": auto_accept},
    }
    prelude: list[tuple[Any, ...]] = [("login", i) for i in range(len(AGENTS))]
    prelude += [("ready", i) for i, ready in enumerate(ready_at_start) if ready]
    done: list[tuple[Any, ...]] = []
    with tempfile.TemporaryDirectory() as directory:
        config = deep_merge(storage_config(Path(directory)), overrides)
        try:
            with (
                watchdog(RUN_TIME_LIMIT_S, "a random run"),
                Gateway.embedded(config, seed=seed) as gw,
            ):
                world = World(gw, dict(zip(AGENTS, limits, strict=True)))
                for op in [*prelude, first, *ops]:
                    done.append(op)
                    with contextlib.suppress(GatewayError):
                        _apply(world, op)
                    _check(world)
                done.append(("wind_down", by_logout))
                _wind_down(world, by_logout)
        except EngineHung as hung:
            note(f"operations run: {done}")
            raise AssertionError(f"{hung}; last operation {done[-1]!r}") from None
