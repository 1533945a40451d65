"""Booting the engine's actors into an actor system, and finding them again.

Importing this module (the gateway does) restricts Thespian's listening sockets to loopback
until :func:`start` or :func:`join` restricts them to ``system.bind`` (see ``runtime.bind``).

The TopicMonitor and the AgentSupervisor have global names, so that a gateway process joining
a running system finds the same ones. The TopicMonitor is wired by :func:`boot`; it starts the
Router and the Bot as its children (it restarts them if they die) and wires the others.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from thespian.actors import ActorSystem

from actors.agent_supervisor import AgentSupervisor
from actors.messages import BootStatus, Reply, Wiring
from actors.messages.nodes import Roots, RootsQuery, StartMembership
from actors.messages.system import desk_for
from actors.node_roots import NODE_ROOTS_NAME, NodeRoots
from actors.nodes import (
    ADMIN_CAPABILITY,
    AGENT_HOSTS_CAPABILITY,
    ARCHIVISTS_CAPABILITY,
    CONVENTION_CAPABILITY,
    HOSTS_CAPABILITY,
    INCARNATION_CAPABILITY,
    MEMBERSHIP_NAME,
    NODE_CAPABILITY,
    WEIGHT_CAPABILITY,
    MembershipActor,
    capacity_of,
)
from actors.topic_monitor import TopicMonitor
from domain.errors import UnavailableError
from domain.membership import Detector
from infra.archive_errors import StorageError
from infra.config import Settings
from infra.journal_read import JournalDamagedError
from infra.journal_segment import Damage
from infra.timefmt import wall_ms
from runtime import procs
from runtime.bind import restrict

#: How long :func:`start` waits for the TopicMonitor to say what it restored.
BOOT_TIMEOUT_S = 60.0
#: How long a gateway on a member waits for its node's NodeRoots to answer.
ROOTS_TIMEOUT_S = 5.0
#: How long the processes of a system whose start failed get to exit before they are killed.
ENDED_TIMEOUT_S = 10.0

NAMES = {
    "monitor": "cx-topic-monitor",
    "agents": "cx-agents",
}


#: Thespian's timing, set in the environment of the process that starts a system (Thespian
#: reads it once, when its admin and transports first load) unless the environment already
#: names it: members re-register every 5 s instead of 7 min 22 s, so that the leader's own
#: bookkeeping drops a dead member within about 15 s rather than 22 min; and a send to a node
#: that does not answer is dropped after 5 s instead of 5 min, so that an unreachable node
#: cannot freeze the actor sending to it for the whole cut.
THESPIAN_TIMING: Mapping[str, str] = {
    "CONVENTION_REREGISTRATION_PERIOD": "0:05",
    "THESPIAN_TRANSMIT_TIMEOUT_PERIOD": "0:05",
}


def node_name(settings: Settings) -> str:
    """This node's name: ``system.node``, else the machine's host name."""
    return settings.system.node or socket.gethostname()


def node_capabilities(settings: Settings, incarnation: int) -> dict[str, Any]:
    """The capabilities of the actor system this node starts: its admin port and address,
    its name and ``incarnation`` (its start time, ms), what it offers and, on a member, the
    convention leader it joins (``system.convention_address``)."""
    capabilities: dict[str, Any] = {
        "Admin Port": settings.system.admin_port,
        ADMIN_CAPABILITY: f"{settings.system.bind}:{settings.system.admin_port}",
        NODE_CAPABILITY: node_name(settings),
        INCARNATION_CAPABILITY: incarnation,
        HOSTS_CAPABILITY: settings.system.offers_hosts,
        WEIGHT_CAPABILITY: settings.system.weight,
        AGENT_HOSTS_CAPABILITY: settings.system.offers_agent_hosts,
        ARCHIVISTS_CAPABILITY: settings.system.offers_archivists,
    }
    if settings.system.convention_address is not None:
        capabilities[CONVENTION_CAPABILITY] = settings.system.convention_address
    return capabilities


def set_thespian_timing(environ: MutableMapping[str, str]) -> None:
    """Put :data:`THESPIAN_TIMING` into ``environ`` (``os.environ`` before a system starts),
    keeping any value the environment already has."""
    for name, value in THESPIAN_TIMING.items():
        environ.setdefault(name, value)


@dataclass(frozen=True, slots=True)
class Addresses:
    monitor: Any
    agents: Any
    #: The room desks (``placement.room_desks`` > 1), as the monitor names them (``Directory``).
    desks: tuple[Any, ...] = ()

    def desk_of(self, customer_id: str) -> Any:
        """Where the customer's sessions are opened: their room desk, or the monitor."""
        return desk_for(self.desks, self.monitor, customer_id)


def find(system: Any) -> Addresses:
    """The engine's actors (created unwired if the system was never booted)."""
    return Addresses(
        monitor=system.createActor(TopicMonitor, globalName=NAMES["monitor"]),
        agents=system.createActor(AgentSupervisor, globalName=NAMES["agents"]),
    )


def find_for(system: Any, settings: Settings) -> Addresses:
    """The engine's actors as a gateway of this node finds them: on the leader (or a single
    node) by their global names (:func:`find`); on a member, from the node's
    :class:`~actors.node_roots.NodeRoots`, which the leader fills once the member joined.

    Raises UnavailableError on a member that has not joined its leader (yet)."""
    if settings.system.convention_address is None:
        return find(system)
    holder = system.createActor(NodeRoots, globalName=NODE_ROOTS_NAME)
    roots = system.ask(holder, RootsQuery(), ROOTS_TIMEOUT_S)
    if not isinstance(roots, Roots) or roots.monitor is None or roots.agents is None:
        raise UnavailableError(
            f"this member node ({settings.system.bind}:{settings.system.admin_port}) has not"
            f" joined its leader at {settings.system.convention_address} yet"
        )
    return Addresses(monitor=roots.monitor, agents=roots.agents)


