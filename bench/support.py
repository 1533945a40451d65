"""What every benchmark shares: temporary configurations, actor systems that never outlive the
benchmark, gateway worker processes, memory read from ``/proc`` and small statistics.

The discipline (as in ``tests/multiproc_support.py``): every actor system a benchmark starts
is shut down on the way out of its ``with`` block, whatever happened (an error, Ctrl-C,
SIGTERM), and every process of it that is still there afterwards is killed. Thespian's admin
puts itself and every actor process into a session of its own, so the session id, found
through the admin port, names all of them (``runtime.procs``).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import math
import multiprocessing
import os
import queue
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from thespian.actors import ActorSystem, InvalidActorAddress

from infra import proctitle
from infra.config import load_config
from runtime import procs
from runtime.system import start

#: Every benchmark's engine settings unless it says otherwise: no fsync, quiet logs, timers
#: long enough not to fire during a run.
FAST_SETTINGS: dict[str, Any] = {
    "storage": {"fsync": "never"},
    "logging": {"level": "warning"},
    "timers": {"customer_inactivity": {"seconds": 7200}, "agent_sla": {"seconds": 7200}},
}

#: Processes started by this process's benchmarks, by session id (for the final check).
_SESSIONS: set[int] = set()
#: One file per running system, named ``<owner pid>-<session id>``: a run killed with SIGKILL
#: cannot clean up, so the next run reaps what it left (:func:`reap_stale`).
_REGISTRY = Path(tempfile.gettempdir()) / "cx-bench-sessions"
_WORKERS: list[Any] = []


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def write_config(directory: Path, sections: Mapping[str, Any] | None = None) -> Path:
    """A config file on private storage under ``directory``, on a free admin port."""
    directory.mkdir(parents=True, exist_ok=True)
    config = deep_merge(
        {
            "system": {"admin_port": free_port()},
            "storage": {
                "archive": str(directory / "archive.sqlite3"),
                "journal": str(directory / "journal"),
            },
            # warnings and errors (a killed host is one) go to a file, not into the report
            "logging": {"file": str(directory / "engine.log")},
        },
        deep_merge(FAST_SETTINGS, sections or {}),
    )
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


# ------------------------------------------------------------------ signals


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP, turned into an exception so that every ``finally`` runs."""


@contextlib.contextmanager
def interrupts_raise() -> Iterator[None]:
    """While the block runs, SIGTERM and SIGHUP raise :class:`Interrupted` (as Ctrl-C raises
    KeyboardInterrupt), so that the cleanup of every running system still happens."""

    def raise_it(signum: int, frame: object) -> None:
        raise Interrupted(f"signal {signum}")

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, raise_it) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


# ------------------------------------------------------------------ actor systems


def _admin_session(port: int) -> int | None:
    mine = procs.session_of(os.getpid())
    for pid in sorted(procs.listening_on(port)):
        session = procs.session_of(pid)
        if session is not None and session != mine:
            return session
    return None


def end_session(session: int | None, *, timeout: float = 10.0) -> set[int]:
    """Wait up to ``timeout`` for the processes of ``session`` to exit, then SIGKILL the rest.
    Returns the pids that had to be killed."""
    if session is None:
        return set()
    deadline = time.monotonic() + timeout
    members = procs.session_members(session)
    while members and time.monotonic() < deadline:
        time.sleep(0.05)
        members = procs.session_members(session)
    killed = set(members)
    procs.signal_all(members, signal.SIGKILL)
    deadline = time.monotonic() + 10.0
    while procs.session_members(session) and time.monotonic() < deadline:
        time.sleep(0.02)
    _SESSIONS.discard(session)
    (_REGISTRY / f"{os.getpid()}-{session}").unlink(missing_ok=True)
    return killed


def _register(session: int) -> None:
    _SESSIONS.add(session)
    _REGISTRY.mkdir(exist_ok=True)
    (_REGISTRY / f"{os.getpid()}-{session}").touch()


