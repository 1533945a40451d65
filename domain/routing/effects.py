"""The routing book's vocabulary: its settings, timer keys, and the effects it returns.

Effects are what the Router shell carries out: :class:`Assign` (subscribe or offer),
:class:`Report` (publish an event on the conversation), :class:`QueuePosition` (tell the
conversation its place and estimated wait), :class:`SetNotReady` (after a RONA)
and :class:`ArmRoutingAlarm` (call back the book's ``alarm`` at a time, with a token).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class RoutingTimerKind(StrEnum):
    ACCEPT = "ACCEPT"  # an offer not accepted in time: RONA
    TTL = "TTL"  # a request not accepted in time: NO_AGENT_AVAILABLE
    POSITION = "POSITION"  # the next moment a changed queue position may be told
    STICKY = "STICKY"  # a request kept for its room's last agent goes to the queue


class ReportName(StrEnum):
    AGENT_OFFERED = "AGENT_OFFERED"
    RONA = "RONA"
    NO_AGENT_AVAILABLE = "NO_AGENT_AVAILABLE"


@dataclass(frozen=True, slots=True, order=True)
class RoutingTimerKey:
    kind: RoutingTimerKind
    request_id: str


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    auto_accept: bool = True
    accept_timeout_ms: int = 30_000
    request_ttl_ms: int = 120_000
    priorities: Mapping[str, int] = field(default_factory=dict)  # queue -> priority, default 0
    remember_ended: int = 10_000  # ended request ids kept so that a late duplicate is ignored
    service_level_ms: int = 20_000  # a request answered within this waited "within service level"
    position_interval_ms: int | None = None  # QUEUE_POSITION at most this often; None: never
    sticky_agent_ms: int | None = None  # how long a room's last agent is waited for; None: not


@dataclass(frozen=True, slots=True)
class Assign:
    """``offer=False``: subscribe the agent now (auto-accept); ``True``: offer it to the agent,
    who must accept within the accept timeout."""

    request_id: str
    conversation_id: str
    agent_id: str
    queue: str
    offer: bool


@dataclass(frozen=True, slots=True)
class Report:
    """Publish ``name`` (AGENT_OFFERED, RONA, NO_AGENT_AVAILABLE) on the conversation."""

    conversation_id: str
    request_id: str
    name: ReportName
    queue: str
    agent_id: str | None


@dataclass(frozen=True, slots=True)
class QueuePosition:
    """Tell the conversation where its waiting request stands: its ``position`` (1: next) in
    its queue and the estimated wait in seconds (None: no estimate yet)."""

    conversation_id: str
    request_id: str
    queue: str
    position: int
    estimated_wait_seconds: int | None


@dataclass(frozen=True, slots=True)
class SetNotReady:
    """After a RONA: tell the agent's Agent actor to make it NOT_READY (the Router posts this
    effect to the Agent as it is)."""

    agent_id: str


@dataclass(frozen=True, slots=True)
class ArmRoutingAlarm:
    """Call ``RoutingBook.alarm(key, token, now)`` at ``at`` (ms) or later."""

    key: RoutingTimerKey
    token: int
    at: int


RoutingEffect = Assign | Report | QueuePosition | SetNotReady | ArmRoutingAlarm
