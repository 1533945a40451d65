"""The asyncio client end to end: customer messages/s, and latency at a fixed rate.

An engine on ``multiprocTCPBase`` with ``conversations`` conversations, each with one WEB
channel session, the bot and an agent subscribed (one agent per 100 conversations): each
customer message is answered, journaled, and delivered to the bot, the agent's desk entity and
the channel session. Measured in one run, on the same engine:

- **reference, blocking Gateway**: one ``customer_message`` at a time (the public API as it
  was), messages/s, and each call's latency (the engine's own round trip and its tail);
- **reference, raw Thespian**: ``tell`` into one actor of a bare system, messages/s (the
  transport's own ceiling on this machine);
- **AsyncGateway, throughput**: ``senders`` coroutines, each sending to its own sessions as
  fast as answered (at most ``max_in_flight`` in flight), messages/s;
- **AsyncGateway, latency at a fixed rate**: one message every ``1/rate`` s for ``seconds``,
  whatever the answers; each latency counted from the moment it was due (so a stall shows
  in every message it delayed), p50 and p99 in ms; and where its time went: the CPU this
  process (the client: coroutines and the pump thread) and the engine's processes used per
  message, and the machine's load average, so that a tail is laid at the client's, the
  engine's or a crowded machine's door.

    python -m bench.aio [--conversations 1000] [--messages 20000] [--rate 1000] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import raw, support
from bench.common import cpu_ticks, join_agents, open_conversations, settle
from runtime.aio import AioLimits, AsyncGateway
from runtime.gateway import Gateway


def blocking_rate(gw: Gateway, sessions: Sequence[str], messages: int) -> dict[str, float]:
    """The blocking Gateway, one call at a time: messages/s, and each call's latency."""
    latencies = []
    started = time.perf_counter()
    for n in range(messages):
        sent = time.perf_counter()
        gw.customer_message(sessions[n % len(sessions)], f"blocking {n}")
        latencies.append((time.perf_counter() - sent) * 1000)
    return {
        "per_s": messages / (time.perf_counter() - started),
        "p50_ms": support.percentile(latencies, 50),
        "p99_ms": support.percentile(latencies, 99),
    }


async def async_rate(
    gw: AsyncGateway, sessions: Sequence[str], messages: int, senders: int
) -> float:
    """``senders`` coroutines (at most one per session), ``messages`` in all, each as soon as
    its previous is answered."""
    senders = min(senders, len(sessions))
    per_sender = messages // senders

    async def sender(k: int) -> None:
        mine = sessions[k::senders]
        for n in range(per_sender):
            await gw.customer_message(mine[n % len(mine)], f"async {k}-{n}")

    started = time.perf_counter()
    await asyncio.gather(*(sender(k) for k in range(senders)))
    return per_sender * senders / (time.perf_counter() - started)


_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


async def latency_at(
    gw: AsyncGateway, sessions: Sequence[str], rate: float, seconds: float, engine: set[int]
) -> dict[str, float]:
    """One message every ``1/rate`` s; each latency from when it was due to its answer, and
    the CPU this process and the ``engine``'s processes used per message meanwhile."""
    count = int(rate * seconds)
    latencies: list[float] = []
    tasks: list[asyncio.Task[None]] = []

    async def one(n: int, due: float) -> None:
        await gw.customer_message(sessions[n % len(sessions)], f"paced {n}")
        latencies.append(time.perf_counter() - due)

    load = os.getloadavg()[0]
    client_cpu, engine_ticks = time.process_time(), cpu_ticks(engine)
    start = time.perf_counter()
    for n in range(count):
        due = start + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(n, due)))
    await asyncio.gather(*tasks)
    achieved = count / (time.perf_counter() - start)
    client_us = (time.process_time() - client_cpu) * 1e6 / count
    engine_us = (cpu_ticks(engine) - engine_ticks) / _TICKS_PER_S * 1e6 / count
    in_ms = [value * 1000 for value in latencies]
    return {
        "load_average": load,
        "client_cpu_us_per_message": client_us,
        "engine_cpu_us_per_message": engine_us,
        "rate": rate,
        "achieved_per_s": achieved,
        "p50_ms": support.percentile(in_ms, 50),
        "p99_ms": support.percentile(in_ms, 99),
        "max_ms": max(in_ms),
    }


def measure(
    *, conversations: int, messages: int, senders: int, rate: float, seconds: float,
    window_s: float,
) -> dict[str, Any]:  # fmt: skip
    results: dict[str, Any] = {"conversations": conversations}
    results["raw_tell_per_s"] = raw.tell_rate(messages)["per_s"]
    with support.scratch("aio") as directory:
        sections = {"placement": {"per_host": conversations}}
        config = support.write_config(Path(directory), sections)
        with support.engine(config) as running, Gateway.connect(config) as gw:
            population = open_conversations(gw, conversations, prefix="a", batch=250, window=2)
            join_agents(gw, population, prefix="a")
            settle(running)
            sessions = population.session_ids
            results["blocking"] = blocking_rate(gw, sessions, min(messages, 2000))
            settle(running)

            async def run_async() -> None:
                limits = AioLimits(window_s=window_s)
                async with await AsyncGateway.open(lambda: Gateway.connect(config), limits) as aio:
                    rate_now = await async_rate(aio, sessions, messages, senders)
                    results["async_per_s"] = rate_now
                    results["async_windows"] = aio.windows
                    await asyncio.get_running_loop().run_in_executor(None, settle, running)
                    results["latency"] = await latency_at(
                        aio, sessions, rate, seconds, running.pids()
                    )

            asyncio.run(run_async())
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--senders", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--window-ms", type=float, default=2.0)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    options = parser.parse_args(argv)
    with support.interrupts_raise():
        results = measure(
            conversations=options.conversations, messages=options.messages,
            senders=options.senders, rate=options.rate, seconds=options.seconds,
            window_s=options.window_ms / 1000,
        )  # fmt: skip
    if options.json:
        print(json.dumps(results, indent=2))
        return
    latency = results["latency"]
    print(f"conversations                    {results['conversations']}")
    print(f"raw Thespian tell (reference)    {results['raw_tell_per_s']:9.0f} messages/s")
    blocking = results["blocking"]
    print(
        f"blocking Gateway (reference)     {blocking['per_s']:9.0f} messages/s"
        f" (one call at a time: p50 {blocking['p50_ms']:.1f} ms, p99 {blocking['p99_ms']:.1f} ms)"
    )
    print(
        f"AsyncGateway                     {results['async_per_s']:9.0f} messages/s"
        f" ({results['async_windows']} windows)"
    )
    print(
        f"AsyncGateway at {latency['rate']:.0f}/s"
        f"            p50 {latency['p50_ms']:.1f} ms, p99 {latency['p99_ms']:.1f} ms,"
        f" max {latency['max_ms']:.1f} ms (achieved {latency['achieved_per_s']:.0f}/s)"
    )
    print(
        f"  CPU per message                client {latency['client_cpu_us_per_message']:.0f} us,"
        f" engine {latency['engine_cpu_us_per_message']:.0f} us"
        f" (load average {latency['load_average']:.1f} when it began)"
    )
    leftover = support.leftovers()
    if leftover:
        print(f"killed leftover processes: {sorted(leftover)}")


if __name__ == "__main__":
    main()
