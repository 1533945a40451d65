"""Where a gateway reaches into Thespian: sends that cannot hang, a look at arrived messages,
a probe of the admin port, and the actor objects of an in-process system.

``ActorSystem.tell`` to an address whose process is gone does not fail: Thespian retries the
connection with a growing back-off for up to a minute (36 s measured for a killed host), and the
gateway's caller waits all that time. :func:`send` gives the transmit a deadline of its own
(Thespian's ``TransmitIntent`` has one) and, while it is not taken, checks every
``SEND_CHECK_S`` that something still accepts connections at the address: once nothing does,
the send is dropped and reported, so the caller is answered ``unavailable`` at once.

:func:`probe` tells whether the actor system's admin accepts connections at all, which is how a
gateway notices within a second that the whole engine has gone away (every process of it).
"""

from __future__ import annotations

import select
import socket
from datetime import timedelta
from typing import Any

from thespian.system.systemBase import TransmitTrack
from thespian.system.timing import ExpirationTimer, unexpired
from thespian.system.transport import TransmitIntent

from actors import thespian_timing  # noqa: F401  (Thespian's timers corrected on import)

#: How long a send may wait for the actor to take it while its process still accepts connections.
SEND_LIMIT_S = 30.0
#: How often a send not yet taken checks that the actor's process still accepts connections.
SEND_CHECK_S = 0.2
#: How long the admin port may take to accept a connection.
PROBE_TIMEOUT_S = 0.5


def send(system: Any, address: Any, message: Any, limit_s: float = SEND_LIMIT_S) -> bool:
    """Send ``message`` to ``address`` from this (non-actor) process. False when it cannot go
    through: nothing accepts connections at the address any more (its process is gone; noticed
    within ``SEND_CHECK_S``), or it was not taken within ``limit_s`` seconds. A busy actor whose
    process still accepts is waited for: it takes the message when its handler is done."""
    base = system._systemBase
    outcome = _Outcome(TransmitTrack(base.transport, base.adminAddr))
    intent = TransmitIntent(
        address,
        message,
        onSuccess=outcome.sent,
        onError=outcome.failed,
        maxPeriod=timedelta(seconds=limit_s),
    )
    base.transport.scheduleTransmit(None, intent)
    for remaining in unexpired(ExpirationTimer(timedelta(seconds=limit_s))):
        if outcome.ok is not None:
            break
        wait = min(SEND_CHECK_S, remaining.remainingSeconds())
        base._run_transport(timedelta(seconds=wait), txonly=True)
        if outcome.ok is None and _refused(address):
            intent._quitTime = ExpirationTimer(timedelta(0))  # the transport drops it now
            return False
    return bool(outcome.ok)


class _Outcome:
    """How a transmit ended (None: not yet)."""

    def __init__(self, track: Any) -> None:
        self.ok: bool | None = None
        self._track = track

    def sent(self, result: Any, intent: Any) -> None:
        self.ok = True

    def failed(self, result: Any, intent: Any) -> None:
        self.ok = False
        self._track.transmit_failed(result, intent)  # a dead target's goes to dead letters


def _refused(address: Any) -> bool:
    """Does the actor's TCP address refuse connections (its process is gone)?"""
    where = getattr(getattr(address, "addressDetails", None), "sockname", None)
    if not isinstance(where, tuple) or len(where) < 2:
        return False
    try:
        with socket.create_connection(where[:2], timeout=PROBE_TIMEOUT_S):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def arrived(system: Any) -> bool:
    """Has anything come in for this process that no ``listen`` has taken yet? (A readable
    socket of its transport; a few microseconds, where one turn of ``listen`` costs most of a
    millisecond.) True when the transport is not one this knows how to look into."""
    transport: Any = system._systemBase.transport
    try:
        if transport._incomingEnvelopes:
            return True
        fds = [transport.socket.fileno(), *filter(None, transport._incomingSockets)]
        fds += [idle.socket.fileno() for idle in getattr(transport, "_openSockets", {}).values()]
        readable, _, _ = select.select(fds, [], [], 0)
    except (AttributeError, OSError, ValueError):
        return True
    return bool(readable)


def probe(host: str, port: int, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """None if the actor system's admin accepts a connection on ``host:port``, else why not."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as error:
        return (
            f"the engine's actor system does not answer on {host}:{port}: {error.strerror or error}"
        )


def actor_object(system: Any, address: Any) -> Any:
    """The actor object at ``address`` in an in-process (``simpleSystemBase``) system."""
    return system._systemBase.actorRegistry[address.actorAddressString].instance
