"""Setting the engine up for a benchmark: conversations opened in bulk, agents joined, the
processes of each role, and the memory of the whole system.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from actors.messages import ListTimerOwners, Ping
from bench import support
from runtime import testing
from runtime.gateway import Gateway, Pending

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
    gw: Gateway, count: int, *, prefix: str, batch: int = 500, window: int = 4
) -> Population:
    """``count`` new customers each open a session (a new room and conversation each), in
    pipelined batches of ``batch`` (:meth:`Gateway.pipeline`), ``window`` batches in flight."""
    pipeline = gw.pipeline()
    population = Population()
    in_flight: list[list[Pending]] = []

    def opened(sent: list[Pending]) -> None:
        for ref in pipeline.wait(sent, timeout=300):
            population.conversation_ids.append(ref.conversation_id)
            population.session_ids.append(ref.channel_session_id)

    started = time.perf_counter()
    for first in range(0, count, batch):
        for n in range(first, min(count, first + batch)):
            pipeline.start_session(f"cust-{prefix}-{n}", "WEB", f"visitor-{prefix}-{n}")
        in_flight.append(pipeline.send())
        if len(in_flight) >= window:
            opened(in_flight.pop(0))
    for sent in in_flight:
        opened(sent)
    population.open_seconds = time.perf_counter() - started
    return population


def join_agents(gw: Gateway, population: Population, *, prefix: str) -> None:
    """Log in one agent per :data:`PER_AGENT` conversations and subscribe it (PRIMARY) to
    them: the conversations become ACTIVE and the bot ASSISTANT."""
    count = math.ceil(len(population) / PER_AGENT)
    population.agents = [f"agent-{prefix}-{k}" for k in range(count)]
    for agent in population.agents:
        gw.agent_login(agent, max_conversations=PER_AGENT)
    pipeline = gw.pipeline()
    for k, agent in enumerate(population.agents):
        for conversation_id in population.conversation_ids[k * PER_AGENT : (k + 1) * PER_AGENT]:
            pipeline.agent_join(agent, conversation_id)
        pipeline.wait(timeout=120)


def customer_messages(
    gw: Gateway, session_ids: Sequence[str], texts: Sequence[str], *, timeout: float = 120.0
) -> None:
    """Each text to each session (text by text), pipelined; one answer per host batch."""
    pipeline = gw.pipeline(acks="last")
    for k, text in enumerate(texts):
        for session in session_ids:
            pipeline.customer_message(session, text, message_id=f"{session}-{k}")
    pipeline.wait(timeout=timeout)


def end_conversations(gw: Gateway, conversation_ids: Sequence[str]) -> None:
    """End them all, pipelined; one answer per host batch."""
    pipeline = gw.pipeline(acks="last")
    for conversation_id in conversation_ids:
        pipeline.end_conversation(conversation_id)
    pipeline.wait(timeout=120)


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
    return testing.pid_of(gw, address)


def _ping(gw: Gateway, address: Any) -> dict[str, Any]:
    found: dict[str, Any] = testing.ask(gw, address, Ping("bench-ping"))
    return found


@dataclass
class Roles:
    """Pids of the engine's processes by role (the rest: admin, logger, router, bot, agent
    hosts, agent supervisor)."""

    monitor: int
    hosts: list[int]


def roles(gw: Gateway) -> Roles:
    owners = testing.ask(gw, testing.addresses(gw).monitor, ListTimerOwners("bench-owners"))
    hosts = []
    for address in owners:
        answer = _ping(gw, address)
        if answer.get("actor") == "Host":
            hosts.append(int(answer["pid"]))
    return Roles(monitor=pid_of(gw, testing.addresses(gw).monitor), hosts=hosts)


def settle(running: support.Running, *, quiet_s: float = 0.5, timeout: float = 60.0) -> None:
    """Wait until the system's processes stop using CPU (asynchronous work such as the bot's
    welcomes is done)."""
    deadline = time.monotonic() + timeout
    previous = cpu_ticks(running.pids())
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        now = cpu_ticks(running.pids())
        # under 5% of one core over the interval
        if now - previous < 0.05 * quiet_s * 100:
            return
        previous = now


def cpu_ticks(pids: set[int]) -> int:
    return sum(ticks_of(pid) or 0 for pid in pids)


def ticks_of(pid: int) -> int | None:
    """The CPU time a process has used (utime + stime, in clock ticks); None once it is gone."""
    try:
        text = open(f"/proc/{pid}/stat").read()  # noqa: SIM115
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])
