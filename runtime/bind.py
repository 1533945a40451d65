"""Keep every Thespian listening socket on one address: ``system.bind`` (127.0.0.1 by default).

Why: under ``multiprocTCPBase`` every admin, logger, actor and client endpoint listens on a TCP
socket and unpickles whatever arrives, without authentication; whoever reaches one of them can
run code in it (README, "Security"). Thespian 4.0.1 binds those sockets to every interface:

- ``thespian/system/transport/TCPTransport.py``, ``TCPTransport.__init__``::

      self.socket.bind(*templateAddr.addressDetails.bindArgs)
      self.socket.listen(LISTEN_DEPTH)

  (``TCPTransport.probeAdmin`` and ``UDPTransport`` bind the same ``bindArgs``);
- ``thespian/system/transport/IPBase.py``, ``IPActorAddress.__init__``::

      self.bindname = ('', sa[1]) if external else sa

  and ``bindArgs`` returns ``(self.bindname,)``: host ``''`` is INADDR_ANY, all interfaces.

``THESPIAN_BASE_IPADDR`` only changes the address an endpoint *advertises* (the one others
connect to), not the one it binds. :func:`restrict` therefore does two things:

1. it sets ``THESPIAN_BASE_IPADDR`` to the bind address, so that every endpoint advertises the
   address it really listens on (Thespian reads the variable each time it makes an address);
2. it replaces ``IPActorAddress.bindArgs`` so that a wildcard host (``''``, ``0.0.0.0``, ``::``)
   becomes that same address, read from ``THESPIAN_BASE_IPADDR`` at bind time. Explicit hosts
   are left alone.

Thespian forks the admin from the process that starts the system and every actor process from
the admin (``multiprocessing`` context ``fork``), so the patched class and the variable are
inherited by every process of the system: it is enough to call :func:`restrict` in the starting
process before ``ActorSystem(...)`` (``runtime.system.start`` does) and in every process that
joins a running system before it does (its own endpoint listens too, and must advertise an
address the system can reach).

Importing this module (``runtime.system`` does) installs the patch with loopback as the default
address, unless ``THESPIAN_BASE_IPADDR`` is already set: a process that imports the engine never
listens on every interface, even before it has read its configuration.
"""

from __future__ import annotations

import ipaddress
import os
from typing import Any

from thespian.system.transport import IPBase

from infra.config import ConfigError, Settings
from infra.logs import get_logger

#: Thespian's own variable: the address endpoints advertise; with the patch, also the one
#: they bind.
ADDRESS_VARIABLE = "THESPIAN_BASE_IPADDR"
DEFAULT_ADDRESS = "127.0.0.1"
_WILDCARDS = frozenset({"", "0.0.0.0", "::"})

log = get_logger(__name__)


def bound_address() -> str:
    """The address wildcard binds are restricted to (``THESPIAN_BASE_IPADDR``, else loopback)."""
    return os.environ.get(ADDRESS_VARIABLE) or DEFAULT_ADDRESS


_ORIGINAL_BIND_ARGS: Any = IPBase.IPActorAddress.bindArgs


def _restricted_bind_args(address_details: Any) -> tuple[Any, ...]:
    """``IPActorAddress.bindArgs`` with a wildcard host replaced by :func:`bound_address`."""
    (name,) = _ORIGINAL_BIND_ARGS.fget(address_details)
    if name[0] in _WILDCARDS:
        name = (bound_address(), *name[1:])
    return (name,)


_RESTRICTED_BIND_ARGS = property(_restricted_bind_args)


def binds_to(host: str | None, port: int, *, external: Any = False) -> tuple[Any, ...]:
    """What Thespian's TCP transport binds for an address it builds from ``host`` and ``port``
    (``external``: one other nodes reach), as patched now."""
    bind_args: tuple[Any, ...] = IPBase.TCPv4ActorAddress(host, port, external=external).bindArgs
    return bind_args


def install() -> None:
    """Install the bind patch into Thespian's address class (idempotent)."""
    IPBase.IPActorAddress.bindArgs = _RESTRICTED_BIND_ARGS


def restrict(settings: Settings) -> None:
    """Make every Thespian socket this process (and its forks) creates listen on
    ``system.bind`` only, and advertise that address.

    A non-loopback address needs ``system.allow_wide_bind`` (``load_config`` already refuses it
    otherwise) and is logged as a warning.
    """
    system = settings.system
    address = ipaddress.ip_address(system.bind)
    if address.version != 4:
        # Thespian's multiprocTCPBase transport is IPv4 only (TCPv4ActorAddress).
        raise ConfigError(
            settings.source, "system.bind", f"{system.bind}: Thespian's transport needs IPv4"
        )
    if not address.is_loopback:
        if not system.allow_wide_bind:
            raise ConfigError(
                settings.source,
                "system.bind",
                f"{system.bind} is not a loopback address and system.allow_wide_bind is false",
            )
        log.warning(
            "actor network bound to a non-loopback address: every host that can reach it can "
            "run code in the engine (pickled messages, no authentication); keep it on a trusted "
            "private network",
            bind=system.bind,
            admin_port=system.admin_port,
        )
    os.environ[ADDRESS_VARIABLE] = str(address)
    IPBase.thisSystem.add_local_addr(str(address))
    install()


# Safe by default in every process that imports the engine (see the module docstring).
os.environ.setdefault(ADDRESS_VARIABLE, DEFAULT_ADDRESS)
install()