def reap_stale() -> set[int]:
    """Kill the systems of earlier benchmark runs that died without cleaning up (SIGKILL);
    returns the pids killed."""
    killed: set[int] = set()
    if not _REGISTRY.is_dir():
        return killed
    for entry in _REGISTRY.iterdir():
        owner, _, session = entry.name.partition("-")
        if not (owner.isdigit() and session.isdigit()) or procs.alive(int(owner)):
            continue
        members = procs.session_members(int(session))
        # only processes that still look like the engine's (the session id could have been
        # reused): Python, or a title of an engine process (infra.proctitle)
        members = {
            pid
            for pid in members
            if "python" in " ".join(procs.cmdline(pid)[:1])
            or proctitle.is_engine_title(procs.cmdline(pid))
        }
        procs.signal_all(members, signal.SIGKILL)
        killed |= members
        entry.unlink(missing_ok=True)
    return killed


def _shutdown(system: Any, timeout: float) -> None:
    """``system.shutdown()``, but give up after ``timeout`` (an overloaded system may not
    answer; its processes are killed next anyway)."""
    done = threading.Event()

    def run() -> None:
        with contextlib.suppress(Exception):
            system.shutdown()
        done.set()

    threading.Thread(target=run, daemon=True, name="bench-shutdown").start()
    done.wait(timeout)


@dataclass
class Running:
    """A started actor system: its config, the system object, and its processes."""

    config: Path | None
    system: Any
    port: int
    session: int | None = None
    settings: Any = None

    def pids(self) -> set[int]:
        return procs.session_members(self.session) if self.session is not None else set()


@contextlib.contextmanager
def _guarded(port: int, make: Callable[[], Any], *, shutdown_timeout: float) -> Iterator[Running]:
    running = Running(None, None, port)
    try:
        with interrupts_raise():
            running.system = make()
            running.session = _admin_session(port)
            if running.session is not None:
                _register(running.session)
            yield running
    finally:
        if running.session is None:  # interrupted while starting: find it anyway
            running.session = _admin_session(port)
        if running.system is not None:
            # An overloaded system may take long to stop in order: do not wait for it
            _shutdown(running.system, shutdown_timeout)
        end_session(running.session, timeout=2.0)


#: How many admin ports :func:`engine` tries: the port written into a configuration was free
#: when it was chosen, but another process may have bound it before the admin did.
_START_ATTEMPTS = 3


def _move_to_free_port(config_path: Path) -> None:
    """Rewrite ``system.admin_port`` in the configuration file to a port that is free now."""
    raw = yaml.safe_load(config_path.read_text())
    raw.setdefault("system", {})["admin_port"] = free_port()
    config_path.write_text(yaml.safe_dump(raw))


@contextlib.contextmanager
def engine(config_path: Path, *, shutdown_timeout: float = 15.0) -> Iterator[Running]:
    """The engine on multiprocTCPBase (``runtime.system.start``), always stopped on exit.

    If its admin cannot take the configured port (Thespian's ``InvalidActorAddress``), the
    configuration file is moved to another free port and the start is tried again."""
    for attempt in range(1, _START_ATTEMPTS + 1):
        settings = load_config(config_path)
        guard = _guarded(
            settings.system.admin_port,
            functools.partial(start, settings),
            shutdown_timeout=shutdown_timeout,
        )
        try:
            running = guard.__enter__()
        except InvalidActorAddress:
            if attempt == _START_ATTEMPTS:
                raise
            _move_to_free_port(config_path)
            continue
        with contextlib.ExitStack() as stack:
            stack.push(guard)
            running.config = config_path
            running.settings = settings
            yield running
        return


@contextlib.contextmanager
def raw_system(*, shutdown_timeout: float = 15.0) -> Iterator[Running]:
    """A bare multiprocTCPBase actor system (for the raw Thespian references), bound to
    loopback like the engine's, always stopped on exit (importing ``runtime.system`` has
    restricted Thespian's sockets to loopback)."""
    port = free_port()

    def make() -> Any:
        return ActorSystem("multiprocTCPBase", {"Admin Port": port}, transientUnique=True)

    with _guarded(port, make, shutdown_timeout=shutdown_timeout) as running:
        yield running


def leftovers() -> set[int]:
    """Processes of systems and workers started here that are still alive (there should be
    none); they are killed."""
    found: set[int] = set()
    for session in list(_SESSIONS):
        found |= end_session(session, timeout=0.0)
    for worker in _WORKERS:
        if worker.is_alive():
            found.add(worker.pid)
            worker.kill()
    return found


