"""The daemon supervises the engine: it watches the processes at the root of the actor tree and
starts again what died.

What is watched (every :data:`WATCH_INTERVAL_S`, by pid in ``/proc``: no message, so a busy
TopicMonitor is never taken for a dead one): Thespian's admin and its logger (the two processes
listening on the admin port), the TopicMonitor and the AgentSupervisor (whose pids they tell
when pinged at start). What is done (docs/OPERATIONS.md, "Supervision"):

- **the TopicMonitor or the AgentSupervisor died: engine restart.** The processes below the
  admin (the other supervisor, conversation and agent hosts, Router, Bot, and the orphans a
  dead supervisor leaves behind; not the logger) are ended with SIGKILL, as in a crash; once
  the admin has let go of the global names, a new TopicMonitor and AgentSupervisor are booted
  on the same admin (see :func:`engine_victims`).
  The TopicMonitor restores every live conversation from the journal, as after a restart of
  the whole system; agents log in again.
- **the admin or the logger died: system restart.** Every process of the system's session is
  ended with SIGKILL and a new actor system is started on the same admin port and storage; it
  restores every live conversation from the journal.

Restarts are bounded by :class:`RestartPolicy`: an increasing delay between consecutive
restarts, and at most :data:`MAX_RESTARTS` within :data:`RESTART_WINDOW_S`, after which the
daemon gives up (exit code :data:`EXIT_GAVE_UP`). Every detection, restart and failure is
logged (logger ``runtime.supervise``).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from actors.messages import BootStatus, Ping
from domain.errors import CxError, ErrorKind
from infra.config import Settings
from infra.logs import get_logger
from infra.timefmt import wall_ms
from runtime import procs
from runtime.system import Addresses, boot, find, start, start_membership

log = get_logger("runtime.supervise")

#: How often the daemon looks at the watched processes.
WATCH_INTERVAL_S = 1.0
#: Delay before the n-th consecutive restart (counted within the window), from the end of the
#: previous one; the last value repeats.
BACKOFF_S = (0.0, 1.0, 2.0, 4.0, 8.0)
#: At most this many restarts within RESTART_WINDOW_S; one more failure and the daemon gives up.
MAX_RESTARTS = 5
RESTART_WINDOW_S = 120.0
#: The daemon's exit code when it gave up restarting (the same as an actor system gone).
EXIT_GAVE_UP = 3
#: How long a restart waits for processes to exit and for the admin to free the names.
STEP_TIMEOUT_S = 15.0
#: How long a booted engine gets to answer: the TopicMonitor reads the journals and places
#: every live conversation before it answers (about 13 s for 10,000, docs/PERFORMANCE.md);
#: as long as ``cx start`` waits.
BOOT_TIMEOUT_S = 60.0
_POLL_S = 0.05

#: The watched processes, by role, with the name logs and ``cx status`` give them.
ROLES = {
    "admin": "Thespian admin",
    "logger": "Thespian logger",
    "monitor": "TopicMonitor",
    "agents": "AgentSupervisor",
}
SYSTEM_ROLES = frozenset({"admin", "logger"})

HEALTHY = "healthy"
WAIT = "wait"
RESTART_ENGINE = "restart_engine"
RESTART_SYSTEM = "restart_system"
GIVE_UP = "give_up"


class RestartError(CxError):
    """A restart step did not complete in time."""

    kind = ErrorKind.UNAVAILABLE


# ------------------------------------------------------------------------------ deciding


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do about the roles found ``down``; ``restarts``: restarts within the window."""

    action: str
    down: tuple[str, ...] = ()
    restarts: int = 0


@dataclass(slots=True)
class RestartPolicy:
    """Decides, from the roles found down and the time, whether to restart now, wait (backoff)
    or give up, and which restart. Pure: fed observations, it does nothing itself.

    An engine restart that failed is followed by a system restart: a half-booted engine (a
    TopicMonitor that never answered) would otherwise stay beside the next one."""

    max_restarts: int = MAX_RESTARTS
    window_s: float = RESTART_WINDOW_S
    backoff_s: tuple[float, ...] = BACKOFF_S
    restarts: list[float] = field(default_factory=list)
    last_failed: bool = False

    def decide(self, down: Collection[str], now: float) -> Decision:
        if not down:
            return Decision(HEALTHY)
        self.restarts = [t for t in self.restarts if now - t < self.window_s]
        ordered = tuple(role for role in ROLES if role in down)
        recent = len(self.restarts)
        if recent >= self.max_restarts:
            return Decision(GIVE_UP, ordered, recent)
        if recent and now - self.restarts[-1] < self.backoff_s[min(recent, len(self.backoff_s) - 1)]:
            return Decision(WAIT, ordered, recent)
        whole = self.last_failed or SYSTEM_ROLES.intersection(down)
        return Decision(RESTART_SYSTEM if whole else RESTART_ENGINE, ordered, recent)

    def restarted(self, now: float, *, ok: bool) -> None:
        """A restart ended at ``now``, successfully or not."""
        self.restarts.append(now)
        self.last_failed = not ok


