"""Booting the engine's actors into an actor system, and finding them again.

Importing this module (the gateway does) restricts Thespian's listening sockets to loopback
until :func:`start` or :func:`join` restricts them to ``system.bind`` (see ``runtime.bind``).

The four long-lived actors have global names, so that a gateway process joining a running
system finds the same ones. Each is wired once with the settings and the others' addresses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from thespian.actors import ActorSystem

from actors.agent_supervisor import AgentSupervisor
from actors.bot import Bot
from actors.messages import Wiring
from actors.router import Router
from actors.topic_monitor import TopicMonitor
from runtime.bind import restrict
from runtime.config import Settings
from runtime.timefmt import wall_ms

NAMES = {
    "monitor": "cx-topic-monitor",
    "router": "cx-router",
    "bot": "cx-bot",
    "agents": "cx-agents",
}


@dataclass(frozen=True, slots=True)
class Addresses:
    monitor: Any
    router: Any
    bot: Any
    agents: Any


def find(system: Any) -> Addresses:
    """The engine's actors (created unwired if the system was never booted)."""
    return Addresses(
        monitor=system.createActor(TopicMonitor, globalName=NAMES["monitor"]),
        router=system.createActor(Router, globalName=NAMES["router"]),
        bot=system.createActor(Bot, globalName=NAMES["bot"]),
        agents=system.createActor(AgentSupervisor, globalName=NAMES["agents"]),
    )


def start(settings: Settings) -> Any:
    """Start a real-time actor system of ``system.base`` (admin on ``system.admin_port``) with
    the engine booted in it. The caller owns it: ``system.shutdown()`` stops every process.

    Every listening socket of the system (admin, logger, actors, this process's own endpoint)
    is bound to ``system.bind`` (``runtime.bind``); the processes Thespian forks inherit it.
    """
    restrict(settings)
    capabilities = {"Admin Port": settings.system.admin_port}
    system = ActorSystem(settings.system.base, capabilities, transientUnique=True)
    try:
        boot(system, settings, virtual=False, now=wall_ms())
    except BaseException:
        system.shutdown()
        raise
    return system


def boot(system: Any, settings: Settings, *, virtual: bool, now: int) -> Addresses:
    addresses = find(system)
    wiring = Wiring(
        settings=settings,
        monitor=addresses.monitor,
        router=addresses.router,
        bot=addresses.bot,
        agents=addresses.agents,
        virtual=virtual,
        now=now,
    )
    # The router and bot first: the monitor's hosts and the agents talk to them.
    for address in (addresses.router, addresses.bot, addresses.agents, addresses.monitor):
        system.tell(address, wiring)
    return addresses


def join(settings: Settings) -> Any:
    """An actor system object of this process that talks to the running system whose admin is
    on ``system.admin_port`` (check first that it runs: Thespian starts a new admin otherwise).

    Its own endpoint listens on ``system.bind`` and advertises that address, so that the
    system, bound there, can answer it.
    """
    restrict(settings)
    capabilities = {"Admin Port": settings.system.admin_port}
    return ActorSystem(settings.system.base, capabilities, transientUnique=True)
