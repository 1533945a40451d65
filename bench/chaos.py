"""Chaos: a real system under steady load while a monkey kills its processes with SIGKILL.

::

    python -m bench.chaos                                   # 120 s, 3 gateways, hosts only
    python -m bench.chaos --duration 300 --gateways 4 --targets hosts,agents,router
    python -m bench.chaos --duration 20 --seed 7 --json chaos.json

What it does:

1. starts the engine (``multiprocTCPBase``, a temporary directory, small hosts so that there
   are several) in this process, as ``cx start`` would;
2. starts ``--gateways`` gateway processes (``python -m bench.chaos --worker``), each with its
   own ``Gateway.connect``: customers open conversations (a customer comes back after its
   conversation ended, in the same room), send messages with provider message ids, sometimes
   open a second session (which must join the live conversation), agents join and answer,
   conversations are ended. Every operation is retried until acknowledged (customer messages
   with the same ``message_id``; other operations only after checking with ``events()`` or
   the snapshot that they were not applied), and each worker records what was acknowledged;
3. meanwhile the monkey, seeded, sleeps a random time (``--kill-every``), picks a random
   process among ``--targets`` (conversation ``hosts``, ``agents`` hosts, the ``router``; the
   supervisors ``monitor``, ``supervisor``, ``admin``, ``logger``, restarted by
   the daemon the run then starts the engine under: bench.chaos_supervisors), kills it with
   SIGKILL and measures how long until it is replaced and serving; or
   the network gateway (``netgw``: ``cx gateway``, with TCP clients of its own,
   bench.chaos_netgw), started again at once like systemd would; or
   a storage fault (``disk`` full, ``fsync`` failing, ``archive`` locked: bench.chaos_faults),
   held for a few seconds, and measures how long after it ends the engine acknowledges again;
4. at the end every worker ends its conversations and waits until they are CLOSED; the system
   is shut down and the archive is checked against the workers' records:

   - every acknowledged customer message (by message id) and agent message (by its unique
     text) is stored exactly once, and no message id twice;
   - every conversation's events are numbered 1..n without a gap or a repeat;
   - no room ever had two live conversations (archived lifetimes of a room's conversations
     do not overlap; a second session always joined the live conversation);
   - every conversation is CLOSED, and its state changes chain from None to CLOSED as its
     TOPIC_STATE_CHANGED events say;
   - no process is left: every process of the system's session and every worker is gone.

It prints each kill with its recovery time, then the figures (kills, recoveries, recovery p50
and p99, operations and retries) and the verdict; exit code 0 when every check held.
``--json FILE`` keeps the figures. The short run of the test suite is tests/test_chaos.py.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from actors import messages
from actors.messages import Locate, Ping
from bench import chaos_faults, chaos_netgw, chaos_supervisors
from infra.archive_store import open_archive
from infra.config import load_config
from runtime import procs, testing
from runtime.gateway import (
    BadArgumentError,
    Gateway,
    GatewayError,
    IllegalTransitionError,
    UnknownIdError,
)
from runtime.invariants import StoredEvent, conversation_problems, room_problems
from runtime.system import start

ROOT = Path(__file__).resolve().parent.parent
PROCESSES = ("hosts", "agents", "router")
TARGETS = (*PROCESSES, *chaos_supervisors.SUPERVISORS, "netgw", *chaos_faults.FAULTS)
#: How long an operation is retried before the worker gives up on it (not acknowledged).
GIVE_UP_S = 45.0
#: How long the monkey waits for a killed process to be replaced and serving.
RECOVERY_LIMIT_S = 30.0
_T = TypeVar("_T")


# ------------------------------------------------------------------------------ the workers


class LoadWorker:
    """One gateway process's load: customers, agents, conversations; records every ack."""

    def __init__(self, number: int, config: Path, out: Path, seed: int, rate: float) -> None:
        self.number = number
        self.gw = Gateway.connect(config)
        self.out = out.open("a", buffering=1)
        self.chance = random.Random(seed * 1000 + number)
        self.rate = rate
        self.customers = [f"w{number}-cust{i}" for i in range(6)]
        self.agents = [f"w{number}-agent{i}" for i in range(2)]
        self.live: dict[str, dict[str, Any]] = {}  # customer -> its live conversation
        self.counter = 0
        self.stats: Counter[str] = Counter()
        # What the worker is doing, for the stall watchdog: (what, conversation, since).
        self.current: tuple[str, str | None, float] | None = None
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        """A call that takes more than 10 s is a stall: record it with every thread's stack
        (on standard error, kept as worker-N.err)."""
        reported = None
        while True:
            time.sleep(1.0)
            current = self.current
            if current is None or current is reported or time.time() - current[2] < 10:
                continue
            reported = current
            self.record(kind="stall", what=current[0], conv=current[1], since=current[2])
            print(
                f"stall: {current[0]} on {current[1]} for 10 s; stacks:",
                file=sys.stderr,
                flush=True,
            )
            faulthandler.dump_traceback(sys.stderr, all_threads=True)

    def record(self, **fields: Any) -> None:
        self.out.write(json.dumps({"t": time.time(), **fields}) + "\n")

    # -------------------------------------------------------------- retries

    def retried(
        self,
        what: str,
        conversation_id: str | None,
        attempt: Callable[[], _T],
        applied: Callable[[], bool] | None = None,
    ) -> tuple[bool, _T | None]:
        """Run ``attempt`` until it is acknowledged; after a failure, ``applied`` says whether
        the failed attempt took effect anyway (then it counts as done). (ok, result)."""
        started = time.monotonic()
        failures = 0
        last_error = ""
        first_failure = 0.0
        while True:
            attempt_started = time.time()
            self.current = (what, conversation_id, attempt_started)
            try:
                result = attempt()
            except (BadArgumentError, UnknownIdError, IllegalTransitionError):
                raise
            except GatewayError as error:
                failures += 1
                last_error = str(error)[:200]
                self.stats["failed_attempts"] += 1
                if failures == 1:
                    first_failure = attempt_started  # the client waited from here
                if applied is not None:
                    with contextlib.suppress(GatewayError):
                        if applied():
                            self.stats["applied_despite_failure"] += 1
                            self._outage(what, conversation_id, first_failure, failures, last_error)
                            return True, None
                if time.monotonic() - started > GIVE_UP_S:
                    self.record(kind="gave_up", what=what, conv=conversation_id, error=last_error)
                    self.stats["gave_up"] += 1
                    return False, None
                time.sleep(0.05)
                continue
            if failures:
                self._outage(what, conversation_id, first_failure, failures, last_error)
            self.stats["acknowledged"] += 1
            return True, result

    def _outage(
        self, what: str, conversation_id: str | None, start: float, attempts: int, error: str
    ) -> None:
        self.record(
            kind="outage",
            what=what,
            conv=conversation_id,
            start=start,
            end=time.time(),
            attempts=attempts,
            error=error,
        )

    # -------------------------------------------------------------- operations

    def login(self, agent_id: str) -> None:
        with contextlib.suppress(IllegalTransitionError):  # already logged in
            self.retried(
                "agent_login", None, lambda: self.gw.agent_login(agent_id, max_conversations=20)
            )

    def open(self, customer: str) -> None:
        ok, ref = self.retried(
            "start_session", None, lambda: self.gw.start_session(customer, "WEB", f"{customer}-web")
        )
        if not ok or ref is None:
            return
        conversation = {
            "conv": ref.conversation_id,
            "session": ref.channel_session_id,
            "room": ref.room_id,
            "messages": 0,
            "limit": self.chance.randint(4, 14),
            "agent": None,
        }
        self.live[customer] = conversation
        self.record(
            kind="conv",
            conv=ref.conversation_id,
            room=ref.room_id,
            customer=customer,
            session=ref.channel_session_id,
        )

    def second_session(self, customer: str, conversation: dict[str, Any]) -> None:
        ok, ref = self.retried(
            "start_session(second)",
            conversation["conv"],
            lambda: self.gw.start_session(customer, "SMS", f"{customer}-sms"),
        )
        if ok and ref is not None:
            self.record(
                kind="second_session",
                conv=conversation["conv"],
                got=ref.conversation_id,
                room=ref.room_id,
            )

    def customer_message(self, conversation: dict[str, Any]) -> None:
        self.counter += 1
        message_id = f"{conversation['conv']}-m{self.counter}"
        ok, _ = self.retried(
            "customer_message",
            conversation["conv"],
            lambda: self.gw.customer_message(
                conversation["session"], f"hello {message_id}", message_id=message_id
            ),
        )
        if ok:
            conversation["messages"] += 1
            self.record(
                kind="ack", what="customer_message", conv=conversation["conv"], key=message_id
            )

    def join(self, conversation: dict[str, Any]) -> None:
        agent = self.chance.choice(self.agents)
        conversation_id = conversation["conv"]

        def subscribed() -> bool:
            snapshot = self.gw.conversation(conversation_id)
            return any(
                p["id"] == agent and p["state"] == "SUBSCRIBED" for p in snapshot["participants"]
            )

        for _ in range(3):
            try:
                ok, _ = self.retried(
                    "agent_join",
                    conversation_id,
                    lambda: self.gw.agent_join(agent, conversation_id),
                    subscribed,
                )
            except UnknownIdError:  # its agent host died: the desk logs in again
                self.login(agent)
                continue
            except IllegalTransitionError:
                return  # already joined, or the conversation is closing
            if ok:
                conversation["agent"] = agent
                self.record(kind="joined", conv=conversation_id, agent=agent)
            return

    def agent_message(self, conversation: dict[str, Any]) -> None:
        self.counter += 1
        agent, conversation_id = conversation["agent"], conversation["conv"]
        text = f"answer {conversation_id}-a{self.counter}"

        def stored() -> bool:
            return any(e["data"].get("text") == text for e in self.gw.events(conversation_id))

        try:
            ok, _ = self.retried(
                "agent_message",
                conversation_id,
                lambda: self.gw.agent_message(agent, conversation_id, text),
                stored,
            )
        except (UnknownIdError, IllegalTransitionError) as error:
            self.record(
                kind="refused", what="agent_message", conv=conversation_id, error=str(error)[:200]
            )
            conversation["agent"] = None  # e.g. removed with its host: join again later
            return
        if ok:
            self.record(kind="ack", what="agent_message", conv=conversation_id, key=text)

    def end(self, customer: str) -> None:
        conversation = self.live.pop(customer)
        conversation_id = conversation["conv"]

        def ended() -> bool:
            return self.gw.conversation(conversation_id)["state"] in ("CLOSING", "CLOSED")

        try:
            ok, _ = self.retried(
                "end_conversation",
                conversation_id,
                lambda: self.gw.end_conversation(conversation_id, by="AGENT"),
                ended,
            )
        except IllegalTransitionError:
            ok = True  # closing already
        self.record(kind="ended", conv=conversation_id, ok=ok)

    # -------------------------------------------------------------- the run

    def run(self, until: float) -> None:
        for agent in self.agents:
            self.login(agent)
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while time.time() < until:
            next_at += interval
            self.step()
            time.sleep(max(0.0, next_at - time.monotonic()))
        self.finish()

    def step(self) -> None:
        customer = self.chance.choice(self.customers)
        conversation = self.live.get(customer)
        self.stats["steps"] += 1
        try:
            if conversation is None:
                self.open(customer)
            elif conversation["messages"] >= conversation["limit"]:
                self.end(customer)
            elif conversation["agent"] is None and conversation["messages"] >= 2:
                self.join(conversation)
            else:
                roll = self.chance.random()
                if roll < 0.05:
                    self.second_session(customer, conversation)
                elif roll < 0.30 and conversation["agent"] is not None:
                    self.agent_message(conversation)
                else:
                    self.customer_message(conversation)
        except GatewayError as error:  # a refusal: recorded, the load goes on
            self.stats["refused"] += 1
            self.record(
                kind="refused",
                what="step",
                conv=conversation and conversation["conv"],
                error=str(error)[:200],
            )

    def finish(self) -> None:
        for customer in list(self.live):
            self.end(customer)
        self.record(kind="stats", **self.stats)
        self.out.close()
        self.gw.close()


