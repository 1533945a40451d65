"""Placement: which conversation host a conversation goes to, and when hosts start and stop.

The TopicMonitor keeps at least ``placement.hosts`` conversation hosts (its children). A new
or restored conversation goes to the first host with fewer than ``placement.per_host``
conversations; when every host is full a new one is started, and a host left empty beyond the
minimum is stopped. :class:`Placement` keeps the hosts and their counts; starting and stopping
an actor is the monitor's (the callables it is given).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from infra.timefmt import wall_ms


@dataclass(slots=True)
class HostInfo:
    address: Any
    host_id: str
    conversations: int = 0


class Placement:
    def __init__(self, start: Callable[[str], Any], stop: Callable[[Any], None]) -> None:
        """``start(host_id)`` starts a conversation host and returns its address; ``stop``
        stops one."""
        # By host id: an address's text can change once Thespian resolves it; compare with ==.
        self.hosts: dict[str, HostInfo] = {}
        self.start, self.stop = start, stop
        self._seq = itertools.count(1)

    def __iter__(self) -> Iterator[HostInfo]:
        return iter(list(self.hosts.values()))

    def addresses(self) -> list[Any]:
        return [h.address for h in self.hosts.values()]

    def place(self, per_host: int) -> HostInfo:
        """The host a conversation goes to (counted there)."""
        host = next((h for h in self.hosts.values() if h.conversations < per_host), None)
        if host is None:
            host = self.new_host()
        host.conversations += 1
        return host

    def new_host(self) -> HostInfo:
        # Unique across restarts: the name is also the host's journal directory.
        host_id = f"host-{wall_ms():x}-{next(self._seq)}"
        host = HostInfo(self.start(host_id), host_id)
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