@contextlib.contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f"cx-bench-{prefix}-") as directory:
        yield Path(directory)


# ------------------------------------------------------------------ worker processes


@dataclass
class WorkerResult:
    index: int
    value: Any = None
    error: str | None = None


class Gate:
    """What a worker gets to line up with the others: :meth:`ready` once prepared (gateway
    connected, subscriptions made), then :meth:`wait` until every worker is ready."""

    def __init__(self, ready: Any, start: Any) -> None:
        self.readiness = ready  # a semaphore: one release per worker ready
        self.start = start  # an event: set when every worker is ready

    def ready(self) -> None:
        self.readiness.release()

    def wait(self, timeout: float = 120.0) -> None:
        if not self.start.wait(timeout):
            raise TimeoutError("the benchmark never gave the start signal")


def _worker_main(
    target: Callable[..., Any], index: int, args: tuple[Any, ...], out: Any, gate: Gate
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent ends its workers itself
    try:
        out.put(WorkerResult(index, target(gate, *args)))
    except BaseException as error:
        out.put(WorkerResult(index, None, "".join(traceback.format_exception(error))[-3000:]))


def run_workers(
    jobs: Sequence[tuple[Callable[..., Any], tuple[Any, ...]]],
    *,
    timeout: float,
    started: Callable[[], None] | None = None,
) -> list[Any]:
    """Run each ``target(gate, *args)`` of ``jobs`` in a process of its own (spawned: a fresh
    interpreter that connects its own gateway) and return their results in order.

    Every worker prepares itself and calls ``gate.ready()``; when all are ready they are
    released together (``gate.wait()``) and ``started`` is called here. Workers are always
    ended on the way out; an error in any of them is raised here."""
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    gate = Gate(context.Semaphore(0), context.Event())
    workers = [
        context.Process(
            target=_worker_main, args=(target, i, a, out, gate), daemon=True, name=f"bench-w{i}"
        )
        for i, (target, a) in enumerate(jobs)
    ]
    _WORKERS.extend(workers)
    results: dict[int, WorkerResult] = {}
    deadline = time.monotonic() + timeout

    def collect(block: float) -> None:
        try:
            result: WorkerResult = out.get(timeout=block)
        except queue.Empty:
            return
        results[result.index] = result
        if result.error:
            raise RuntimeError(f"benchmark worker {result.index} failed:\n{result.error}")

    def check_alive() -> None:
        for i, worker in enumerate(workers):
            if i not in results and not worker.is_alive():
                collect(0.5)
                if i not in results:
                    raise RuntimeError(f"worker {worker.name} died (exit code {worker.exitcode})")

    try:
        for worker in workers:
            worker.start()
        for _ in workers:  # every worker ready
            while not gate.readiness.acquire(timeout=0.5):
                if time.monotonic() > deadline:
                    raise TimeoutError("benchmark workers did not get ready in time")
                collect(0)
                check_alive()
        gate.start.set()
        if started is not None:
            started()
        while len(results) < len(workers):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(workers) - len(results)} workers did not finish in time")
            collect(0.5)
            check_alive()
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
        for worker in workers:
            worker.join(5)
            if worker.is_alive():
                worker.kill()
                worker.join(5)
        for worker in workers:
            _WORKERS.remove(worker)
        out.close()
    return [results[i].value for i in range(len(workers))]


# ------------------------------------------------------------------ memory


@dataclass(frozen=True)
class Memory:
    """Memory of a set of processes, in bytes: proportional set size (shared pages divided
    among their users) and private pages."""

    processes: int
    pss: int
    private: int
    rss: int


def memory_of(pids: set[int] | Sequence[int]) -> Memory:
    pss = private = rss = 0
    count = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        fields: dict[str, int] = {}
        for line in text.splitlines()[1:]:
            parts = line.split()
            if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                fields[parts[0][:-1]] = int(parts[1]) * 1024
        count += 1
        pss += fields.get("Pss", 0)
        private += fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
        rss += fields.get("Rss", 0)
    return Memory(count, pss, private, rss)


# ------------------------------------------------------------------ profiling

#: Set by ``python -m bench --profile DIR``: measured phases are sampled with py-spy.
PROFILE_DIR: Path | None = None


