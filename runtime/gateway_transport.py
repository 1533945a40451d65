"""How a gateway's messages reach the engine and come back: one interface, two transports.

- :class:`EmbeddedTransport`: the whole engine in this process (Thespian's
  ``simpleSystemBase``). A send runs the actors until the system is quiescent, so every answer
  has arrived when it returns; nothing is ever waited for.
- :class:`ConnectedTransport`: a long-running system in other processes. A send never hangs on
  a dead address (:func:`runtime.gateway_link.send`), a host that died is remembered and its
  address refused without a send, and what has arrived is picked up without blocking
  (:func:`runtime.gateway_link.arrived`).

Both raise :class:`Unreachable` when nothing accepts connections at an address any more.

A pipeline's batches (``send(..., batch=True)``) go with Thespian's own send: a host the
gateway was told is dead is refused at once, but one that dies while its batch is being handed
over is waited on until Thespian gives up. The checks that make a single call give up within
a fraction of a second (each a connection to the host's port) cost a stream of large batches to
a busy host about a third of its throughput (two interleaved pairs of `python -m bench --quick
--only throughput`: 5,500 against 7,800 and 8,500 batched messages/s).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol

from thespian.actors import ActorSystemException

from domain.errors import CxError, ErrorKind
from runtime import gateway_link

#: One look at the sockets for messages that have arrived (connected gateways).
PICKUP_S = 0.0002
#: At most this many turns at once (a steady stream of pushed events is taken by ``pushed``).
PICKUP_TURNS = 64
#: Hosts that died lately (their addresses are refused without a send).
DEAD_HOSTS_KEPT = 64


class Unreachable(CxError):
    """Nothing accepts connections at the address any more (its process is gone)."""

    kind = ErrorKind.UNAVAILABLE


class Transport(Protocol):
    """What the rest of the gateway needs from the actor system."""

    #: True: the engine runs in this process and every send returns once it is quiescent.
    embedded: bool
    #: The Thespian ``ActorSystem`` (its public ``tell``, ``ask`` and ``listen``).
    system: Any

    def send(self, address: Any, message: Any, *, batch: bool = False) -> None:
        """Hand ``message`` to the actor at ``address``; Unreachable if it cannot go through
        (``batch``: a pipeline's, which may take long to be taken by a busy host)."""

    def arrived(self) -> list[Any]:
        """The messages that have come in for this gateway, without waiting for more."""

    def listen(self, timeout: float) -> Any | None:
        """The next message, waiting up to ``timeout`` seconds (None: none came)."""

    def host_died(self, address: Any) -> None:
        """The host at ``address`` died: refuse sends to it from now on."""

    def problem(self, bind: str, port: int) -> str | None:
        """Why the engine's admin at ``bind:port`` does not accept connections (None: it does)."""

    def actor(self, address: Any) -> Any:
        """The actor object at ``address`` (embedded only)."""

    def close(self) -> None: ...


class EmbeddedTransport:
    embedded = True

    def __init__(self, system: Any) -> None:
        self.system = system

    def send(self, address: Any, message: Any, *, batch: bool = False) -> None:
        self.system.tell(address, message)  # runs until quiescent

    def arrived(self) -> list[Any]:
        found = []
        while (message := self.system.listen(0)) is not None:
            found.append(message)
        return found

    def listen(self, timeout: float) -> Any | None:
        return self.system.listen(0)  # everything due has arrived already

    def host_died(self, address: Any) -> None:
        return None  # an embedded host's address is gone with it: nothing is sent there

    def problem(self, bind: str, port: int) -> str | None:
        return None

    def actor(self, address: Any) -> Any:
        return gateway_link.actor_object(self.system, address)

    def close(self) -> None:
        self.system.shutdown()


class ConnectedTransport:
    embedded = False

    def __init__(self, system: Any) -> None:
        self.system = system
        self._dead: deque[Any] = deque(maxlen=DEAD_HOSTS_KEPT)

    def send(self, address: Any, message: Any, *, batch: bool = False) -> None:
        if address in self._dead:
            raise Unreachable(f"{address} is a host that died")
        if batch:  # a pipeline's: Thespian's own send (see the module docstring)
            try:
                self.system.tell(address, message)
            except ActorSystemException as error:
                raise Unreachable(f"{address} did not take the batch: {error}") from None
            return
        if not gateway_link.send(self.system, address, message):
            raise Unreachable(f"nothing answers at {address}")

    def arrived(self) -> list[Any]:
        """Thespian's ``listen(0)`` returns before it looks at any socket, and a message on a new
        connection takes a few turns of the transport (accept, read): while a socket of this
        process is readable, turns of ``PICKUP_S``."""
        found = []
        for _ in range(PICKUP_TURNS):
            if not gateway_link.arrived(self.system):
                break
            message = self.system.listen(PICKUP_S)
            if message is not None:
                found.append(message)
        return found

    def listen(self, timeout: float) -> Any | None:
        return self.system.listen(timeout)

    def host_died(self, address: Any) -> None:
        self._dead.append(address)

    def problem(self, bind: str, port: int) -> str | None:
        return gateway_link.probe(bind, port)

    def actor(self, address: Any) -> Any:
        raise TypeError("a connected gateway's actors run in other processes")

    def close(self) -> None:
        return None  # the system is the daemon's: it keeps running