def worker_main(options: argparse.Namespace) -> int:
    worker = LoadWorker(
        options.worker, Path(options.config), Path(options.out), options.seed, options.rate
    )
    worker.run(options.until)
    return 0


# ------------------------------------------------------------------------------ the monkey


@dataclass
class Kill:
    at: float  # seconds since the load started
    target: str
    pid: int
    recovery_s: float | None = None
    note: str = ""
    probe: str | None = None


@dataclass
class Monkey:
    gw: Gateway
    chance: random.Random
    targets: tuple[str, ...]
    records: Path
    started: float
    faults: chaos_faults.Faults | None = None
    supervisors: chaos_supervisors.Supervisors | None = None
    netgw: chaos_netgw.GatewayProcess | None = None
    cycle: bool = False  # the targets in turn instead of at random
    kills: list[Kill] = field(default_factory=list)
    last_seen: str = ""
    probes: int = 0
    asks: int = 0
    directory_failures: int = 0
    _pids: dict[str, int] = field(default_factory=dict)

    def ask(self, address: Any, timeout: float) -> Any:
        """Ping ``address``; its Reply, or None. Other messages that come in meanwhile (the
        TopicMonitor's notices that a host died) are handed to the gateway."""
        self.asks += 1
        call_id = f"chaos-ping-{self.asks}"
        deadline = time.monotonic() + timeout
        system = testing.system(self.gw)
        answer = system.ask(address, Ping(call_id), timeout)
        while answer is not None:
            if isinstance(answer, messages.Reply) and answer.call_id == call_id:
                return answer
            testing.take_in(self.gw, answer)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            answer = system.listen(left)
        return None

    def pid_of(self, address: Any) -> int:
        key = str(address)
        if key not in self._pids:
            answer = self.ask(address, 5)
            if answer is None:
                raise GatewayError(f"no answer to a Ping of {address}")
            self._pids[key] = int(answer.value["pid"])
        return self._pids[key]

    def directory(self) -> dict[str, Any]:
        """The Router's and the Bot's addresses (they move when they are restarted)."""
        monitor = testing.addresses(self.gw).monitor
        for attempt in range(3):
            try:
                answer: dict[str, Any] = testing.ask(
                    self.gw, monitor, messages.Directory(f"chaos-dir-{self.asks}")
                )
                return answer
            except GatewayError:
                # A direct ask used to take the first message that came in as its answer: a
                # HostLost notice made it fail (docs/RELIABILITY.md, F6).
                self.directory_failures += 1
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def fresh_pid(self, address: Any) -> int | None:
        try:
            answer = self.ask(address, 2)
        except Exception:
            return None
        return None if answer is None else int(answer.value["pid"])

    def candidates(self, target: str) -> list[int]:
        engine = testing.addresses(self.gw)
        monitor = self.pid_of(engine.monitor)
        supervisor = self.pid_of(engine.agents)
        directory = self.directory()
        special = {self.fresh_pid(a) for a in directory.values() if a is not None}
        if target == "router":
            pid = self.fresh_pid(directory["router"]) if directory.get("router") else None
            return [pid] if pid else []
        parent = monitor if target == "hosts" else supervisor
        return sorted(pid for pid in _children(parent) if pid not in special)

    def live_conversations(self) -> list[str]:
        opened, ended = [], set()
        for path in sorted(self.records.glob("worker-*.jsonl")):
            for line in path.read_text().splitlines():
                with contextlib.suppress(ValueError):
                    item = json.loads(line)
                    if item["kind"] == "conv":
                        opened.append(item["conv"])
                    elif item["kind"] == "ended":
                        ended.add(item["conv"])
        return [c for c in opened if c not in ended]

    def host_pid_of(self, conversation_id: str) -> int | None:
        try:
            location = testing.call(
                self.gw, testing.addresses(self.gw).monitor, Locate(conversation_id=conversation_id)
            )
        except GatewayError:
            return None
        return None if location.host is None else self.fresh_pid(location.host)

    def strike(self) -> Kill | None:
        turn = len(self.kills) % len(self.targets)
        target = self.targets[turn] if self.cycle else self.chance.choice(self.targets)
        if target in chaos_supervisors.SUPERVISORS:
            assert self.supervisors is not None
            at = round(time.monotonic() - self.started, 2)
            pid, recovery, note = self.supervisors.strike(target)
            kill = Kill(at, target, pid, recovery, note)
            self.kills.append(kill)
            return kill
        if target == "netgw":
            assert self.netgw is not None
            at = round(time.monotonic() - self.started, 2)
            pid, recovery = self.netgw.strike()
            kill = Kill(at, target, pid, recovery)
            if recovery is None:
                kill.note = f"cx gateway not serving {chaos_netgw.RECOVERY_LIMIT_S:g} s after"
            self.kills.append(kill)
            return kill
        if target in chaos_faults.FAULTS:
            assert self.faults is not None
            at = round(time.monotonic() - self.started, 2)
            recovery, note = self.faults.strike(target)
            kill = Kill(at, target, 0, recovery, note)
            self.kills.append(kill)
            return kill
        victims = self.candidates(target)
        if not victims:
            return None
        victim = self.chance.choice(victims)
        probe = None
        if target == "hosts":  # a conversation of the victim, to see it served again
            live = self.live_conversations()
            self.chance.shuffle(live)
            for conversation_id in live[:40]:
                if self.host_pid_of(conversation_id) == victim:
                    probe = conversation_id
                    break
        agents_before = sum(self.gw.status()["agents"].values()) if target == "agents" else 0
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:  # gone meanwhile (an idle host is retired): pick again later
            return None
        killed_at = time.monotonic()
        kill = Kill(round(killed_at - self.started, 2), target, victim, probe=probe)
        self.last_seen = ""
        recovered = self.wait_recovered(target, victim, probe, agents_before)
        if recovered is None:
            kill.note = (
                f"not serving again within {RECOVERY_LIMIT_S:g} s; last seen: {self.last_seen}"
            )
        else:
            kill.recovery_s = round(recovered - killed_at, 3)
        if target == "hosts" and probe is None:
            kill.note = "no conversation of ours on it"
        self.kills.append(kill)
        return kill

    def wait_recovered(
        self, target: str, victim: int, probe: str | None, agents_before: int
    ) -> float | None:
        deadline = time.monotonic() + RECOVERY_LIMIT_S
        while time.monotonic() < deadline:
            time.sleep(0.02)
            try:
                if target == "hosts":
                    if probe is None:
                        if not procs.alive(victim):
                            return time.monotonic()
                        continue
                    location = testing.call(
                        self.gw, testing.addresses(self.gw).monitor, Locate(conversation_id=probe)
                    )
                    self.last_seen = f"{probe} in state {location.state}"
                    if location.host is None:  # archived meanwhile: served from the archive
                        self.gw.events(probe)
                        return time.monotonic()
                    pid = self.fresh_pid(location.host)
                    self.last_seen += f" on pid {pid}"
                    if pid is not None and pid != victim:
                        testing.forget_host(self.gw, probe)
                        self.gw.events(probe)  # served by its new host
                        return time.monotonic()
                elif target == "router":
                    address = self.directory().get(target)
                    pid = self.fresh_pid(address) if address is not None else None
                    if pid is not None and pid != victim:
                        self.gw.status()
                        return time.monotonic()
                else:
                    # Noticed (its agents are logged out), and desks can log in again.
                    noticed = sum(self.gw.status()["agents"].values()) < agents_before
                    if noticed or time.monotonic() > deadline - RECOVERY_LIMIT_S + 5:
                        self.probes += 1
                        probe_agent = f"chaos-probe-{self.probes}"
                        self.gw.agent_login(probe_agent)
                        self.gw.agent_logout(probe_agent)
                        return time.monotonic()
            except GatewayError:
                continue
        return None


