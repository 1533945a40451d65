"""Raw Thespian references under multiprocTCPBase, measured with the bare actors of
:mod:`bench.raw_actors` on a system of their own (bound to loopback like the engine's).

Each function starts a system, measures, and stops it (no process is left behind).
"""

from __future__ import annotations

import os
import time
from typing import Any

from bench import support
from bench.raw_actors import Churn, FanOut, Sink, Timers

ASK_TIMEOUT = 30.0


def _ask(system: Any, address: Any, message: Any, timeout: float = ASK_TIMEOUT) -> Any:
    answer = system.ask(address, message, timeout)
    if answer is None:
        raise TimeoutError(f"no answer to {message!r:.60} within {timeout:g} s")
    return answer


def _listen_for(system: Any, count: int, timeout: float) -> list[Any]:
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"{count - len(got)} answers missing after {timeout:g} s")
        message = system.listen(min(remaining, 1.0))
        if message is not None:
            got.append(message)
    return got


def tell_rate(messages: int) -> dict[str, float]:
    """``tell`` from outside into one actor: messages/s, counted when the actor has them all."""
    with support.raw_system() as running:
        system = running.system
        sink = system.createActor(Sink)
        _ask(system, sink, ("echo", 0))
        started = time.perf_counter()
        for _ in range(messages):
            system.tell(sink, "m")
        while _ask(system, sink, ("count", None))[1] < messages:
            time.sleep(0.001)
        elapsed = time.perf_counter() - started
    return {"per_s": messages / elapsed}


def fanout_rate(messages: int, width: int = 3) -> dict[str, float]:
    """Actor to actor fan-out 1 -> ``width``, one actor process each: deliveries/s."""
    with support.raw_system() as running:
        system = running.system
        sinks = [system.createActor(Sink) for _ in range(width)]
        fan = system.createActor(FanOut)
        for sink in sinks:
            _ask(system, sink, ("echo", 0))
        _ask(system, fan, ("targets", sinks))
        started = time.perf_counter()
        system.tell(fan, ("go", messages))
        counts = _listen_for(system, width, timeout=300)
        elapsed = time.perf_counter() - started
    delivered = sum(c[1] for c in counts)
    return {"deliveries_per_s": delivered / elapsed, "messages_per_s": messages / elapsed}


def ask_latency(asks: int) -> dict[str, float]:
    """``ask`` round trip from outside to one actor: p50/p99 in ms and asks/s."""
    with support.raw_system() as running:
        system = running.system
        sink = system.createActor(Sink)
        for n in range(20):
            _ask(system, sink, ("echo", n))
        times: list[float] = []
        started = time.perf_counter()
        for n in range(asks):
            before = time.perf_counter()
            _ask(system, sink, ("echo", n))
            times.append((time.perf_counter() - before) * 1000)
        elapsed = time.perf_counter() - started
    return {
        "p50_ms": support.percentile(times, 50),
        "p99_ms": support.percentile(times, 99),
        "per_s": asks / elapsed,
    }


def create_actors(count: int) -> dict[str, float]:
    """Create ``count`` actors (a process each) from outside, one after the other; each then
    does a little work (20 asks). Creation time per actor and memory per actor process."""
    with support.raw_system() as running:
        system = running.system
        before = running.pids()
        times: list[float] = []
        actors = []
        started = time.perf_counter()
        for _ in range(count):
            t0 = time.perf_counter()
            actors.append(system.createActor(Sink))
            times.append((time.perf_counter() - t0) * 1000)
        elapsed = time.perf_counter() - started
        pids = []
        for actor in actors:
            for n in range(20):
                _ask(system, actor, ("echo", n))
            pids.append(_ask(system, actor, "pid"))
        memory = support.memory_of(pids)
        system_memory = support.memory_of(running.pids() - before)
    return {
        "actors": count,
        "create_ms_median": support.median(times),
        "create_ms_p99": support.percentile(times, 99),
        "create_ms_last_10pct": support.median(times[-max(1, count // 10) :]),
        "per_s": count / elapsed,
        "pss_per_actor": memory.pss / max(1, memory.processes),
        "private_per_actor": memory.private / max(1, memory.processes),
        "system_pss_per_actor": system_memory.pss / count,
    }


def churn(total: int, concurrent: int = 20) -> dict[str, float]:
    """Create an actor, send it a message, get its answer, make it exit: ``concurrent`` at a
    time, ``total`` in all (a parent actor drives it). Lifecycles per second."""
    with support.raw_system() as running:
        system = running.system
        parent = system.createActor(Churn)
        _ask(system, parent, ("churn", 2, 2), timeout=60)  # warm up
        started = time.perf_counter()
        answer = _ask(system, parent, ("churn", total, concurrent), timeout=600)
        elapsed = time.perf_counter() - started
    return {"per_s": answer[1] / elapsed}


def timer_lag(timers: int, first_ms: int = 1000, spread_ms: int = 2000) -> dict[str, float]:
    """One ``wakeupAfter`` per timer in one actor, deadlines spread evenly over ``spread_ms``
    from ``first_ms`` on: each wakeup's lag behind its deadline (ms)."""
    delays = [first_ms + spread_ms * n // max(1, timers - 1) for n in range(timers)]
    with support.raw_system() as running:
        system = running.system
        actor = system.createActor(Timers)
        _ask(system, actor, ("arm", [1]))
        system.tell(actor, ("arm", delays))
        (answer,) = _listen_for(system, 1, timeout=120 + timers / 100)
    lags, arm_seconds = answer[1], answer[2]
    return {
        "timers": timers,
        "p50_ms": support.percentile(lags, 50),
        "p99_ms": support.percentile(lags, 99),
        "max_ms": max(lags),
        "arm_s": arm_seconds,
    }


if __name__ == "__main__":  # a quick look: python -m bench.raw
    print(os.getpid(), tell_rate(500), fanout_rate(200), ask_latency(200))
    print(create_actors(5), churn(40), timer_lag(200))
