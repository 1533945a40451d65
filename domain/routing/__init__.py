"""The routing book: queues, agents and offers of the Router, pure and deterministic.

No IO, clock, randomness, logging or Thespian: every method takes what it needs (``now`` in
ms) and returns the effects its actor shell must carry out. Iteration is always in insertion
order, never over sets, so one sequence of calls always gives the same effects.

Requests. ``enqueue`` queues a request and arms its TTL alarm (``now + request_ttl_ms``); a
request id the book knows (live, or among the last ``remember_ended`` ended ones) is ignored.
A request is *waiting* until it is matched, then *held* by one agent: *assigned*
(auto-accept, ``Assign(offer=False)``: the shell subscribes the agent now) or *offered*
(``Assign(offer=True)`` plus ``Report(AGENT_OFFERED)`` and an ACCEPT alarm at
``now + accept_timeout_ms``). A request ends exactly once: ``accepted`` (the routed join
succeeded; both timers stop), ``cancel`` (its conversation reached ACTIVE by a direct join,
or CLOSING) or TTL expiry (``Report(NO_AGENT_AVAILABLE)``; an outstanding offer or assignment
is withdrawn). The TTL keeps running until the request is accepted.

Back to the queue, keeping its age (its place among the waiting): ``declined`` (the agent
could not take it: if it was full, the book takes its free capacity as 0 until its next
report and gives no unit it holds back before then; if the conversation refused it, e.g.
because it is already in it wrapping up or monitoring, the request excludes that agent from
then on, as it does the agents named at ``enqueue``, such as those just removed for an
expired agent SLA),
ACCEPT expiry (``Report(RONA)`` and ``SetNotReady``; the book counts the agent NOT_READY until
its next report) and ``agent_gone`` for a request *offered* to that agent. A request
*assigned* to an agent that logs out stays held: its routed join is in flight and ends in
``accepted`` or ``declined`` (or the TTL).

Agents. ``agent_available`` is the Agent actor's authoritative report of presence, free
capacity and queues; a new agent id registers the agent and its wait starts at ``now``.
Every match takes one unit of the agent's free capacity in the book at once, so it is not
double-booked before its next report. A hold that ends without the agent taking the request
(cancel, TTL, RONA, a late accept by another agent) gives its unit back, unless a report
(or a decline) has replaced the capacity it was taken from since.

Matching runs after every change that could enable it: the oldest request (enqueue time, then
enqueue order) of the highest priority (``priorities[queue]``, default 0) goes to the READY
agent with free capacity serving its queue that has waited longest since its last assignment
(ties: registration order). A request with no eligible agent is skipped for the next one
(another queue may have agents). A request
enqueued with ``targets`` (a transfer to a named agent, a private room's advisors) goes to
one of those agents alone, whatever their queues: the one READY with free capacity that has
waited longest since its last assignment (ties: registration order). ``cancel`` and
``agent_gone`` carry no time: they match at the latest ``now`` the book has seen.

Positions (``position_interval_ms`` set). Each request waiting in a queue's common lane is
told its place there and an estimate (``QueuePosition``; :mod:`domain.routing.position`) when
it first waits and whenever either changes, at most once per interval: a change inside the
interval arms a POSITION alarm at its end, which tells what stands then.

Sticky agent (``sticky_agent_ms`` set). A request naming a ``room`` (a customer's, not a
consult) records, when accepted, its conversation and agent for that room
(:mod:`domain.routing.sticky`). A later request of the room from another conversation goes to
that agent alone if it is READY with a free slot (else to the queue at once), with a STICKY
alarm: then, if it still waits for the agent it goes to the queue, and if the agent holds
an open offer of it the offer ends in a RONA that leaves the agent READY. Any return to the
waiting (a decline, a RONA) sends it to the queue. It keeps its age throughout.

Timers. Every arm draws a new token from one counter; an alarm counts only if its token is the
current one for its key, so stopping a timer is forgetting its token (Thespian's wakeups
cannot be cancelled).
"""

from domain.enums import Presence
from domain.routing.book import RoutingBook
from domain.routing.effects import (
    ArmRoutingAlarm,
    Assign,
    QueuePosition,
    Report,
    ReportName,
    RoutingEffect,
    RoutingPolicy,
    RoutingTimerKey,
    RoutingTimerKind,
    SetNotReady,
)
from domain.routing.partition import partition_of

__all__ = [
    "ArmRoutingAlarm",
    "Assign",
    "Presence",
    "QueuePosition",
    "Report",
    "ReportName",
    "RoutingBook",
    "RoutingEffect",
    "RoutingPolicy",
    "RoutingTimerKey",
    "RoutingTimerKind",
    "SetNotReady",
    "partition_of",
]
