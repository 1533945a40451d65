"""What a gateway's caller sees: its errors and the values it returns.

Re-exported by :mod:`runtime.gateway`; kept here so that the gateway's parts (location cache,
push ordering, engine link) share them without importing the gateway itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class GatewayError(Exception):
    """A request the engine refused or could not carry out."""


class UnknownIdError(GatewayError):
    """No such conversation, channel session, room or agent."""


class IllegalTransitionError(GatewayError):
    """Not allowed in the current state (of the conversation, session or agent)."""


class BadArgumentError(GatewayError):
    """A value out of range or of the wrong type."""


class UnavailableError(GatewayError):
    """The engine cannot do it now (e.g. the archive cannot be written, or the engine is not
    running): retry later."""


ERRORS: dict[str, type[GatewayError]] = {
    "unknown_id": UnknownIdError,
    "illegal_transition": IllegalTransitionError,
    "bad_argument": BadArgumentError,
    "unavailable": UnavailableError,
}


@dataclass(frozen=True, slots=True)
class SessionRef:
    conversation_id: str
    channel_session_id: str
    room_id: str


@dataclass(frozen=True, slots=True)
class PushedEvent:
    """An outbound event pushed to this gateway for one of its subscriptions.

    ``event`` is an event dict as :meth:`Gateway.events` returns them; its ``seq`` is what a
    reconnecting gateway passes as ``after_seq`` to resume without a gap."""

    subscription: str
    conversation_id: str
    event: dict[str, Any]
