"""Placement: which conversation host a conversation goes to, and when hosts start and stop.

The TopicMonitor keeps at least ``placement.hosts`` conversation hosts (its children). A new
or restored conversation goes to the host with the fewest live conversations, so that every
host (every core it runs on) takes a share from the start; when every host has
``placement.per_host`` conversations a new one is started, and a host left empty beyond the
minimum is stopped. :class:`Placement` keeps the hosts and their counts; starting and stopping
an actor is the monitor's (the callables it is given).

:class:`Nodes` keeps the live nodes that offer one kind of work (conversation hosts, agent
hosts, archivists) and picks the one a new actor of that kind goes to.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from domain.membership import Capacity, Work, least_loaded
from infra.timefmt import wall_ms


class Nodes:
    """The live nodes offering one kind of :class:`~domain.membership.Work`, with their
    weights (from ``NodeUp``/``NodeDown``). Empty: every actor of that kind starts on this
    node."""

    def __init__(self, work: Work) -> None:
        self.work = work
        self.weights: dict[str, int] = {}

    def up(self, node: str, capacity: Capacity) -> None:
        if capacity.offers(self.work):
            self.weights[node] = capacity.weight
        else:
            self.weights.pop(node, None)

    def down(self, node: str) -> None:
        self.weights.pop(node, None)

    def choose(self, placed: Iterable[str | None]) -> str | None:
        """The node a new actor goes to, given the nodes of those placed already: fewest per
        unit of weight, ties by name; None (this node) when no live node offers the work."""
        counts: dict[str, int] = {}
        for node in placed:
            if node is not None:
                counts[node] = counts.get(node, 0) + 1
        return least_loaded(self.weights, counts)


@dataclass(slots=True)
class HostInfo:
    address: Any
    host_id: str
    conversations: int = 0
    #: The node it was placed on by name; None: this node, before any node was known.
    node: str | None = None


class Placement:
    def __init__(
        self, start: Callable[[str, str | None], Any], stop: Callable[[Any], None]
    ) -> None:
        """``start(host_id, node)`` starts a conversation host (on the named node, or here
        for None) and returns its address; ``stop`` stops one."""
        # By host id: an address's text can change once Thespian resolves it; compare with ==.
        self.hosts: dict[str, HostInfo] = {}
        self.start, self.stop = start, stop
        self._seq = itertools.count(1)
        #: The live nodes new hosts may go to (``node_up``): a new host goes to the one with
        #: the fewest hosts per unit of weight. Empty: every host starts on this node.
        self.nodes = Nodes(Work.HOSTS)

    def node_up(self, node: str, capacity: Capacity) -> None:
        self.nodes.up(node, capacity)

    def node_down(self, node: str) -> list[HostInfo]:
        """``node`` takes no new host; the hosts that were on it (still listed: each is
        handled as a lost host by its address)."""
        self.nodes.down(node)
        return [h for h in self.hosts.values() if h.node == node]

    def choose_node(self) -> str | None:
        """The live node a new host goes to: fewest hosts per unit of weight, ties by name."""
        return self.nodes.choose(h.node for h in self.hosts.values())

    def __iter__(self) -> Iterator[HostInfo]:
        return iter(list(self.hosts.values()))

    def addresses(self) -> list[Any]:
        return [h.address for h in self.hosts.values()]

    def place(self, per_host: int) -> HostInfo:
        """The host a conversation goes to (counted there): the one with the fewest live
        conversations (the earliest started on a tie), a new one when every host has
        ``per_host``."""
        open_hosts = [h for h in self.hosts.values() if h.conversations < per_host]
        host = min(open_hosts, key=lambda h: h.conversations, default=None)
        if host is None:
            host = self.new_host()
        host.conversations += 1
        return host

    def place_many(self, count: int, per_host: int, width: int) -> list[HostInfo]:
        """The hosts of ``count`` conversations placed at once (a dead host's, rebuilt), each
        counted there: dealt to the least-loaded of at least ``width`` hosts (those with room
        first, new ones started for the rest) so that several processes replay them side by
        side; never more hosts than conversations. A host that fills up is dropped from the
        deal, and a new one is started when every dealt host is full."""
        dealt = sorted(
            (h for h in self.hosts.values() if h.conversations < per_host),
            key=lambda h: h.conversations,
        )[:width]
        while len(dealt) < min(width, count):
            dealt.append(self.new_host())
        placed: list[HostInfo] = []
        for _ in range(count):
            host = min(
                (h for h in dealt if h.conversations < per_host),
                key=lambda h: h.conversations,
                default=None,
            )
            if host is None:
                host = self.new_host()
                dealt.append(host)
            host.conversations += 1
            placed.append(host)
        return placed

    def new_host(self) -> HostInfo:
        # Unique across restarts: the name is also the host's journal directory.
        host_id = f"host-{wall_ms():x}-{next(self._seq)}"
        node = self.choose_node()
        host = HostInfo(self.start(host_id, node), host_id, node=node)
        self.hosts[host_id] = host
        return host

    def release(self, host: HostInfo, keep: int) -> None:
        """A conversation left ``host``; an empty host beyond the ``keep`` first is stopped."""
        host.conversations -= 1
        if host.conversations == 0 and len(self.hosts) > keep and host.host_id in self.hosts:
            del self.hosts[host.host_id]
            self.stop(host.address)

    def lost(self, address: Any) -> HostInfo | None:
        """The host at ``address`` exited: it is placed on no more (None if not a host)."""
        host = next((h for h in self.hosts.values() if h.address == address), None)
        if host is not None:
            del self.hosts[host.host_id]
        return host
