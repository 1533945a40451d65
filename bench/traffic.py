"""Customer messages end to end: gateway -> channel session -> conversation -> bot, agent and
channel session. Throughput, and latency at a given rate.

Set-up: ``conversations`` conversations on one host (``placement.per_host`` large), each with
one WEB channel session, an agent subscribed as PRIMARY (one agent per 100 conversations) and
the bot subscribed (ASSISTANT: it receives every customer message). The bot is
:class:`bench.probes.StampBot`, which stamps the arrival of marked messages; an agent-desk
process (a gateway subscribed to every agent's events) stamps their arrival at the desk.

A message counts as delivered when (1) its sender got the answer (the host answers once the
conversation has handled the message, published it and handed it to the channel session on the
same host), (2) the bot received it and (3) the agent's desk received it (one hop further than
the agent entity).

- ``throughput(mode="api")``: sender processes call ``Gateway.customer_message`` one at a time
  (the public API), as fast as it answers.
- ``throughput(mode="batched")``: sender processes send batches of ``batch`` messages in one
  Thespian message (``Gateway.pipeline(acks="last")``), one answer per batch, ``window``
  batches in flight.
- ``latency(rate)``: the public API, sender processes paced to ``rate`` messages/s in all;
  every message is stamped by the bot and the desk; latency = when the last of the three
  deliveries happened minus when the call started.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from actors.messages import Batch, Pushed
from bench import support
from bench.common import Population, join_agents, open_conversations, settle
from bench.probes import PORT_VARIABLE, STAMP, StampReceiver
from domain.events import EventName
from runtime import testing
from runtime.gateway import Gateway, Pending

RUN = "run-"


# ---------------------------------------------------------------------- worker processes


def desk(
    gate: support.Gate, config: str, agents: list[str], expected: int, timeout: float
) -> dict[str, Any]:
    """An agent desk for every agent: counts (and times) the customer messages pushed."""
    gw = Gateway.connect(config)
    arrivals: dict[str, float] = {}
    for agent in agents:
        gw.subscribe_agent(agent)
    gate.ready()
    # No waiting for the start signal: a desk that is not listening when the first pushes
    # come delays them (Thespian retries the delivery later); only RUN messages count anyway.
    # The desk reads its actor system itself (counting, not ordering): the gateway's pushed()
    # would put each event in order first, and a slower desk slows what it measures.
    system = testing.system(gw)
    deadline = time.monotonic() + timeout
    while len(arrivals) < expected and time.monotonic() < deadline:
        message = system.listen(0.2)
        while message is not None:
            now = time.monotonic()
            for item in message.items if isinstance(message, Batch) else ():
                event = item.payload.event if isinstance(item.payload, Pushed) else None
                if event is not None and event["name"] == EventName.CUSTOMER_MESSAGE:
                    message_id = str(event["data"].get("message_id", ""))
                    if message_id.startswith(RUN):
                        arrivals[message_id] = now
            message = system.listen(0)
    return {"arrivals": arrivals}


def api_sender(
    gate: support.Gate,
    config: str,
    sessions: list[str],
    messages: int,
    rate: float | None,
    stamp_every: bool,
    tag: str,
) -> list[tuple[str, float, float]]:
    """``Gateway.customer_message`` one at a time; paced to ``rate``/s if given. Returns
    (message id, call started, call returned) per message (time.monotonic())."""
    gw = Gateway.connect(config)
    for session in sessions:  # first contact: the gateway learns where each session lives
        gw.customer_message(session, "hello", message_id=f"warm-{tag}-{session}")
    gate.ready()
    gate.wait()
    records: list[tuple[str, float, float]] = []
    started = time.monotonic()
    for k in range(messages):
        if rate:
            delay = started + k / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        message_id = f"{RUN}{tag}-{k}"
        marked = stamp_every or k == messages - 1
        before = time.monotonic()
        gw.customer_message(
            sessions[k % len(sessions)],
            f"hello {STAMP}" if marked else "hello",
            message_id=message_id,
        )
        records.append((message_id, before, time.monotonic()))
    gw.close()
    return records


def batch_sender(
    gate: support.Gate,
    config: str,
    conversation_ids: list[str],
    sessions: list[str],
    messages: int,
    batch: int,
    window: int,
    tag: str,
) -> dict[str, Any]:
    """Batches of ``batch`` messages (one per session, round robin), one answer per batch."""
    gw = Gateway.connect(config)
    pipeline = gw.pipeline(acks="last")
    pipeline.prefetch(channel_session_ids=sessions)  # where each session lives, before the run
    gate.ready()
    gate.wait()
    first = time.monotonic()
    in_flight: deque[list[Pending]] = deque()
    marked: list[str] = []
    for start in range(0, messages, batch):
        for k in range(start, min(messages, start + batch)):
            last = k == min(messages, start + batch) - 1
            message_id = f"{RUN}{tag}-{k}"
            if last:
                marked.append(message_id)
            text = f"hello {STAMP}" if last else "hello"
            pipeline.customer_message(sessions[k % len(sessions)], text, message_id=message_id)
        in_flight.append(pipeline.send())
        if len(in_flight) >= window:
            pipeline.wait(in_flight.popleft(), timeout=120)
    while in_flight:
        pipeline.wait(in_flight.popleft(), timeout=120)
    done = time.monotonic()
    gw.close()
    return {"first": first, "done": done, "messages": messages, "marked": marked}


def paced_batch_sender(
    gate: support.Gate,
    config: str,
    conversation_ids: list[str],
    sessions: list[str],
    messages: int,
    rate: float,
    window_ms: float,
    tag: str,
) -> list[tuple[str, float, float]]:
    """A gateway that batches: messages come due at ``rate``/s; every ``window_ms`` the ones
    due are sent as one batch (one answer per batch), without waiting for earlier answers.
    Returns (message id, when it came due, when its batch was answered) per message."""
    gw = Gateway.connect(config)
    pipeline = gw.pipeline(acks="last")
    pipeline.prefetch(channel_session_ids=sessions)  # where each session lives, before the run
    gate.ready()
    gate.wait()
    started = time.monotonic()
    due = [started + k / rate for k in range(messages)]
    batches: list[tuple[list[str], list[float], list[Pending]]] = []
    sent = 0
    while sent < messages:
        now = time.monotonic()
        ready = sent
        while ready < messages and due[ready] <= now:
            ready += 1
        if ready > sent:
            ids = [f"{RUN}{tag}-{k}" for k in range(sent, ready)]
            for k in range(sent, ready):
                session = sessions[k % len(sessions)]
                pipeline.customer_message(session, f"hello {STAMP}", message_id=ids[k - sent])
            batches.append((ids, due[sent:ready], pipeline.send()))
            sent = ready
        pipeline.poll(
            max(0.0, min(window_ms / 1000, due[sent] - time.monotonic())) if sent < messages else 0
        )
        next_tick = now + window_ms / 1000
        while time.monotonic() < next_tick:
            pipeline.poll(max(0.0, next_tick - time.monotonic()))
    pipeline.wait([p for _, _, sent in batches for p in sent], timeout=120)
    gw.close()
    return [
        (message_id, came_due, _answered_at(sent))
        for ids, dues, sent in batches
        for message_id, came_due in zip(ids, dues, strict=True)
    ]


def _answered_at(sent: list[Pending]) -> float:
    """When the batch was answered: its one answer (the last request's) came in."""
    (answered,) = [p.answered_at for p in sent if p.answered_at is not None]
    return answered


# ---------------------------------------------------------------------- set-up


@contextlib.contextmanager
def _set_up(conversations: int) -> Iterator[tuple[str, Population, StampReceiver, support.Running]]:
    with StampReceiver() as stamps, support.scratch("traffic") as directory:
        previous = os.environ.get(PORT_VARIABLE)
        os.environ[PORT_VARIABLE] = str(stamps.port)  # inherited by the bot's process
        try:
            sections = {
                "placement": {"per_host": max(100_000, 10 * conversations)},
                "bot": {"class_path": "bench.probes:StampBot"},
            }
            config = support.write_config(Path(directory), sections)
            with support.engine(config) as running, Gateway.connect(config) as gw:
                population = open_conversations(gw, conversations, prefix="t")
                join_agents(gw, population, prefix="t")
                settle(running)
                yield str(config), population, stamps, running
        finally:
            if previous is None:
                os.environ.pop(PORT_VARIABLE, None)
            else:
                os.environ[PORT_VARIABLE] = previous


def slices(population: Population, parts: int) -> list[tuple[list[str], list[str]]]:
    """Disjoint shares of the conversations, one per sender (a conversation has one sender)."""
    size = math.ceil(len(population) / parts)
    return [
        (
            population.conversation_ids[i * size : (i + 1) * size],
            population.session_ids[i * size : (i + 1) * size],
        )
        for i in range(parts)
    ]


def _wait_stamps(stamps: StampReceiver, wanted: set[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stamps.drain()
        if wanted <= stamps.stamps.keys():
            return
        time.sleep(0.01)


# ---------------------------------------------------------------------- benchmarks


def throughput(
    *,
    mode: str,
    conversations: int,
    messages: int,
    senders: int,
    batch: int = 200,
    window: int = 3,
) -> dict[str, Any]:
    """``messages`` customer messages in all, shared by ``senders`` processes."""
    per_sender = messages // senders
    total = per_sender * senders
    with _set_up(conversations) as (config, population, stamps, running):
        clock: dict[str, float] = {}
        jobs: list[Any] = [(desk, (config, population.agents, total, 300.0))]
        for i, (cids, sids) in enumerate(slices(population, senders)):
            if mode == "api":
                jobs.append((api_sender, (config, sids, per_sender, None, False, f"s{i}")))
            else:
                jobs.append(
                    (batch_sender, (config, cids, sids, per_sender, batch, window, f"s{i}"))
                )
        with support.profiled(running, f"throughput-{mode}"):
            results = support.run_workers(
                jobs, timeout=600, started=lambda: clock.setdefault("start", time.monotonic())
            )
        arrivals = results[0]["arrivals"]
        if mode == "api":
            marked = {records[-1][0] for records in results[1:]}
            answered = max(records[-1][2] for records in results[1:])
        else:
            marked = {m for r in results[1:] for m in r["marked"]}
            answered = max(r["done"] for r in results[1:])
        _wait_stamps(stamps, marked, timeout=30)
    bot_done = max((stamps.stamps.get(m, 0) for m in marked), default=0) / 1e9
    desk_done = max(arrivals.values(), default=math.nan)
    end = max(answered, bot_done, desk_done)
    elapsed = end - clock["start"]
    return {
        "mode": mode,
        "messages": total,
        "senders": senders,
        "batch": batch if mode != "api" else 1,
        "per_s": total / elapsed,
        "answered_per_s": total / (answered - clock["start"]),
        "desk_received": len(arrivals),
        "bot_marked_received": len(marked & stamps.stamps.keys()),
        "bot_marked": len(marked),
    }


def latency(
    *,
    rate: float,
    seconds: float,
    conversations: int,
    senders: int,
    mode: str = "api",
    window_ms: float = 5.0,
) -> dict[str, Any]:
    """``rate`` messages/s in all for ``seconds``: latency from the call (``mode="api"``: the
    public API, paced) or from when the message came due (``mode="batched"``: a gateway that
    sends what came due every ``window_ms``) to the last of the three deliveries (answer, bot,
    desk), in ms."""
    per_sender = max(1, int(rate * seconds / senders))
    total = per_sender * senders
    with _set_up(conversations) as (config, population, stamps, running):
        jobs: list[Any] = [(desk, (config, population.agents, total, seconds + 120.0))]
        for i, (cids, sids) in enumerate(slices(population, senders)):
            if mode == "api":
                jobs.append((api_sender, (config, sids, per_sender, rate / senders, True, f"s{i}")))
            else:
                args = (config, cids, sids, per_sender, rate / senders, window_ms, f"s{i}")
                jobs.append((paced_batch_sender, args))
        with support.profiled(running, f"latency-{mode}"):
            results = support.run_workers(jobs, timeout=seconds + 300)
        arrivals: dict[str, float] = results[0]["arrivals"]
        records = [r for rs in results[1:] for r in rs]
        _wait_stamps(stamps, {r[0] for r in records}, timeout=10)
    answer_ms: list[float] = []
    all_ms: list[float] = []
    bot_ms: list[float] = []
    desk_ms: list[float] = []
    missing = 0
    for message_id, before, after in records:
        bot = stamps.stamps.get(message_id)
        at_desk = arrivals.get(message_id)
        answer_ms.append((after - before) * 1000)
        if bot is None or at_desk is None:
            missing += 1
            continue
        bot_ms.append((bot / 1e9 - before) * 1000)
        desk_ms.append((at_desk - before) * 1000)
        all_ms.append((max(after, bot / 1e9, at_desk) - before) * 1000)
    sends = sorted(r[1] for r in records)
    achieved = (len(sends) - 1) / (sends[-1] - sends[0]) if len(sends) > 1 else math.nan
    return {
        "mode": mode,
        "rate": rate,
        "achieved_per_s": achieved,
        "messages": total,
        "p50_ms": support.percentile(all_ms, 50),
        "p99_ms": support.percentile(all_ms, 99),
        "max_ms": max(all_ms, default=math.nan),
        "answer_p50_ms": support.percentile(answer_ms, 50),
        "answer_p99_ms": support.percentile(answer_ms, 99),
        "bot_p99_ms": support.percentile(bot_ms, 99),
        "desk_p99_ms": support.percentile(desk_ms, 99),
        "missing": missing,
    }
