"""What a run produced, read back from the event logs: the canonical event log and the summary.

Every figure of the summary is computed from the conversations' event logs (the archive for
closed conversations, the live engine for the others), so it can be checked against the
archive. Definitions:

* **waiting time**: from AGENT_REQUESTED to the AGENT_SUBSCRIBED that answered it (requests
  that ended otherwise, by NO_AGENT_AVAILABLE or the customer leaving, are counted apart);
* **handling time**: from the first AGENT_SUBSCRIBED to the last agent's AGENT_UNSUBSCRIBED,
  for conversations that had an agent and no agent left subscribed at the end;
* **closed by**: END_CONVERSATION's ``by`` if there is one, else the ``end_reason`` of the last
  CHANNEL_SESSION_ENDED that was not FORCE_CLOSED (customer, inactivity, agent, network);
* **abandoned**: the customer's last session ended (CUSTOMER or NETWORK) while an agent request
  was pending;
* **re-routed**: an AGENT_REQUESTED caused by an AGENT_SLA_EXPIRED (same trigger, same time);
* **transfers** and **consults**: CONVERSATION_TRANSFERRED and CONSULT_REQUESTED events; a
  transfer's AGENT_REQUESTED is an agent request of the queue transferred to, a consult's (it
  follows CONSULT_REQUESTED in the same trigger) is no agent request of the customer's;
* **occupancy**: time agents were subscribed to at least one conversation / time logged in;
  **utilisation**: agent-subscribed time (each conversation counted) / (time logged in x
  max_conversations).

The canonical event log is one JSON object a line (``sort_keys``, no spaces, ASCII), each an
event as ``gw.events`` returns it plus its ``conversation_id``, ordered by the conversations'
creation order, then ``seq``. Its sha256 is in the summary; the msgpack form (``--events
x.msgpack``) holds the same objects, keys sorted.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import msgpack

from runtime.simulation.driver_base import timestamp_ms

__all__ = [
    "AgentRequest",
    "ConversationOutcome",
    "EventLog",
    "analyse",
    "percentile",
    "summarise",
]

_PRESENT = ("PRIMARY", "ASSISTANT")
_CLOSED_BY = {
    "CUSTOMER": "customer",
    "INACTIVITY": "inactivity",
    "AGENT": "agent",
    "NETWORK": "network",
}


@dataclass(slots=True)
class AgentRequest:
    """One AGENT_REQUESTED and how it ended (times in ms since the epoch).

    ``outcome``: ``answered`` (an agent subscribed), ``abandoned`` (the customer left while it
    was pending), ``no_agent`` (NO_AGENT_AVAILABLE) or None (still pending at the end, or the
    conversation ended otherwise). ``handled_ms``: from the answer to the answering agent's
    AGENT_UNSUBSCRIBED (wrap-up included), None while it is subscribed.
    """

    queue: str
    at_ms: int
    rerouted: bool
    outcome: str | None = None
    answered_ms: int | None = None
    handled_ms: int | None = None


@dataclass(slots=True)
class ConversationOutcome:
    """One conversation as its event log tells it (times in ms since the epoch)."""

    id: str
    ordinal: int
    state: str
    created_ms: int
    ended_ms: int | None
    events: int = 0
    closed_by: str | None = None
    with_agent: bool = False
    abandoned: bool = False
    agent_sla_expired: int = 0
    customer_sla_expired: int = 0
    no_agent_available: int = 0
    rona: int = 0
    agent_requests: int = 0
    rerouted: int = 0
    transfers: int = 0
    consults: int = 0
    waits_ms: list[int] = field(default_factory=list)
    handling_ms: int | None = None
    stints: list[tuple[str, int, int | None]] = field(default_factory=list)
    requests: list[AgentRequest] = field(default_factory=list)
    sla_breaches: list[tuple[str, int]] = field(default_factory=list)  # (queue, at ms)


def analyse(
    conversation_id: str, ordinal: int, events: Iterable[Mapping[str, Any]]
) -> ConversationOutcome:
    """The outcome of one conversation from its events (dicts as ``gw.events`` returns them).

    The state is the last TOPIC_STATE_CHANGED's ``to``, created and ended the times of the
    first event and of the change to CLOSING: the log alone tells it all.
    """
    out = ConversationOutcome(conversation_id, ordinal, "CREATED", 0, None)
    live_sessions = 0
    pending_since: int | None = None
    last_sla_expiry: int | None = None
    last_end_reason: str | None = None
    ended_by: str | None = None
    open_stints: dict[str, int] = {}
    first_agent: int | None = None
    last_agent_left: int | None = None
    pending: AgentRequest | None = None
    answering: dict[str, AgentRequest] = {}
    queue = ""
    consult_at: int | None = None  # the time of a CONSULT_REQUESTED not yet followed
    for event in events:
        out.events += 1
        name = event["name"]
        if out.events == 1:
            out.created_ms = timestamp_ms(event["timestamp"])
        if name == "TOPIC_STATE_CHANGED":
            out.state = str(event["data"]["to"])
            if out.state == "CLOSING":
                out.ended_ms = timestamp_ms(event["timestamp"])
        elif name == "CHANNEL_SESSION_STARTED":
            live_sessions += 1
        elif name == "CHANNEL_SESSION_ENDED":
            live_sessions -= 1
            reason = event["data"].get("end_reason")
            if reason != "FORCE_CLOSED":
                last_end_reason = reason
                if (
                    live_sessions == 0
                    and pending_since is not None
                    and reason
                    in (
                        "CUSTOMER",
                        "NETWORK",
                    )
                ):
                    out.abandoned = True
                    pending_since = None
                    if pending is not None:
                        pending.outcome, pending = "abandoned", None
        elif name == "CONVERSATION_TRANSFERRED":
            out.transfers += 1
        elif name == "CONSULT_REQUESTED":
            out.consults += 1
            consult_at = timestamp_ms(event["timestamp"])
        elif name == "AGENT_REQUESTED" and consult_at == timestamp_ms(event["timestamp"]):
            consult_at = None  # an agent's consult: the customer is not waiting
        elif name == "AGENT_REQUESTED":
            at = timestamp_ms(event["timestamp"])
            out.agent_requests += 1
            if last_sla_expiry == at:
                out.rerouted += 1
            pending_since = at
            queue = str(event["data"].get("queue", ""))
            pending = AgentRequest(queue, at, last_sla_expiry == at)
            out.requests.append(pending)
        elif name == "AGENT_SUBSCRIBED":
            role = event["data"].get("role")
            if role in _PRESENT:
                at = timestamp_ms(event["timestamp"])
                out.with_agent = True
                if pending_since is not None:
                    out.waits_ms.append(at - pending_since)
                    pending_since = None
                if pending is not None:
                    pending.outcome, pending.answered_ms = "answered", at
                    answering[str(event["data"]["agent_id"])] = pending
                    pending = None
                if first_agent is None:
                    first_agent = at
                open_stints[str(event["data"]["agent_id"])] = at
        elif name == "AGENT_UNSUBSCRIBED":
            agent_id = str(event["data"]["agent_id"])
            at = timestamp_ms(event["timestamp"])
            started = open_stints.pop(agent_id, None)
            if started is not None:
                out.stints.append((agent_id, started, at))
                last_agent_left = at
            answered = answering.pop(agent_id, None)
            if answered is not None and answered.answered_ms is not None:
                answered.handled_ms = at - answered.answered_ms
        elif name == "NO_AGENT_AVAILABLE":
            out.no_agent_available += 1
            pending_since = None
            if pending is not None:
                pending.outcome, pending = "no_agent", None
        elif name == "AGENT_SLA_EXPIRED":
            out.agent_sla_expired += 1
            last_sla_expiry = timestamp_ms(event["timestamp"])
            out.sla_breaches.append((queue, last_sla_expiry))
        elif name == "CUSTOMER_SLA_EXPIRED":
            out.customer_sla_expired += 1
        elif name == "RONA":
            out.rona += 1
        elif name == "END_CONVERSATION":
            ended_by = str(event["data"].get("by", "OPERATOR")).lower()
    for agent_id, started in open_stints.items():
        out.stints.append((agent_id, started, None))
    if out.state in ("CLOSING", "CLOSED"):
        if ended_by is not None:
            out.closed_by = ended_by
        elif last_end_reason is not None:
            out.closed_by = _CLOSED_BY.get(last_end_reason, last_end_reason.lower())
    if first_agent is not None and not open_stints and last_agent_left is not None:
        out.handling_ms = last_agent_left - first_agent
    return out


#: One encoder for every line (json.dumps with options would build one per call).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


class EventLog:
    """The canonical event log: hashes every line, and writes it if asked (JSON lines or
    msgpack)."""

    def __init__(self, path: str | os.PathLike[str] | None = None, fmt: str | None = None) -> None:
        self._hash = hashlib.sha256()
        self.count = 0
        self.path = None if path is None else Path(path)
        if fmt is None and self.path is not None:
            fmt = "msgpack" if self.path.suffix in (".msgpack", ".mpk", ".msgp") else "jsonl"
        self.format = fmt or "jsonl"
        if self.format not in ("jsonl", "msgpack"):
            raise ValueError(f"events format must be jsonl or msgpack, not {self.format!r}")
        self._file: IO[bytes] | None = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("wb")

    def add(self, conversation_id: str, event: Mapping[str, Any]) -> None:
        record = {"conversation_id": conversation_id, **event}
        line = (_CANONICAL.encode(record) + "\n").encode("ascii")
        self._hash.update(line)
        self.count += 1
        if self._file is not None:
            if self.format == "jsonl":
                self._file.write(line)
            else:
                self._file.write(msgpack.packb(_sorted(record), use_bin_type=True))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


def _sorted(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list | tuple):
        return [_sorted(item) for item in value]
    return value


def percentile(sorted_values: list[int], percent: int) -> int:
    """Nearest-rank percentile of already sorted integers (exact integer arithmetic)."""
    if not sorted_values:
        return 0
    rank = max(1, -(-percent * len(sorted_values) // 100))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def _seconds(ms: float) -> float:
    return round(ms / 1000, 3)


def _distribution(values_ms: list[int]) -> dict[str, Any]:
    values = sorted(values_ms)
    if not values:
        return {"count": 0, "mean": 0.0, "p50": 0.0, "p95": 0.0, "max": 0.0}
    return {
        "count": len(values),
        "mean": _seconds(sum(values) / len(values)),
        "p50": _seconds(percentile(values, 50)),
        "p95": _seconds(percentile(values, 95)),
        "max": _seconds(values[-1]),
    }


def _merged_busy(spans: list[tuple[int, int]]) -> int:
    total = 0
    current_start: int | None = None
    current_end = 0
    for start, end in sorted(spans):
        if current_start is None or start > current_end:
            if current_start is not None:
                total += current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_start is not None:
        total += current_end - current_start
    return total


def summarise(
    outcomes: list[ConversationOutcome],
    *,
    logged_in: Mapping[str, tuple[int, int]],
    max_conversations: Mapping[str, int],
    end_ms: int,
) -> dict[str, Any]:
    """The deterministic figures of a run (the caller adds scenario and performance data)."""
    by_state: dict[str, int] = {}
    closed_by: dict[str, int] = {}
    for outcome in outcomes:
        by_state[outcome.state] = by_state.get(outcome.state, 0) + 1
        if outcome.closed_by is not None:
            closed_by[outcome.closed_by] = closed_by.get(outcome.closed_by, 0) + 1
    per_agent: dict[str, list[tuple[int, int]]] = {}
    subscribed_ms = 0
    for outcome in outcomes:
        for agent_id, start, end in outcome.stints:
            stop = end_ms if end is None else end
            per_agent.setdefault(agent_id, []).append((start, stop))
            subscribed_ms += stop - start
    busy_ms = sum(_merged_busy(spans) for spans in per_agent.values())
    logged_ms = sum(end - start for start, end in logged_in.values())
    capacity_ms = sum(
        (end - start) * max_conversations.get(agent_id, 1)
        for agent_id, (start, end) in logged_in.items()
    )
    waits = [w for outcome in outcomes for w in outcome.waits_ms]
    handling = [o.handling_ms for o in outcomes if o.handling_ms is not None]
    return {
        "conversations": {
            "total": len(outcomes),
            "by_state": dict(sorted(by_state.items())),
            "closed_by": dict(sorted(closed_by.items())),
            "with_agent": sum(1 for o in outcomes if o.with_agent),
            "without_agent": sum(1 for o in outcomes if not o.with_agent),
        },
        "agent_requests": sum(o.agent_requests for o in outcomes),
        "agent_sla_breaches": sum(o.agent_sla_expired for o in outcomes),
        "rerouted": sum(o.rerouted for o in outcomes),
        "customer_inactivity_expiries": sum(o.customer_sla_expired for o in outcomes),
        "abandoned": sum(1 for o in outcomes if o.abandoned),
        "no_agent_available": sum(o.no_agent_available for o in outcomes),
        "rona": sum(o.rona for o in outcomes),
        "transfers": sum(o.transfers for o in outcomes),
        "consults": sum(o.consults for o in outcomes),
        "waiting_seconds": _distribution(waits),
        "handling_seconds": _distribution(handling),
        "agents": {
            "logged_in": len(logged_in),
            "occupancy": round(busy_ms / logged_ms, 4) if logged_ms else 0.0,
            "utilisation": round(subscribed_ms / capacity_ms, 4) if capacity_ms else 0.0,
        },
        "events": sum(o.events for o in outcomes),
    }
