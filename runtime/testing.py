"""What tests and benchmarks may reach for beyond the application API of a :class:`Gateway`.

An application talks to the engine through :class:`runtime.gateway.Gateway` only. Tests and
benchmarks also need to look behind it: where a conversation lives, which process that is, to
kill it, to hand the engine a raw message, to see what the gateway keeps. This module is the
one supported way to do that; tests and benchmarks never read a private attribute of the
gateway, of an actor or of Thespian (``tests/test_private_access.py`` enforces it).

Places and processes
    :func:`host_of` (the address of the Host actor of a live conversation, ``None`` once it
    closed), :func:`hosts_of` (of many, in one batch of lookups), :func:`forget_host` (drop
    it from the gateway's location cache so the next call looks it up again),
    :func:`conversation_of` (a channel session's conversation), :func:`addresses` (the
    TopicMonitor and the AgentSupervisor), :func:`directory` (the engine's actors by role:
    ``router``, ``bot``), :func:`pid_of` (the process an actor runs in, by a ``Ping``),
    :func:`kill` (SIGKILL that process), :func:`actor` (the actor object itself; embedded
    gateways only).

Raw messages
    :func:`system` (the Thespian ``ActorSystem``, for its public ``tell``/``ask``/``listen``),
    :func:`address` (the gateway's own address, for a ``ReplyTo``), :func:`ask` (a request an
    actor answers itself, e.g. ``Directory``), :func:`call` (one ``Deliver`` to an actor and
    its answer, refusals raised as for any gateway call), :func:`answer` (embedded: the answer
    to a call id sent by hand, among what has arrived), :func:`take_in` (hand the gateway a
    message as if the transport had brought it), :func:`arrivals_through` (while in the
    block, every message the transport brings passes through a function first: to lose or
    change one as a faulty transport would).

What the gateway keeps
    :func:`location_cache` (its :class:`~runtime.gateway_cache.LocationCache`),
    :func:`push_order` (its :class:`~runtime.gateway_order.PushOrder`), :func:`alarms` (the
    earliest alarm of each timer owner, under a virtual clock).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from actors.messages import Directory, Location, Ping
from runtime.gateway import Gateway
from runtime.gateway_cache import LocationCache
from runtime.gateway_order import PushOrder
from runtime.system import Addresses

__all__ = [
    "actor",
    "address",
    "addresses",
    "alarms",
    "answer",
    "arrivals_through",
    "ask",
    "call",
    "conversation_of",
    "directory",
    "forget_host",
    "host_of",
    "hosts_of",
    "kill",
    "location_cache",
    "pid_of",
    "push_order",
    "system",
    "take_in",
]


def system(gw: Gateway) -> Any:
    """The gateway's Thespian ``ActorSystem`` (use its public ``tell``, ``ask``, ``listen``)."""
    return gw.engine.system


def address(gw: Gateway) -> Any:
    """The gateway's own address: where answers (``ReplyTo``) and pushed events go."""
    return gw.engine.me


def addresses(gw: Gateway) -> Addresses:
    """The engine's TopicMonitor and AgentSupervisor."""
    return gw.engine.addresses


def directory(gw: Gateway) -> dict[str, Any]:
    """The engine's actors by role, as the TopicMonitor knows them."""
    found: dict[str, Any] = ask(gw, addresses(gw).monitor, Directory(gw.engine.call_id()))
    return found


def ask(gw: Gateway, to: Any, message: Any) -> Any:
    """Send ``message`` (one with a ``call_id`` that the actor answers itself) and return the
    answer's value; whatever else arrives meanwhile is kept by the gateway as usual."""
    return gw.engine.ask_direct(to, message)


def call(gw: Gateway, to: Any, payload: Any, *, entity: str = "") -> Any:
    """One ``Deliver`` of ``payload`` to ``entity`` at the actor ``to``; its answer's value.
    A refusal raises the gateway's error for it."""
    return gw.engine.call(to, entity, payload)


def answer(gw: Gateway, call_id: str) -> Any:
    """Embedded: the ``Reply`` or ``Failure`` to ``call_id`` (sent by hand with the gateway's
    :func:`address`), among the messages that have arrived or been kept."""
    return gw.engine.collect(call_id)


def take_in(gw: Gateway, message: Any) -> None:
    """Hand the gateway ``message`` as if its transport had just brought it."""
    gw.engine.intake(message)


@contextmanager
def arrivals_through(gw: Gateway, change: Callable[[Any], Any | None]) -> Iterator[None]:
    """While in the block the gateway takes ``change(message)`` instead of each message that
    arrives (``None``: the message is lost)."""
    answers = gw.engine.answers
    take = answers.take

    def taken(message: Any) -> None:
        changed = change(message)
        if changed is not None:
            take(changed)

    answers.take = taken  # type: ignore[method-assign]
    try:
        yield
    finally:
        del answers.take


def host_of(gw: Gateway, conversation_id: str) -> Any | None:
    """The address of the Host of a live conversation (``None``: it is closed)."""
    location: Location = gw.engine.locate(conversation_id)
    return location.host


def hosts_of(gw: Gateway, conversation_ids: Iterable[str]) -> dict[str, Any]:
    """The host of each conversation (None: closed), looked up in one batch."""
    return gw.pipeline().prefetch(conversation_ids=conversation_ids)


def forget_host(gw: Gateway, conversation_id: str) -> None:
    """Drop where the conversation lives from the gateway's cache: the next call looks it up."""
    gw.engine.forget(conversation_id)


def conversation_of(gw: Gateway, channel_session_id: str) -> str:
    """The conversation a channel session belongs to."""
    return gw.engine.conversation_of(channel_session_id)


def pid_of(gw: Gateway, to: Any) -> int:
    """The pid of the process the actor at ``to`` runs in (asked through the gateway: what
    else arrives meanwhile is kept for it)."""
    found: dict[str, Any] = ask(gw, to, Ping(gw.engine.call_id()))
    return int(found["pid"])


def kill(gw: Gateway, to: Any) -> int:
    """SIGKILL the process the actor at ``to`` runs in (connected gateways); returns its pid."""
    pid = pid_of(gw, to)
    os.kill(pid, signal.SIGKILL)
    return pid


def actor(gw: Gateway, to: Any) -> Any:
    """The actor object at ``to`` (embedded gateways only: every actor is in this process)."""
    return gw.engine.actor(to)


def location_cache(gw: Gateway) -> LocationCache:
    """Where the gateway keeps the hosts of conversations and the conversations of sessions."""
    return gw.engine.locations


def push_order(gw: Gateway) -> PushOrder:
    """How the gateway puts pushed events back in order (``gap_wait_s`` may be set)."""
    return gw.engine.order


def alarms(gw: Gateway) -> dict[str, int]:
    """Under a virtual clock: the earliest alarm (ms) of each timer owner, by its address."""
    return gw.engine.alarms()