@contextlib.contextmanager
def profiled(
    running: Running, label: str, names: Mapping[int, str] | None = None
) -> Iterator[None]:
    """Sample every process of ``running`` with py-spy while the block runs (only when
    :data:`PROFILE_DIR` is set) and write ``DIR/label.txt``: per process, where its CPU went
    (functions by own samples, and the engine's functions by samples including callees)."""
    if PROFILE_DIR is None:
        yield
        return
    PROFILE_DIR.mkdir(parents=True, exist_ok=True)
    spies: list[tuple[int, Path, Any]] = []
    seen: set[int] = set()
    stop = threading.Event()

    def attach() -> None:  # also to processes that appear while the block runs (new hosts)
        while True:
            for pid in sorted(running.pids() - seen):
                seen.add(pid)
                out = PROFILE_DIR / f"{label}-{pid}.raw"
                command = [_py_spy(), "record", "--pid", str(pid), "--rate", "100"]
                command += ["--format", "raw", "-o", str(out), "--nonblocking"]
                spy = subprocess.Popen(
                    command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
                spies.append((pid, out, spy))
            if stop.wait(0.1):
                return

    watcher = threading.Thread(target=attach, daemon=True, name="bench-profiler")
    watcher.start()
    time.sleep(0.5)  # attached
    started = time.monotonic()
    try:
        yield
    finally:
        seconds = time.monotonic() - started
        stop.set()
        watcher.join(5)
        for _, _, spy in spies:
            spy.send_signal(signal.SIGINT)
        for _, _, spy in spies:
            try:
                spy.wait(20)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait(5)
        _summarise(PROFILE_DIR / f"{label}.txt", spies, seconds, names or {})


#: Frames that tell which actor a process runs, most specific first: a forked actor's stacks
#: also show, below its own, the frames of the actor that created it (a host's show the
#: TopicMonitor's, an agent host's the AgentSupervisor's).
_ROLE_FRAMES = (
    ("AgentEntity.receive", "Host (agents)"),
    ("Host._drain", "Host (conversations)"),
    ("Bot.on_deliver", "Bot"),
    ("Router.on_deliver", "Router"),
    ("TopicMonitor.on_deliver", "TopicMonitor"),
    ("AgentSupervisor.on_deliver", "AgentSupervisor"),
)


def _role(inclusive: collections.Counter[str]) -> str:
    for marker, role in _ROLE_FRAMES:
        if any(frame.startswith(marker) for frame in inclusive):
            return role
    return "Thespian admin, logger or idle actor"


def _py_spy() -> str:
    candidate = Path(sys.executable).with_name("py-spy")
    return str(candidate) if candidate.exists() else "py-spy"


def _summarise(
    path: Path, spies: list[tuple[int, Path, Any]], seconds: float, names: Mapping[int, str]
) -> None:
    lines = [f"py-spy, 100 samples/s, {seconds:.1f} s measured; busy = samples / (100 * seconds)"]
    for pid, out, _ in spies:
        own: collections.Counter[str] = collections.Counter()
        inclusive: collections.Counter[str] = collections.Counter()
        total = 0
        try:
            text = out.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            frames = stack.split(";")
            total += int(count)
            own[frames[-1]] += int(count)
            for frame in set(frames):
                if "/actors/" in frame or "/runtime/" in frame or "actors/" in frame.split("(")[-1]:
                    inclusive[frame] += int(count)
        if not total:
            continue
        role = names.get(pid) or _role(inclusive)
        lines.append(
            f"\n== pid {pid} ({role}): {total} samples, busy {total / max(1e-9, seconds):.0f}%"
        )
        lines += [f"  {100 * n / total:5.1f}% self  {frame}" for frame, n in own.most_common(15)]
        lines += [
            f"  {100 * n / total:5.1f}% incl  {frame}" for frame, n in inclusive.most_common(15)
        ]
    path.write_text("\n".join(lines) + "\n")


# ------------------------------------------------------------------ statistics


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of ``values``; NaN if empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return float(ordered[min(rank, len(ordered)) - 1])


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else math.nan


@dataclass
class Stopwatch:
    started: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started


def mb(value: float) -> str:
    return f"{value / 1e6:,.1f} MB"


def kb(value: float) -> str:
    return f"{value / 1e3:,.2f} KB"
