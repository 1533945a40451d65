"""Faults injected into a simulation run on its virtual clock (a scenario's ``faults:``).

Each fault acts on the engine as the real failure would, and the engine recovers by itself,
as in production:

* ``host_crash``: a conversation host exits (``ActorExitRequest``): its conversations are
  rebuilt from its journal on another host. A crash of the bot is one of these (the bot runs in
  each conversation host).
* ``agent_host_crash``: an agent host exits: its agents are logged out; their desks log them in
  again after :data:`RELOGIN_MS` (and make them READY if they were).
* ``router_restart``: a Router exits; the TopicMonitor starts a new one, which learns the
  pending requests and the agents again.
* ``archive_refuses``: another connection holds the archive's write lock from ``at`` for
  ``for``: archive writes fail meanwhile; closing conversations wait (CLOSING) and are archived
  once it lets go.
* ``duplicate_deliveries``: that share of customer messages is delivered twice, with the same
  message id: the engine must store it once.

Every random choice (a time, a host, which messages are duplicated) comes from the faults' own
stream, ``Random(f"{seed}:faults")``: adding faults changes no other draw of the run, and a
seed replays exactly. What was injected is listed in the summary (``faults``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from random import Random
from typing import Any

from thespian.actors import ActorExitRequest

from actors.messages.survey import Roster
from infra.timefmt import seconds_to_ms
from runtime import testing
from runtime.gateway import Gateway
from runtime.simulation.model import Fault, Scenario
from runtime.simulation.people import SimAgent

__all__ = ["RELOGIN_MS", "FaultInjector"]

#: How long after its agent host crashed an agent's desk logs it in again.
RELOGIN_MS = 10_000


class FaultInjector:
    """Schedules a scenario's faults on the driver's agenda and carries them out."""

    def __init__(
        self,
        scenario: Scenario,
        gw: Gateway,
        at: Callable[[int, Callable[[Any, Any], None], Any], None],
        base_ms: int,
    ) -> None:
        self.gw = gw
        self.rng = Random(f"{scenario.seed}:faults")
        self.injected: list[dict[str, Any]] = []
        self.duplicated = 0
        self._share = sum(f.share for f in scenario.faults if f.kind == "duplicate_deliveries")
        self._lock: sqlite3.Connection | None = None
        self._relogin: Callable[[SimAgent], None] | None = None
        self._agents: dict[str, SimAgent] = {}
        self._at = at
        for index, fault in enumerate(scenario.faults):
            if fault.kind == "duplicate_deliveries":
                self.injected.append({"fault": index, "kind": fault.kind, "share": fault.share})
                continue
            if fault.at is not None:
                when = fault.at
            else:
                start, end = fault.window
                when = self.rng.uniform(start, scenario.duration if end is None else end)
            at(base_ms + seconds_to_ms(when), self._inject, (index, fault))

    def agents_from(self, agents: dict[str, SimAgent], relogin: Callable[[SimAgent], None]) -> None:
        """The driver's agents, and how an agent's desk logs it in again."""
        self._agents, self._relogin = agents, relogin

    def duplicate(self) -> bool:
        """Whether the next customer message is delivered twice."""
        if self._share <= 0:
            return False
        if self.rng.random() < self._share:
            self.duplicated += 1
            return True
        return False

    def close(self) -> None:
        """Let go of the archive if it still refuses writes (the run is over)."""
        if self._lock is not None:
            self._lock.execute("ROLLBACK")
            self._lock.close()
            self._lock = None

    def summary(self) -> list[dict[str, Any]]:
        found = sorted((dict(item) for item in self.injected), key=lambda i: i["fault"])
        for item in found:
            if item["kind"] == "duplicate_deliveries":
                item["messages"] = self.duplicated
        return found

    # ------------------------------------------------------------------ the faults

    def _inject(self, which: tuple[int, Fault], _b: Any = None) -> None:
        index, fault = which
        now_s = self.gw.now_ms / 1000
        record: dict[str, Any] = {"fault": index, "kind": fault.kind, "at_seconds": now_s}
        if fault.kind == "host_crash":
            hosts = self._roster()["hosts"]
            record["host"] = target = self._pick(fault, len(hosts))
            self._exit(hosts[target])
        elif fault.kind == "router_restart":
            routers = self._roster()["routers"]
            record["router"] = target = self._pick(fault, len(routers))
            self._exit(routers[target])
        elif fault.kind == "agent_host_crash":
            record.update(self._agent_host_crash(fault))
        elif fault.kind == "archive_refuses":
            record["for_seconds"] = fault.lasts
            self._refuse_writes()
            self._at(self.gw.now_ms + seconds_to_ms(fault.lasts), self.archive_back, None)
        self.injected.append(record)

    def _pick(self, fault: Fault, count: int) -> int:
        """The target's index: the one named (modulo how many there are), else a draw."""
        if fault.target is not None:
            return fault.target % count
        return self.rng.randrange(count)

    def _roster(self) -> dict[str, list[Any]]:
        link = self.gw.engine
        roster: dict[str, list[Any]] = testing.ask(
            self.gw, link.addresses.monitor, Roster(link.call_id())
        )
        return roster

    def _exit(self, address: Any) -> None:
        testing.system(self.gw).tell(address, ActorExitRequest())

    def _agent_host_crash(self, fault: Fault) -> dict[str, Any]:
        supervisor = testing.actor(self.gw, testing.addresses(self.gw).agents)
        hosts = list(supervisor.hosts)
        if not hosts:  # no agent has logged in yet: nothing to crash
            return {"host": None, "agents": 0}
        index = self._pick(fault, len(hosts))
        lost = hosts[index]
        on_it = sorted(a for a, h in supervisor.placement.items() if h is lost)
        self._exit(lost.address)
        for agent_id in on_it:
            agent = self._agents.get(agent_id)
            if agent is not None:
                self._at(self.gw.now_ms + RELOGIN_MS, self._log_in_again, agent)
        return {"host": index, "agents": len(on_it)}

    def _log_in_again(self, agent: SimAgent, _b: Any = None) -> None:
        if self._relogin is not None:
            self._relogin(agent)

    def _refuse_writes(self) -> None:
        if self._lock is not None:
            return  # refusing already (overlapping faults): the first one lets go
        lock = sqlite3.connect(self.gw.settings.storage.archive, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        self._lock = lock

    def archive_back(self, _a: Any = None, _b: Any = None) -> None:
        """The end of ``archive_refuses``: the archive takes writes again."""
        self.close()
