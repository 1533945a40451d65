"""Conversation lifecycles per second: create, a few messages, close, archived.

Each lifecycle is a new customer: ``start_session`` (a new room and conversation, the bot
subscribed and its welcome), three customer messages (the bot answers each), then
``end_conversation``; it is done when the conversation is in the archive (SQLite) as CLOSED.
The rate is lifecycles / (time from the first call until the last one is archived), read from
the archive file itself. Beside it, each process of the engine's share of the engine's CPU over
that time (utime + stime from ``/proc``, by process title), busiest first: the process that
bounds the rate on more cores; and the CPU time per lifecycle of the engine and of the senders
(a figure the load of a shared machine changes much less than the rate).

- ``mode="api"``: sender processes run lifecycles one after the other with the public API.
- ``mode="batched"``: sender processes do ``batch`` lifecycles at a time with
  ``Gateway.pipeline()``: one batch of start_session, one of messages and one of ends (one
  answer per host batch).
"""

from __future__ import annotations

import math
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from bench import support
from bench.common import customer_messages, end_conversations, open_conversations, ticks_of
from runtime import procs
from runtime.gateway import Gateway

MESSAGES = 3
TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def api_worker(gate: support.Gate, config: str, count: int, tag: str) -> tuple[float, float]:
    gw = Gateway.connect(config)
    gate.ready()
    gate.wait()
    cpu = time.process_time()
    for n in range(count):
        ref = gw.start_session(f"cust-{tag}-{n}", "WEB", f"visitor-{tag}-{n}")
        for k in range(MESSAGES):
            gw.customer_message(
                ref.channel_session_id, f"question {k}", message_id=f"{tag}-{n}-{k}"
            )
        gw.end_conversation(ref.conversation_id)
    gw.close()
    return time.monotonic(), time.process_time() - cpu


def batch_worker(
    gate: support.Gate, config: str, count: int, batch: int, tag: str
) -> tuple[float, float]:
    gw = Gateway.connect(config)
    gate.ready()
    gate.wait()
    cpu = time.process_time()
    for first in range(0, count, batch):
        size = min(batch, count - first)
        population = open_conversations(gw, size, prefix=f"{tag}-{first}", batch=size)
        questions = [f"question {k}" for k in range(MESSAGES)]
        customer_messages(gw, population.session_ids, questions)
        end_conversations(gw, population.conversation_ids)
    gw.close()
    return time.monotonic(), time.process_time() - cpu


def _archived(archive: Path) -> int:
    try:
        with sqlite3.connect(f"file:{archive}?mode=ro", uri=True, timeout=5) as db:
            row = db.execute("SELECT count(*) FROM conversations WHERE state = 'CLOSED'").fetchone()
    except sqlite3.Error:
        return 0
    return int(row[0])


def cpu_ticks(pids: set[int]) -> dict[int, int]:
    """The CPU time (clock ticks) each of ``pids`` has used so far (those still running)."""
    found = {pid: ticks_of(pid) for pid in pids}
    return {pid: ticks for pid, ticks in found.items() if ticks is not None}


def cpu_shares(before: dict[int, int], after: dict[int, int]) -> dict[str, float]:
    """Each process's share of the CPU all of them used between ``before`` and ``after``
    (processes of one title added up), busiest first; the total in ticks under ``"ticks"``."""
    by_title: dict[str, int] = {}
    for pid, ticks in after.items():
        title = " ".join(procs.cmdline(pid)).split(" --config")[0].strip() or f"pid {pid}"
        by_title[title] = by_title.get(title, 0) + ticks - before.get(pid, 0)
    total = sum(by_title.values()) or 1
    ranked = sorted(by_title.items(), key=lambda item: -item[1])
    return {"ticks": float(total), **{title: used / total for title, used in ranked}}


def lifecycles(
    *, mode: str, count: int, senders: int, batch: int = 100, hosts: int = 1, room_desks: int = 1
) -> dict[str, Any]:
    """``hosts``: conversation hosts (``placement.hosts``) the lifecycles are spread over;
    ``room_desks``: the desks their sessions are opened by (``placement.room_desks``)."""
    per_sender = math.ceil(count / senders)
    total = per_sender * senders
    with support.scratch("life") as directory:
        placement = {"hosts": hosts, "per_host": max(100_000, 10 * total)}
        if room_desks > 1:
            placement["room_desks"] = room_desks
        sections = {"placement": placement}
        config = support.write_config(directory, sections)
        archive = directory / "archive.sqlite3"
        with support.engine(config) as running:
            clock: dict[str, float] = {}
            if mode == "api":
                jobs: list[Any] = [
                    (api_worker, (str(config), per_sender, f"s{i}")) for i in range(senders)
                ]
            else:
                jobs = [
                    (batch_worker, (str(config), per_sender, batch, f"s{i}"))
                    for i in range(senders)
                ]
            before = cpu_ticks(running.pids())
            with support.profiled(running, f"lifecycle-{mode}"):
                done = support.run_workers(
                    jobs, timeout=600, started=lambda: clock.setdefault("start", time.monotonic())
                )
                deadline = time.monotonic() + 120
                while (archived := _archived(archive)) < total and time.monotonic() < deadline:
                    time.sleep(0.02)
                end = time.monotonic()
            shares = cpu_shares(before, cpu_ticks(running.pids()))
    ends = [end for end, _ in done]
    return {
        "mode": mode,
        "hosts": hosts,
        "room_desks": room_desks,
        "lifecycles": total,
        "archived": archived,
        "per_s": archived / (end - clock["start"]),
        "calls_done_per_s": total / (max(ends) - clock["start"]),
        # CPU per lifecycle: a figure a shared machine's load does not change much
        "engine_cpu_ms": shares["ticks"] * 1000 / TICKS_PER_S / total,
        "senders_cpu_ms": sum(cpu for _, cpu in done) * 1000 / total,
        "cpu_shares": shares,
    }