def _children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (entry / "stat").read_text()
                fields = stat[stat.rindex(")") + 2 :].split()
                if int(fields[1]) == parent and fields[0] != "Z":
                    found.append(int(entry.name))
    return found


# ------------------------------------------------------------------------------ the checks


def _read_records(directory: Path) -> list[dict[str, Any]]:
    items = []
    for path in sorted(directory.glob("worker-*.jsonl")):
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                items.append({**json.loads(line), "worker": path.stem})
    return items


def check(records: list[dict[str, Any]], config: Path) -> tuple[dict[str, Any], list[str]]:
    """The archive against the workers' records: (figures, problems)."""
    problems: list[str] = []
    conversations = {r["conv"]: r for r in records if r["kind"] == "conv"}
    acked: dict[str, list[tuple[str, str]]] = {}
    for r in records:
        if r["kind"] == "ack":
            acked.setdefault(r["conv"], []).append((r["what"], r["key"]))
    for r in records:
        if r["kind"] == "second_session" and r["got"] != r["conv"]:
            problems.append(
                f"room {r['room']}: a second session opened {r['got']} while {r['conv']} was live"
            )
    figures: Counter[str] = Counter()
    with open_archive(load_config(config).storage, read_only=True) as archive:
        rooms = {c["room"] for c in conversations.values()}
        for room in sorted(rooms):
            stored = archive.room_conversations(room)
            problems += room_problems(room, [(c.created_at, c.ended_at, c.id) for c in stored])
            for c in stored:
                if c.id not in conversations:
                    conversations[c.id] = {"conv": c.id, "room": room, "unrecorded": True}
                    figures["conversations_not_acknowledged"] += 1
        for conversation_id in sorted(conversations):
            record = archive.conversation(conversation_id)
            if record is None:
                problems.append(
                    f"{conversation_id}: acknowledged but not in the archive (state unknown)"
                )
                continue
            if str(record.state) != "CLOSED":
                problems.append(f"{conversation_id}: archived in state {record.state}")
            events = [StoredEvent(e.seq, e.name, e.data) for e in archive.events(conversation_id)]
            found = conversation_problems(
                conversation_id,
                events,
                str(record.state),
                acknowledged=acked.get(conversation_id, []),
                figures=figures,
            )
            problems += [problem for _, problem in found]
    return dict(figures), problems


