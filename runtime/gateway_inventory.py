"""What the engine holds now, asked of every actor: the figures behind the metrics
(:meth:`Inventory.metrics`) and the inventory of live conversations, agents, queues and a
customer's rooms: the part of :class:`runtime.gateway.Gateway`'s public API that surveys the
whole engine rather than one conversation.

The TopicMonitor names the engine's actors (``Roster``: the Routers, the conversation hosts and
the Archivists); each is asked directly and the answers are added up here.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import fields
from typing import Any

from actors.figures import WriteTally
from actors.messages import ArchivedQuery
from actors.messages.survey import (
    ConversationFilter,
    ListAgents,
    ListConversations,
    Roster,
    Survey,
)
from domain.enums import State
from domain.events import EventName
from domain.limits import MAX_ID
from domain.routing.tally import OUTCOMES
from runtime.gateway_args import text as _text
from runtime.gateway_core import EngineLink
from runtime.gateway_transport import Unreachable
from runtime.gateway_types import BadArgumentError, UnavailableError, UnknownIdError

__all__ = ["MAX_LISTED", "WRITE_FIELDS", "Inventory"]

#: The most conversations one ``conversations()`` call lists (from each conversation host).
MAX_LISTED = 10_000
#: What is counted of each kind of storage write.
WRITE_FIELDS = tuple(field.name for field in fields(WriteTally))
_STATES = frozenset(state.value for state in State)


class Inventory:
    engine: EngineLink

    def status(self) -> dict[str, dict[str, int]]:
        raise NotImplementedError

    # ------------------------------------------------------------------ metrics

    def metrics(self) -> dict[str, Any]:
        """Every figure of the engine's metrics, from one ``status()`` and one survey of each
        actor (the TopicMonitor, the AgentSupervisor, every Router, conversation host and
        Archivist): docs/OPERATIONS.md ("Metrics") says what each means."""
        status = self.status()
        actors = self._actors()
        monitor = self._survey(self.engine.addresses.monitor)
        self._survey(self.engine.addresses.agents)  # it counts nothing, but must answer
        routers = [self._survey(a) for a in actors["routers"]]
        hosts = [self._survey(a) for a in actors["hosts"]]
        archivists = [self._survey(a) for a in actors["archivists"]]
        queues: dict[str, dict[str, Any]] = {}
        for figures in routers:  # each Router owns its queues
            queues.update(figures.get("queues", {}))
        for figures in queues.values():
            answered = figures["answered"]
            figures["service_level"] = figures["answered_within"] / answered if answered else None
        events: Counter[str] = Counter()
        for figures in hosts:
            events.update(figures.get("events", {}))
        return {
            "conversations": status["conversations"],
            "agents": status["agents"],
            "queues": dict(sorted(queues.items())),
            "routing": {
                outcome: sum(q[outcome] for q in queues.values())
                for outcome in OUTCOMES
            },
            "events": {"total": sum(events.values()), "by_name": dict(sorted(events.items()))},
            "sla_breaches": events[EventName.AGENT_SLA_EXPIRED],
            "inactivity_expiries": events[EventName.CUSTOMER_SLA_EXPIRED],
            "journal": {
                **_writes(h.get("journal") for h in hosts),
                "failing_hosts": status.get("storage", {}).get("failing_journals", 0),
            },
            "archive": {
                **_writes(a.get("archive") for a in archivists),
                "waiting": sum(a.get("archive_waiting", 0) for a in archivists),
            },
            "hosts": monitor.get("hosts", len(actors["hosts"])),
            "restarts": dict(sorted(monitor.get("restarts", {}).items())),
            "draining": bool(monitor.get("draining", False)),
        }

    # ------------------------------------------------------------------ inventory

    def conversations(
        self,
        *,
        state: str | None = None,
        queue: str | None = None,
        agent_id: str | None = None,
        customer_id: str | None = None,
        min_age_seconds: float = 0,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """The live conversations that match every filter given (None: any), the oldest
        first: id, room, customer, state, queue, agents, whether it waits for an agent,
        created_at, age_seconds and its number of events."""
        if state is not None and (not isinstance(state, str) or state.upper() not in _STATES):
            raise BadArgumentError(
                f"state must be one of {', '.join(sorted(_STATES))}, got {state!r:.80}"
            )
        for what, value in (("queue", queue), ("agent_id", agent_id), ("customer_id", customer_id)):
            if value is not None:
                _text(what, value, limit=MAX_ID)
        if isinstance(min_age_seconds, bool) or not isinstance(min_age_seconds, int | float):
            raise BadArgumentError(f"min_age_seconds must be a number, got {min_age_seconds!r:.80}")
        if not 0 <= min_age_seconds < 10**9:
            raise BadArgumentError(f"min_age_seconds must be >= 0, got {min_age_seconds!r:.80}")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit <= MAX_LISTED:
            raise BadArgumentError(
                f"limit must be an int from 1 to {MAX_LISTED}, got {limit!r:.80}"
            )
        where = ConversationFilter(
            state=None if state is None else state.upper(),
            queue=queue,
            agent_id=agent_id,
            customer_id=customer_id,
            min_age_ms=round(min_age_seconds * 1000),
            limit=limit,
        )
        link = self.engine
        found: list[dict[str, Any]] = []
        for host in self._actors()["hosts"]:
            found += self._ask(host, ListConversations(link.call_id(), where, link.clock.now))
        found.sort(key=lambda c: (c["created_at"], c["id"]))
        return found[:limit]

    def agents(self) -> list[dict[str, Any]]:
        """Every agent the Routers know (logged in): agent_id, presence (READY, BUSY: ready
        with no free capacity, NOT_READY), free capacity and queues; by agent id."""
        link = self.engine
        agents: dict[str, dict[str, Any]] = {}
        for router in self._actors()["routers"]:
            try:
                listed: list[dict[str, Any]] = link.call(router, "", ListAgents())
            except Unreachable as error:
                raise UnavailableError(f"the engine's router does not answer: {error}") from None
            for agent in listed:  # an agent of several Routers: the same report to each
                agents[agent["agent_id"]] = agent
        return [agents[a] for a in sorted(agents)]

    def queues(self) -> dict[str, dict[str, Any]]:
        """Every queue used since the engine started: what ``metrics()`` says of it."""
        queues: dict[str, dict[str, Any]] = self.metrics()["queues"]
        return queues

    def customer(self, customer_id: str) -> dict[str, Any]:
        """A customer's rooms with their archived conversations (from the archive), and the
        customer's live conversations (``conversations(customer_id=...)``)."""
        _text("customer_id", customer_id, limit=MAX_ID)
        live = self.conversations(customer_id=customer_id)
        try:
            archived: dict[str, Any] = self.engine.engine(
                "monitor", ArchivedQuery("customer", customer_id)
            )
        except UnknownIdError:  # not in the archive yet: known if it has a live conversation
            if not live:
                raise
            archived = {"customer_id": customer_id, "rooms": []}
        return {**archived, "live": live}

    # ------------------------------------------------------------------ internals

    def _actors(self) -> dict[str, list[Any]]:
        link = self.engine
        roster: dict[str, list[Any]] = link.ask_direct(
            link.addresses.monitor, Roster(link.call_id())
        )
        return roster

    def _survey(self, address: Any) -> dict[str, Any]:
        figures: dict[str, Any] = self._ask(address, Survey(self.engine.call_id()))
        return figures

    def _ask(self, address: Any, message: Any) -> Any:
        try:
            return self.engine.ask_direct(address, message)
        except Unreachable as error:
            raise UnavailableError(f"an engine actor does not answer: {error}") from None


def _writes(tallies: Any) -> dict[str, float]:
    """The write tallies of several actors added up (None: an actor without one)."""
    total: dict[str, float] = dict.fromkeys(WRITE_FIELDS, 0)
    for tally in tallies:
        for field in WRITE_FIELDS:
            total[field] += 0 if tally is None else tally[field]
    return total
