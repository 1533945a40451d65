"""What a gateway's caller sees: its errors (defined in :mod:`domain.errors`) and the values it
returns.

Re-exported by :mod:`runtime.gateway`; kept here so that the gateway's parts (location cache,
push ordering, engine link) share them without importing the gateway itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domain.errors import (
    BadArgumentError,
    GatewayError,
    IllegalTransitionError,
    UnavailableError,
    UnknownIdError,
)

__all__ = [
    "BadArgumentError",
    "GatewayError",
    "IllegalTransitionError",
    "PushedEvent",
    "SessionRef",
    "UnavailableError",
    "UnknownIdError",
]


@dataclass(frozen=True, slots=True)
class SessionRef:
    conversation_id: str
    channel_session_id: str
    room_id: str


@dataclass(frozen=True, slots=True)
class PushedEvent:
    """An outbound event pushed to this gateway for one of its subscriptions.

    ``event`` is an event dict as :meth:`Gateway.events` returns them; its ``seq`` is what a
    reconnecting gateway passes as ``after_seq`` to resume without a gap. ``final``: the
    conversation is CLOSED and this is the last event the subscription gets of it (a session
    subscription ends with it)."""

    subscription: str
    conversation_id: str
    event: dict[str, Any]
    final: bool = False