# ------------------------------------------------------------------------------ the run


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


@contextlib.contextmanager
def _system(config: Path) -> Iterator[set[int]]:
    """The engine in this process; yields the set of its session; shut down on the way out."""
    settings = load_config(config)
    system = start(settings)
    admins = procs.listening_on(settings.system.admin_port)
    session = procs.session_of(min(admins)) if admins else None
    if session is None:
        system.shutdown()
        raise RuntimeError("the engine started but nothing listens on its admin port")
    try:
        yield {session}
    finally:
        system.shutdown()


def run(options: argparse.Namespace) -> dict[str, Any]:
    targets = tuple(t.strip() for t in options.targets.split(",") if t.strip())
    unknown = set(targets) - set(TARGETS)
    if unknown:
        raise SystemExit(
            f"unknown targets: {', '.join(sorted(unknown))} (known: {', '.join(TARGETS)})"
        )
    low, _, high = options.kill_every.partition(":")
    kill_low, kill_high = float(low), float(high or low)
    directory = Path(tempfile.mkdtemp(prefix="cx-chaos-"))
    port = _free_port()
    gateway_port = _free_port()
    config = directory / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                # the monkey kills supervisors far more often than the daemon's default allows
                "system": {"admin_port": port, "restart_limit": 1000},
                "gateway": {"listen": f"127.0.0.1:{gateway_port}"},
                "placement": {"per_host": options.per_host, "hosts": 2},
                "storage": {
                    "archive": str(directory / "archive.sqlite3"),
                    "journal": str(directory / "journal"),
                    "fsync": "interval",
                    "postgres": options.postgres,
                },
                "logging": {"level": "error", "file": str(directory / "cx.log")},
                "timers": {
                    "customer_inactivity": {"seconds": 7200},
                    "agent_sla": {"seconds": 7200},
                },
            }
        )
    )
    chance = random.Random(options.seed)
    print(
        f"chaos: seed {options.seed}, {options.duration:g} s of load from {options.gateways} gateway"
        f" processes ({options.rate:g} operations/s each), SIGKILL every {kill_low:g}-{kill_high:g} s"
        f" to {', '.join(targets)}; storage {directory}",
        flush=True,
    )
    problems: list[str] = []
    workers: list[subprocess.Popen[bytes]] = []
    leaked: list[int] = []
    figures: dict[str, Any] = {}
    started = time.monotonic()
    kills: list[Kill] = []
    directory_failures = 0
    timings: dict[str, float] = {}
    load_started_wall = time.time()
    phase = time.monotonic()
    netgw = (
        chaos_netgw.GatewayProcess(config, gateway_port, directory / "netgw.err", ROOT)
        if "netgw" in targets
        else None
    )
    with (
        chaos_faults.failpoints_file(directory) as switches,
        chaos_faults.journal_mount(directory / "journal", "disk" in targets),
        (
            chaos_supervisors.daemon_system(config)
            if any(t in chaos_supervisors.SUPERVISORS for t in targets)
            else _system(config)
        ) as sessions,
    ):
        try:
            with Gateway.connect(config) as gw:
                until = time.time() + options.duration
                if netgw is not None:
                    netgw.start()
                    if netgw.wait_serving() is None:
                        problems.append("cx gateway did not start serving")
                    workers.append(
                        subprocess.Popen(
                            [
                                sys.executable, "-m", "bench.chaos",
                                "--net-worker", str(options.gateways),
                                "--net-port", str(gateway_port),
                                "--out", str(directory / f"worker-{options.gateways}.jsonl"),
                                "--until", str(until),
                                "--seed", str(options.seed),
                                "--rate", str(options.rate),
                            ],
                            cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL,
                            stderr=open(directory / "worker-net.err", "wb"),  # noqa: SIM115
                        )
                    )  # fmt: skip
                for number in range(options.gateways):
                    workers.append(
                        subprocess.Popen(
                            [
                                sys.executable,
                                "-m",
                                "bench.chaos",
                                "--worker",
                                str(number),
                                "--config",
                                str(config),
                                "--out",
                                str(directory / f"worker-{number}.jsonl"),
                                "--until",
                                str(until),
                                "--seed",
                                str(options.seed),
                                "--rate",
                                str(options.rate),
                            ],
                            cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL,
                            stderr=open(directory / f"worker-{number}.err", "wb"),  # noqa: SIM115
                        )
                    )
                started = time.monotonic()
                load_started_wall = time.time()
                monkey = Monkey(gw, chance, targets, directory, started)
                monkey.cycle = options.cycle
                monkey.netgw = netgw
                monkey.supervisors = chaos_supervisors.Supervisors(gw, config, sessions)
                monkey.faults = chaos_faults.Faults(
                    gw, directory / "journal", directory / "archive.sqlite3", switches
                )
                time.sleep(min(2.0, options.duration / 4))  # the load gets going first
                # The last kill leaves some load (10 s, a quarter of a short run): desks log in
                # again only while they work.
                tail = min(10.0, options.duration / 4)
                while time.time() + kill_high + tail < until:
                    time.sleep(chance.uniform(kill_low, kill_high))
                    try:
                        kill = monkey.strike()
                    except Exception as error:  # the monkey's own trouble is not the system's
                        print(f"  monkey: {type(error).__name__}: {error}", flush=True)
                        continue
                    if kill is None:
                        print(f"  t={time.monotonic() - started:6.1f}s nothing to kill", flush=True)
                    else:
                        shown = "-" if kill.recovery_s is None else f"{kill.recovery_s:.2f} s"
                        what = (
                            f"{kill.target:<7} fault   "
                            if kill.target in chaos_faults.FAULTS
                            else f"kill -9 {kill.target:<6} pid {kill.pid:<7}"
                        )
                        print(
                            f"  t={kill.at:6.1f}s {what} recovered in {shown}"
                            + (f" ({kill.note})" if kill.note else ""),
                            flush=True,
                        )
                kills = monkey.kills
                directory_failures = monkey.directory_failures
                phase = time.monotonic()
                for worker in workers:  # they end their conversations and wait for CLOSED
                    try:
                        worker.wait(timeout=max(5.0, until - time.time()) + 180)
                    except subprocess.TimeoutExpired:
                        problems.append(f"gateway process {worker.pid} did not finish in time")
                        worker.kill()
                        worker.wait(5)
                    if worker.returncode != 0:
                        problems.append(
                            f"gateway process {worker.pid} exited with {worker.returncode}"
                        )
                timings["workers_finished_s"] = round(time.monotonic() - phase, 1)
                phase = time.monotonic()
                records = _read_records(directory)
                pending = {r["conv"] for r in records if r["kind"] == "conv"}
                deadline = time.monotonic() + 60
                while pending and time.monotonic() < deadline:  # archived before we look
                    for conversation_id in sorted(pending):
                        with contextlib.suppress(GatewayError):
                            if gw.conversation(conversation_id)["state"] == "CLOSED":
                                pending.discard(conversation_id)
                    time.sleep(0.2)
                for conversation_id in sorted(pending):
                    problems.append(f"{conversation_id}: not CLOSED 60 s after it was ended")
                timings["closed_checked_s"] = round(time.monotonic() - phase, 1)
                phase = time.monotonic()
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
                    worker.wait(5)
            if netgw is not None:
                netgw.stop()
    # The system is shut down: every process of its session must go.
    timings["shutdown_s"] = round(time.monotonic() - phase, 1)
    deadline = time.monotonic() + 20
    while any(procs.session_members(s) for s in sessions) and time.monotonic() < deadline:
        time.sleep(0.1)
    leaked = chaos_supervisors.left_over(sessions)
    if leaked:
        problems.append(f"processes left after shutdown: {leaked}")
    leaked_workers = [w.pid for w in workers if procs.alive(w.pid)]
    if leaked_workers:
        problems.append(f"gateway processes left: {leaked_workers}")

    records = _read_records(directory)
    figures, found = check(records, config)
    problems.extend(found)
    worker_stats: Counter[str] = Counter()
    for r in records:
        if r["kind"] == "stats":
            worker_stats.update(
                {k: v for k, v in r.items() if isinstance(v, int) and k not in ("t",)}
            )
        if r["kind"] == "gave_up":
            problems.append(
                f"{r['conv']}: {r['what']} not acknowledged within {GIVE_UP_S:g} s ({r['error']})"
            )
    for name in ("worker",):
        worker_stats.pop(name, None)
    for kill in kills:
        if kill.recovery_s is None:
            problems.append(f"kill of {kill.target} pid {kill.pid} at t={kill.at}s: {kill.note}")
    stalls = [r for r in records if r["kind"] == "stall"]
    outages = [r["end"] - r["start"] for r in records if r["kind"] == "outage"]
    worst = sorted(
        (r for r in records if r["kind"] == "outage"), key=lambda r: r["start"] - r["end"]
    )[:5]
    recoveries = [
        k.recovery_s for k in kills if k.recovery_s is not None and "no conversation" not in k.note
    ]
    result = {
        "seed": options.seed,
        "duration_s": options.duration,
        "gateways": options.gateways,
        "targets": list(targets),
        "kills": [k.__dict__ for k in kills],
        "kills_by_target": dict(Counter(k.target for k in kills)),
        "not_recovered": sum(1 for k in kills if k.recovery_s is None),
        "recovery_p50_s": _percentile(recoveries, 0.5),
        "recovery_p99_s": _percentile(recoveries, 0.99),
        "recovery_max_s": max(recoveries, default=None),
        "stalls": [{"what": r["what"], "conv": r["conv"], "worker": r["worker"]} for r in stalls],
        "monkey_directory_failures": directory_failures,
        "client_outages": len(outages),
        "client_outage_p50_s": _percentile(outages, 0.5),
        "client_outage_max_s": max(outages, default=None),
        "worst_outages": [
            {
                "what": r["what"],
                "conv": r["conv"],
                "seconds": round(r["end"] - r["start"], 2),
                "at_s": round(r["start"] - load_started_wall, 1),
                "attempts": r["attempts"],
                "error": r["error"],
            }
            for r in worst
        ],
        "operations": dict(worker_stats),
        "archive": figures,
        "problems": problems,
        "timings": timings,
        "storage": str(directory),
        "verdict": "held" if not problems else "FAILED",
    }
    _print_summary(result)
    if not problems and not options.keep:
        shutil.rmtree(directory, ignore_errors=True)
    return result


