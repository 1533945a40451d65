"""Setting the engine up for a benchmark: conversations opened in bulk, agents joined, the
processes of each role, and the memory of the whole system.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from actors.messages import AgentJoin, ListTimerOwners, OpenSession, Ping, Ref
from bench import support
from bench.pipeline import Item, Pipeline
from domain.enums import Channel, Role
from domain.ids import conversation_entity_id
from runtime.gateway import Gateway

#: Most conversations one agent may take (the engine's limit).
PER_AGENT = 100


@dataclass
class Population:
    """Conversations opened for a benchmark (one channel session each, bot subscribed)."""

    conversation_ids: list[str] = field(default_factory=list)
    session_ids: list[str] = field(default_factory=list)
    agents: list[str] = field(default_factory=list)
    open_seconds: float = 0.0

    def __len__(self) -> int:
        return len(self.conversation_ids)


def open_conversations(
    pipeline: Pipeline, count: int, *, prefix: str, batch: int = 500, window: int = 4
) -> Population:
    """``count`` new customers each open a session (a new room and conversation each), in
    batches of ``batch`` OpenSession to the TopicMonitor, ``window`` batches in flight, one
    answer per batch (the gateway draws every id, so it knows them without the answers)."""
    monitor = pipeline.gw._actors.monitor
    population = Population()
    in_flight: list[list[str]] = []
    started = time.perf_counter()
    for first in range(0, count, batch):
        items = []
        for n in range(first, min(count, first + batch)):
            conversation_id, session_id = f"conv-{prefix}-{n}", f"cs-{prefix}-{n}"
            population.conversation_ids.append(conversation_id)
            population.session_ids.append(session_id)
            request = OpenSession(
                f"cust-{prefix}-{n}",
                Channel.WEB,
                f"visitor-{prefix}-{n}",
                None,
                {},
                session_id,
                conversation_id,
                f"room-{prefix}-{n}",
            )
            items.append(Item(monitor, "", request))
        in_flight.append(pipeline.send(items, acks="last"))
        if len(in_flight) >= window:
            pipeline.wait(in_flight.pop(0), timeout=300)
    for calls in in_flight:
        pipeline.wait(calls, timeout=300)
    population.open_seconds = time.perf_counter() - started
    return population


def join_agents(pipeline: Pipeline, population: Population, *, prefix: str) -> None:
    """Log in one agent per :data:`PER_AGENT` conversations and subscribe it (PRIMARY) to
    them: the conversations become ACTIVE and the bot ASSISTANT."""
    gw = pipeline.gw
    count = math.ceil(len(population) / PER_AGENT)
    population.agents = [f"agent-{prefix}-{k}" for k in range(count)]
    for agent in population.agents:
        gw.agent_login(agent, max_conversations=PER_AGENT)
    hosts = hosts_of(pipeline, population.conversation_ids)
    for k, agent in enumerate(population.agents):
        chunk = population.conversation_ids[k * PER_AGENT : (k + 1) * PER_AGENT]
        items = [
            Item(
                gw._actors.agents,
                "",
                AgentJoin(agent, Ref(hosts[c], conversation_entity_id(c)), Role.PRIMARY),
            )
            for c in chunk
        ]
        pipeline.wait(pipeline.send(items), timeout=120)


def hosts_of(pipeline: Pipeline, conversation_ids: Sequence[str]) -> dict[str, Any]:
    return pipeline.hosts_of(list(conversation_ids))


def wait_live(
    gw: Gateway, count: int, *, timeout: float = 300.0, states: set[str] | None = None
) -> float:
    """Wait until the TopicMonitor counts ``count`` live conversations (in ``states`` if
    given); returns the seconds waited."""
    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    while True:
        counts = gw.status()["conversations"]
        live = sum(n for s, n in counts.items() if states is None or s in states)
        if live >= count:
            return time.perf_counter() - started
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{live} of {count} conversations live after {timeout:g} s: {counts}"
            )
        time.sleep(0.05)


def pid_of(gw: Gateway, address: Any) -> int:
    return int(_ping(gw, address)["pid"])


def _ping(gw: Gateway, address: Any) -> dict[str, Any]:
    answer = gw._system.ask(address, Ping("pid"), 30)
    if answer is None:
        raise TimeoutError("no answer to Ping")
    value: dict[str, Any] = answer.value
    return value


@dataclass
class Roles:
    """Pids of the engine's processes by role (the rest: admin, logger, router, bot, agent
    hosts, agent supervisor)."""

    monitor: int
    hosts: list[int]


def roles(gw: Gateway) -> Roles:
    owners = gw._ask_direct(gw._actors.monitor, ListTimerOwners("bench-owners"))
    hosts = []
    for address in owners:
        answer = _ping(gw, address)
        if answer.get("actor") == "Host":
            hosts.append(int(answer["pid"]))
    return Roles(monitor=pid_of(gw, gw._actors.monitor), hosts=hosts)


def settle(running: support.Running, *, quiet_s: float = 0.5, timeout: float = 60.0) -> None:
    """Wait until the system's processes stop using CPU (asynchronous work such as the bot's
    welcomes is done)."""
    deadline = time.monotonic() + timeout
    previous = _cpu_ticks(running.pids())
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        now = _cpu_ticks(running.pids())
        # under 5% of one core over the interval
        if now - previous < 0.05 * quiet_s * 100:
            return
        previous = now


def _cpu_ticks(pids: set[int]) -> int:
    total = 0
    for pid in pids:
        try:
            text = open(f"/proc/{pid}/stat").read()  # noqa: SIM115
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks
    return total