def start(settings: Settings) -> Any:
    """Start a real-time actor system of ``system.base`` (admin on ``system.admin_port``) with
    the engine booted in it. The caller owns it: ``system.shutdown()`` stops every process.

    Every listening socket of the system (admin, logger, actors, this process's own endpoint)
    is bound to ``system.bind`` (``runtime.bind``); the processes Thespian forks inherit it.

    The system advertises :func:`node_capabilities`; with ``system.convention_address`` set
    it joins that leader's convention as a member (docs/NODES.md).

    If the storage stops the start-up (a journal damaged in the middle, unless
    ``storage.salvage_journal``; a journal of another version), the system is shut down and
    JournalDamagedError or StorageError raised, naming the file.
    """
    restrict(settings)
    set_thespian_timing(os.environ)
    incarnation = wall_ms()
    capabilities = node_capabilities(settings, incarnation)
    system = ActorSystem(settings.system.base, capabilities, transientUnique=True)
    try:
        addresses = boot(system, settings, virtual=False, now=wall_ms())
        if settings.system.convention_address is None:
            start_membership(system, settings, addresses, incarnation)
        reply = system.ask(addresses.monitor, BootStatus("boot"), BOOT_TIMEOUT_S)
        if isinstance(reply, Reply):  # no answer: the caller's wait for the engine times out
            check_boot(reply.value)
    except BaseException:
        sessions = _system_sessions(settings)
        system.shutdown()
        _wait_ended(sessions)
        raise
    return system


def start_member(settings: Settings) -> Any:
    """Start this node as a member of the convention led by ``system.convention_address``:
    an actor system that offers its capabilities, on which the leader places actors (the
    engine's root actors run on the leader). The caller owns it, as with :func:`start`."""
    if settings.system.convention_address is None:
        raise ValueError("start_member needs system.convention_address")
    restrict(settings)
    set_thespian_timing(os.environ)
    capabilities = node_capabilities(settings, wall_ms())
    return ActorSystem(settings.system.base, capabilities, transientUnique=True)


def members_file(settings: Settings) -> Path:
    """Where the leader records its members: ``members.json`` beside the journal."""
    return settings.storage.journal.parent / "members.json"


def start_membership(
    system: Any, settings: Settings, addresses: Addresses, incarnation: int
) -> Any:
    """Start the leader's membership actor (``actors.nodes``), reporting to the TopicMonitor."""
    membership = system.createActor(MembershipActor, globalName=MEMBERSHIP_NAME)
    config = settings.system
    start = StartMembership(
        detector=Detector(config.heartbeat_ms, config.suspect_after, config.dead_after),
        node=node_name(settings),
        incarnation=incarnation,
        capacity=capacity_of(node_capabilities(settings, incarnation)),
        monitor=addresses.monitor,
        members_file=members_file(settings),
        virtual=False,
        now_ms=wall_ms(),
        agents=addresses.agents,
    )
    system.tell(membership, start)
    return membership


def _system_sessions(settings: Settings) -> set[int]:
    """The sessions of the processes (Thespian's admin) listening on the admin port, other
    than this process's own."""
    mine = procs.session_of(os.getpid())
    found = {procs.session_of(pid) for pid in procs.listening_on(settings.system.admin_port)}
    return {s for s in found if s is not None and s != mine}


def _wait_ended(sessions: set[int], timeout: float = ENDED_TIMEOUT_S) -> None:
    """A start that failed leaves no process: wait for the system's to exit after its
    shutdown, and kill what is still there after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = {pid for s in sessions for pid in procs.session_members(s)}
        if not left:
            return
        time.sleep(0.05)
    procs.signal_all({pid for s in sessions for pid in procs.session_members(s)}, signal.SIGKILL)


def boot(system: Any, settings: Settings, *, virtual: bool, now: int) -> Addresses:
    """Wire the TopicMonitor (found or created by its global name), which wires the rest and
    restores every live conversation of the journal. The daemon calls it again on a running
    admin to boot a new engine after a supervisor died (``runtime.supervise``)."""
    addresses = find(system)
    wiring = Wiring(
        settings=settings,
        monitor=addresses.monitor,
        router=None,  # the TopicMonitor starts them and completes the wiring
        agents=addresses.agents,
        virtual=virtual,
        now=now,
    )
    system.tell(addresses.monitor, wiring)
    return addresses


def salvaging(settings: Settings) -> Settings:
    """``settings`` with ``storage.salvage_journal`` on (``cx start --salvage-journal``)."""
    return replace(settings, storage=replace(settings.storage, salvage_journal=True))


def check_boot(status: Mapping[str, Any]) -> None:
    """Raise the storage error that stopped the TopicMonitor's restore, if one did."""
    if status["refused"]:
        raise JournalDamagedError(tuple(Damage(**d) for d in status["refused"]))
    if status["error"]:
        raise StorageError(f"cannot start on this storage: {status['error']}")


def join(settings: Settings) -> Any:
    """An actor system object of this process that talks to the running system whose admin is
    on ``system.admin_port`` (check first that it runs: Thespian starts a new admin otherwise).

    Its own endpoint listens on ``system.bind`` and advertises that address, so that the
    system, bound there, can answer it.
    """
    restrict(settings)
    capabilities = {"Admin Port": settings.system.admin_port}
    return ActorSystem(settings.system.base, capabilities, transientUnique=True)