def _print_summary(result: dict[str, Any]) -> None:
    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f} s"

    print(
        f"kills: {len(result['kills'])} {result['kills_by_target']}, not recovered: {result['not_recovered']};"
        f" recovery p50 {seconds(result['recovery_p50_s'])}, p99 {seconds(result['recovery_p99_s'])},"
        f" max {seconds(result['recovery_max_s'])}"
    )
    operations = result["operations"]
    print(
        f"load: {operations.get('acknowledged', 0)} operations acknowledged,"
        f" {operations.get('failed_attempts', 0)} failed attempts retried"
        f" ({operations.get('applied_despite_failure', 0)} had been applied),"
        f" {result['client_outages']} client outages (p50 {seconds(result['client_outage_p50_s'])},"
        f" max {seconds(result['client_outage_max_s'])}), {operations.get('gave_up', 0)} given up"
    )
    archive = result["archive"]
    print(
        f"archive: {archive.get('conversations', 0)} conversations, {archive.get('events', 0)} events,"
        f" {archive.get('acknowledged_customer_message', 0)} acknowledged customer messages and"
        f" {archive.get('acknowledged_agent_message', 0)} agent messages checked"
    )
    print(f"phases: {result['timings']}")
    if result["stalls"]:
        print(f"  stalls (a call over 10 s; stacks in worker-N.err): {result['stalls'][:5]}")
    for outage in result["worst_outages"][:3]:
        if outage["seconds"] >= 2.0:
            print(
                f"  long outage: {outage['what']} on {outage['conv']} at t={outage['at_s']}s waited"
                f" {outage['seconds']} s ({outage['attempts']} attempts): {outage['error'][:120]}"
            )
    for problem in result["problems"][:40]:
        print(f"  PROBLEM {problem}")
    if len(result["problems"]) > 40:
        print(f"  ... and {len(result['problems']) - 40} more")
    print(
        "verdict: "
        + (
            "held (every acknowledged event stored once, no gaps, one live conversation per room,"
            " states consistent, no process left)"
            if result["verdict"] == "held"
            else f"FAILED ({len(result['problems'])} problems; storage kept in {result['storage']})"
        ),
        flush=True,
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--duration", type=float, default=120.0, help="seconds of load (default 120)"
    )
    parser.add_argument("--gateways", type=int, default=3, help="gateway processes (default 3)")
    parser.add_argument(
        "--rate", type=float, default=40.0, help="operations/s per gateway (default 40)"
    )
    parser.add_argument(
        "--targets", default="hosts", help=f"what the monkey kills: {','.join(TARGETS)}"
    )
    parser.add_argument(
        "--kill-every", default="2:6", help="seconds between kills, MIN:MAX (default 2:6)"
    )
    parser.add_argument(
        "--cycle", action="store_true", help="strike the targets in turn, not at random"
    )
    parser.add_argument("--per-host", type=int, default=4, help="placement.per_host (default 4)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the storage even when all held")
    parser.add_argument("--postgres", default=None, help="journal and archive in this PostgreSQL database")
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--config", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--until", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--net-worker", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--net-port", type=int, default=None, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.worker is not None:
        return worker_main(options)
    if options.net_worker is not None:
        return chaos_netgw.net_worker_main(
            options.net_worker, options.net_port, options.out, options.until, options.seed,
            options.rate,
        )  # fmt: skip
    result = run(options)
    if options.json is not None:
        options.json.write_text(json.dumps(result, indent=2, default=str))
    return 0 if result["verdict"] == "held" else 1


if __name__ == "__main__":
    sys.exit(main())