def down_roles(pids: Mapping[str, int], alive: Callable[[int], bool]) -> tuple[str, ...]:
    """The watched roles whose recorded process is no longer alive."""
    return tuple(role for role in ROLES if role in pids and not alive(pids[role]))


def engine_victims(
    tree: Mapping[int, int], *, admin: int | None, keep: Collection[int], supervisors: Collection[int]
) -> set[int]:
    """What an engine restart ends, from the session's processes (``tree``: pid -> parent):
    the recorded ``supervisors`` (children of the admin) and every process that is not a child
    of the admin (their descendants, and the orphans a dead supervisor left), but not the
    admin and ``keep`` (its logger). Another child of the admin is a supervisor a gateway
    created (unwired) after the old one's name was freed: it is kept and wired."""
    return {
        pid
        for pid, parent in tree.items()
        if pid != admin and pid not in keep and (parent != admin or pid in supervisors)
    }


# ------------------------------------------------------------------------------ the engine


@dataclass(slots=True)
class Engine:
    """The running actor system as the daemon knows it."""

    system: Any
    addresses: Addresses
    session: int | None
    pids: dict[str, int]

    def alive(self, pid: int) -> bool:
        """Whether ``pid`` is a live process of this system's session (not a reused pid)."""
        return procs.alive(pid) and (self.session is None or procs.session_of(pid) == self.session)

    def down(self) -> tuple[str, ...]:
        return down_roles(self.pids, self.alive)


def admin_processes(settings: Settings) -> tuple[int | None, dict[str, int]]:
    """The session of the system on the admin port and the pids of its admin and logger (the
    processes of another session than this one listening there: the logger inherits the
    admin's socket and is its child); ``(None, {})`` if none is found."""
    mine = procs.session_of(os.getpid())
    holders = {
        pid: session
        for pid in procs.listening_on(settings.system.admin_port)
        if (session := procs.session_of(pid)) is not None and session != mine
    }
    if not holders:
        return None, {}
    session = min(holders.values())
    tree = procs.session_tree(session)
    found: dict[str, int] = {}
    for pid in sorted(p for p, s in holders.items() if s == session):
        found["logger" if tree.get(pid) in holders else "admin"] = pid
    return session, found


def start_engine(settings: Settings) -> Engine:
    """Start the actor system with the engine booted in it (``runtime.system.start``) and find
    the processes to watch."""
    system = start(settings)
    try:
        return _describe(system, settings, find(system))
    except BaseException:
        system.shutdown()
        raise


def _describe(system: Any, settings: Settings, addresses: Addresses) -> Engine:
    session, pids = admin_processes(settings)
    for role, address in (("monitor", addresses.monitor), ("agents", addresses.agents)):
        answer = system.ask(address, Ping(role), BOOT_TIMEOUT_S)
        if answer is None or not isinstance(getattr(answer, "value", None), dict):
            raise RestartError(f"the {ROLES[role]} did not answer within {BOOT_TIMEOUT_S:g} s")
        pids[role] = int(answer.value["pid"])
    missing = [ROLES[role] for role in ROLES if role not in pids]
    if missing:
        log.warning("processes not found: they are not watched", missing=missing)
    return Engine(system, addresses, session, pids)


def restart_engine(engine: Engine, settings: Settings) -> Engine:
    """End every process below the admin and boot a new TopicMonitor and AgentSupervisor."""
    if engine.session is None:
        raise RestartError("the system's session is unknown")
    supervisors = {engine.pids[role] for role in ("monitor", "agents") if role in engine.pids}
    victims = engine_victims(
        procs.session_tree(engine.session),
        admin=engine.pids.get("admin"),
        keep={engine.pids[role] for role in SYSTEM_ROLES if role in engine.pids},
        supervisors=supervisors,
    )
    log.warning("ending the engine's actor processes", pids=sorted(victims))
    procs.signal_all(victims, signal.SIGKILL)
    # The supervisors are the admin's children: once reaped, the admin has seen them exit.
    _until(lambda: not any(procs.exists(pid) for pid in supervisors), "the supervisors to exit")
    _until(lambda: not any(procs.alive(pid) for pid in victims), "the actor processes to exit")
    old = engine.addresses

    def freed() -> bool:  # the admin has dropped the dead supervisors' global names
        found = find(engine.system)
        return bool(found.monitor != old.monitor and found.agents != old.agents)

    _until(freed, "the admin to free the supervisors' names")
    addresses = boot(engine.system, settings, virtual=False, now=wall_ms())
    if settings.system.convention_address is None:  # the leader's membership: the new monitor
        start_membership(engine.system, settings, addresses, wall_ms())
    _await_boot(engine.system, addresses)
    return _describe(engine.system, settings, addresses)


