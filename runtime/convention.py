"""What a node of a multi-node actor system tells Thespian when it starts: its capabilities
(its name, what it offers, the leader to join) and the convention timing Thespian reads from
the environment.

Capabilities, read by ``actorSystemCapabilityCheck`` of the actors placed on nodes:

- ``cx.node``: the node's name (``system.node``; the hostname when that is null);
- ``cx.hosts``: whether conversation hosts may be placed here (``system.conversation_hosts``);
- ``cx.weight``: its share of conversation hosts (``system.weight``);
- ``Convention Address.IPv4``: the leader's ``host:port`` (``system.convention_address``), only
  on a member: a node without it is the leader (or alone).

Timing (:data:`CONVENTION_ENVIRONMENT`): Thespian's defaults notice a vanished member only after
three missed registrations of 7 minutes each, and an actor that keeps sending to a member that
stops answering freezes once 20 sends are pending. A member re-registers every 5 s instead, and
a send still pending after 5 s is dropped. A value already in the environment is kept.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, MutableMapping
from typing import Final

from infra.config import Settings

NODE_CAPABILITY: Final = "cx.node"
HOSTS_CAPABILITY: Final = "cx.hosts"
WEIGHT_CAPABILITY: Final = "cx.weight"
CONVENTION_CAPABILITY: Final = "Convention Address.IPv4"

#: Thespian's convention timing ("M:S"), set before the actor system starts.
CONVENTION_ENVIRONMENT: Final[Mapping[str, str]] = {
    "CONVENTION_REREGISTRATION_PERIOD": "0:05",
    "THESPIAN_TRANSMIT_TIMEOUT_PERIOD": "0:05",
}


def node_name(settings: Settings) -> str:
    """``system.node``, or this machine's hostname when it is null."""
    return settings.system.node or socket.gethostname()


def capabilities(settings: Settings) -> dict[str, object]:
    """The capabilities this node's actor system starts with (admin port included)."""
    caps: dict[str, object] = {
        "Admin Port": settings.system.admin_port,
        NODE_CAPABILITY: node_name(settings),
        HOSTS_CAPABILITY: settings.system.conversation_hosts,
        WEIGHT_CAPABILITY: settings.system.weight,
    }
    if settings.system.convention_address is not None:
        caps[CONVENTION_CAPABILITY] = settings.system.convention_address
    return caps


def set_convention_environment(environ: MutableMapping[str, str] = os.environ) -> None:
    """Put :data:`CONVENTION_ENVIRONMENT` into ``environ`` where it holds no value of its own."""
    for name, value in CONVENTION_ENVIRONMENT.items():
        environ.setdefault(name, value)
