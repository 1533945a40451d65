"""Live conversations held on one node, and what each costs in memory.

``hold``: ``placement.per_host`` large (one host process holds them all). Conversations are
opened in pipelined batches (:func:`bench.common.open_conversations`), each a new customer with
one WEB channel session and the bot subscribed (PRIMARY, its welcome sent). Memory is the sum
over every process of the system (``/proc/PID/smaps_rollup``) after the fill, minus the same
sum after a warm-up of a few conversations, divided by the number opened; it is also given
per role (host, TopicMonitor, bot).

``per_process``: ``placement.per_host: 1``, a host process per conversation. Conversations are
opened one after the other with the public ``Gateway.start_session`` (each creates a process),
and each call is timed.
"""

from __future__ import annotations

import time
from typing import Any

from bench import support
from bench.common import open_conversations, roles, settle, wait_live
from runtime.gateway import Gateway

WARM_UP = 200


def hold(conversations: int) -> dict[str, Any]:
    sections = {"placement": {"per_host": max(10 * conversations, 100_000), "hosts": 1}}
    with support.scratch("hold") as directory:
        config = support.write_config(directory, sections)
        with support.engine(config, shutdown_timeout=30) as running, Gateway.connect(config) as gw:
            open_conversations(gw, WARM_UP, prefix="warm")
            wait_live(gw, WARM_UP)
            settle(running)
            who = roles(gw)
            before = support.memory_of(running.pids())
            by_role_before = _by_role(who, running)
            with support.profiled(running, "capacity"):
                population = open_conversations(gw, conversations, prefix="c")
                wait_live(gw, WARM_UP + conversations)
            settle(running)
            after = support.memory_of(running.pids())
            by_role_after = _by_role(who, running)
            status = gw.status()["conversations"]
    per = {
        role: (by_role_after[role].pss - by_role_before[role].pss) / conversations
        for role in by_role_after
    }
    return {
        "conversations": conversations,
        "live": sum(status.values()),
        "states": status,
        "open_per_s": conversations / population.open_seconds,
        "pss_per_conversation": (after.pss - before.pss) / conversations,
        "private_per_conversation": (after.private - before.private) / conversations,
        "per_role_pss_per_conversation": per,
        "system_pss": after.pss,
        "processes": after.processes,
    }


def _by_role(who: Any, running: support.Running) -> dict[str, support.Memory]:
    return {
        "host": support.memory_of(who.hosts),
        "monitor": support.memory_of([who.monitor]),
        "other": support.memory_of(running.pids() - {who.monitor, *who.hosts}),
    }


def per_process(conversations: int) -> dict[str, Any]:
    sections = {"placement": {"per_host": 1, "hosts": 1}}
    with support.scratch("perproc") as directory:
        config = support.write_config(directory, sections)
        with (
            support.engine(config, shutdown_timeout=60) as running,
            Gateway.connect(config) as gw,
        ):
            gw.start_session("warm-1", "WEB", "warm-1")  # the boot host takes the first
            settle(running)
            before = support.memory_of(running.pids())
            times: list[float] = []
            started = time.perf_counter()
            for n in range(conversations):
                t0 = time.perf_counter()
                gw.start_session(f"cust-{n}", "WEB", f"visitor-{n}")
                times.append((time.perf_counter() - t0) * 1000)
            elapsed = time.perf_counter() - started
            wait_live(gw, conversations + 1)
            settle(running)
            after = support.memory_of(running.pids())
            who = roles(gw)
            hosts = support.memory_of(who.hosts)
    return {
        "conversations": conversations,
        "host_processes": len(who.hosts),
        "create_ms_median": support.median(times),
        "create_ms_p99": support.percentile(times, 99),
        "create_ms_last_10pct": support.median(times[-max(1, conversations // 10) :]),
        "per_s": conversations / elapsed,
        "pss_per_conversation": (after.pss - before.pss) / conversations,
        "private_per_conversation": (after.private - before.private) / conversations,
        "host_private_mean": hosts.private / max(1, hosts.processes),
        "host_pss_mean": hosts.pss / max(1, hosts.processes),
        "processes": after.processes,
    }
