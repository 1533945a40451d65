"""Where a node's gateways find the engine.

The engine's root actors (the TopicMonitor and the AgentSupervisor) run on the leader and are
found there by their global names. A gateway that runs beside a member node joins that node's
own admin, where those names mean nothing; it asks the node's :class:`NodeRoots` instead (global
name :data:`NODE_ROOTS_NAME` on that admin). The heartbeat actor the leader starts on the node
tells it the roots each time it is started (again after a leader restart), so a gateway on a
member talks to the engine's actors directly, wherever they run, without going through the
leader's admin.
"""

from __future__ import annotations

from typing import Any

from thespian.actors import Actor

from actors.messages.nodes import Roots, RootsQuery
from infra.proctitle import set_actor_title

#: The global name of a node's :class:`NodeRoots` on that node's admin.
NODE_ROOTS_NAME = "cx-node-roots"

_UNKNOWN = Roots(monitor=None, agents=None)


class NodeRoots(Actor):  # type: ignore[misc]
    """Holds the engine's roots for the gateways of this node: :class:`Roots` replaces them,
    :class:`RootsQuery` is answered with them (``None`` fields until the node joined)."""

    def __init__(self) -> None:
        super().__init__()
        self.roots = _UNKNOWN

    def receiveMessage(self, message: Any, sender: Any) -> None:
        if isinstance(message, Roots):
            set_actor_title(self, None)  # cx: node-roots, in ps and top
            self.roots = message
        elif isinstance(message, RootsQuery):
            self.send(sender, self.roots)