def restart_system(engine: Engine, settings: Settings) -> Engine:
    """End every process of the system's session and start a new actor system."""
    members = procs.session_members(engine.session) if engine.session is not None else set()
    log.warning("ending the actor system's processes", pids=sorted(members))
    procs.signal_all(members, signal.SIGKILL)
    _until(lambda: not any(procs.alive(pid) for pid in members), "the processes to exit")
    abandon(engine.system)
    return start_engine(settings)


def abandon(system: Any) -> None:
    """Let go of this process's endpoint of an actor system whose admin is gone (a shutdown
    would wait for the dead admin's answer)."""
    base = getattr(system, "_systemBase", None)
    try:
        if base is not None:
            base.transport.close()
    except Exception:
        log.exception("closing the endpoint of the old actor system failed")


def _await_boot(system: Any, addresses: Addresses) -> None:
    answer = system.ask(addresses.monitor, BootStatus("boot"), BOOT_TIMEOUT_S)
    if answer is None:
        raise RestartError(f"the new TopicMonitor did not answer within {BOOT_TIMEOUT_S:g} s")


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            raise RestartError(f"gave up waiting {STEP_TIMEOUT_S:g} s for {what}")
        time.sleep(_POLL_S)


# ------------------------------------------------------------------------------ watching

#: Told the state (``running`` or ``recovering``), the engine and the roles down.
Report = Callable[[str, Engine, tuple[str, ...]], None]


class Watcher:
    """Looks at the engine's processes when asked (:meth:`check`) and restarts what died."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        report: Report,
        *,
        policy: RestartPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.report = report
        self.policy = policy or RestartPolicy(
            max_restarts=settings.system.restart_limit,
            window_s=settings.system.restart_window_seconds,
        )
        self.clock = clock
        self.recovering: tuple[str, ...] = ()
        self.restarts = {"engine": 0, "system": 0}  # completed restarts, by kind (the metrics)

    def check(self) -> int | None:
        """One look; an exit code when the daemon must give up, else None."""
        down = self.engine.down()
        decision = self.policy.decide(down, self.clock())
        if decision.action == HEALTHY:
            if self.recovering:
                log.info("engine recovered", was_down=_names(self.recovering))
                self.recovering = ()
                self.report("running", self.engine, ())
            return None
        if down != self.recovering:
            log.error(
                "supervised process down",
                down=_names(down),
                pids={ROLES[role]: self.engine.pids[role] for role in down},
            )
            self.recovering = down
            self.report("recovering", self.engine, down)
        if decision.action == WAIT:
            return None
        if decision.action == GIVE_UP:
            log.error(
                "giving up: too many restarts",
                down=_names(down),
                restarts=decision.restarts,
                window_s=self.policy.window_s,
            )
            return EXIT_GAVE_UP
        self._restart(decision)
        return None

    def _restart(self, decision: Decision) -> None:
        kind = "system" if decision.action == RESTART_SYSTEM else "engine"
        log.warning(
            f"restarting the {kind}", down=_names(decision.down), attempt=decision.restarts + 1
        )
        began = time.monotonic()
        try:
            if decision.action == RESTART_SYSTEM:
                self.engine = restart_system(self.engine, self.settings)
            else:
                self.engine = restart_engine(self.engine, self.settings)
        except Exception:
            log.exception(f"{kind} restart failed", down=_names(decision.down))
            self.policy.restarted(self.clock(), ok=False)
            return
        self.policy.restarted(self.clock(), ok=True)
        self.restarts[kind] += 1
        log.warning(
            f"{kind} restarted",
            session=self.engine.session,
            pids={ROLES[role]: pid for role, pid in self.engine.pids.items()},
            seconds=round(time.monotonic() - began, 2),
        )
        self.recovering = ()
        self.report("running", self.engine, ())


def _names(roles: Iterable[str]) -> list[str]:
    return [ROLES[role] for role in roles]
