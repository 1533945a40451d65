"""The routing book itself: requests, agents and matching (the rules: :mod:`domain.routing`)."""

from __future__ import annotations

from bisect import insort

from domain.routing.agent_figures import (
    Counted,
    agent_rows,
    availability_counts,
    presence_counts,
)
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
from domain.routing.entries import BookAgent, BookRequest, Lane, best_agent
from domain.routing.position import PositionNotices
from domain.routing.sticky import RoomAgents
from domain.routing.tally import QueueTally, queue_figures

__all__ = ["RoutingBook"]


class RoutingBook:
    """The Router's state: see the module docstring for the rules."""

    def __init__(self, settings: RoutingPolicy) -> None:
        self._settings = settings
        self._requests: dict[str, BookRequest] = {}
        self._queues: dict[Lane, list[tuple[int, int, str]]] = {}  # lane -> waiting, in place
        self._agents: dict[str, BookAgent] = {}
        self._tokens: dict[RoutingTimerKey, int] = {}
        self._ended: dict[str, None] = {}  # ordered: the oldest is forgotten first
        self._last_token = 0
        self._last_seq = 0
        self._last_order = 0
        self._last_epoch = 0
        self._now = 0  # the latest ``now`` seen, for the calls that carry none
        self._tallies: dict[str, QueueTally] = {}  # queue -> its counts (domain.routing.tally)
        self._notices = PositionNotices()
        self._rooms = RoomAgents()

    def reconfigure(self, settings: RoutingPolicy) -> None:
        """New settings from the next decision on: what waits keeps its place, and the
        timers already armed keep their times."""
        self._settings = settings

    # --- requests ----------------------------------------------------------------------------

    def enqueue(
        self,
        request_id: str,
        conversation_id: str,
        queue: str,
        now: int,
        *,
        excluded: tuple[str, ...] = (),
        targets: tuple[str, ...] = (),
        room: str = "",
    ) -> list[RoutingEffect]:
        """Queue a request; ``excluded`` agents never get it (e.g. those whose SLA expired);
        with ``targets`` only those agents may get it (the longest idle of those READY with a
        free slot), whatever their queues. A customer's request names its ``room``: the
        sticky agent."""
        self._see(now)
        if request_id in self._requests or request_id in self._ended:
            return []
        self._last_seq += 1
        request = BookRequest(
            request_id,
            conversation_id,
            queue,
            now,
            self._last_seq,
            excluded=frozenset(excluded),
            target=frozenset(targets) or None,
            room=room,
        )
        self._requests[request_id] = request
        self._queues.setdefault((queue, None), [])  # every queue ever used is listed
        ttl = RoutingTimerKey(RoutingTimerKind.TTL, request_id)
        effects: list[RoutingEffect] = [self._arm(ttl, now + self._settings.request_ttl_ms)]
        sticky = self._sticky_agent(request)
        if sticky is not None and self._settings.sticky_agent_ms is not None:
            request.target, request.sticky = frozenset((sticky,)), True
            key = RoutingTimerKey(RoutingTimerKind.STICKY, request_id)
            effects.append(self._arm(key, now + self._settings.sticky_agent_ms))
        self._queues.setdefault(request.lane, [])
        self._to_waiting(request)
        self._match(now, effects)
        self._tell_positions(now, effects)
        return effects

    def cancel(self, request_id: str) -> list[RoutingEffect]:
        request = self._requests.get(request_id)
        if request is None:
            return []
        self._end(request)
        effects: list[RoutingEffect] = []
        self._match(self._now, effects)
        self._tell_positions(self._now, effects)
        return effects

    def accepted(self, request_id: str, agent_id: str, now: int) -> list[RoutingEffect]:
        """The agent is subscribed: the request is done. A late accept (after a RONA, or while
        the request is held by another agent) still ends it: the agent is in the conversation."""
        self._see(now)
        request = self._requests.get(request_id)
        if request is None:
            return []
        self._tally(request.queue).answer(
            now - request.enqueued_at, self._settings.service_level_ms
        )
        self._notices.answered(request.queue, now)
        if request.room:
            limit = self._settings.remember_ended
            self._rooms.remember(request.room, request.conversation_id, agent_id, limit)
        self._end(request, taken=request.agent_id == agent_id)
        effects: list[RoutingEffect] = []
        self._match(now, effects)
        self._tell_positions(now, effects)
        return effects

    def declined(
        self, request_id: str, agent_id: str, now: int, *, refused: bool = False
    ) -> list[RoutingEffect]:
        """The agent could not take it; a decline by an agent not holding it is stale.

        ``refused=False``: the agent was full (the book's view of it was stale), so it counts
        as full until its next report. ``refused=True``: the conversation would not have this
        agent (it is already in it, wrapping up or monitoring): the request excludes it from
        now on, and the agent's capacity is untouched."""
        self._see(now)
        request = self._requests.get(request_id)
        if request is None or request.agent_id != agent_id:
            return []
        agent = self._agents.get(agent_id)
        if refused:
            request.excluded = request.excluded | {agent_id}
            self._release(request)
        elif agent is not None:
            # full until its next report: no unit held so far is given back either
            agent.free = 0
            self._last_epoch += 1
            agent.epoch = self._last_epoch
        request.agent_id = None
        self._requeue(request)
        effects: list[RoutingEffect] = []
        self._match(now, effects)
        self._tell_positions(now, effects)
        return effects

    def alarm(self, key: RoutingTimerKey, token: int, now: int) -> list[RoutingEffect]:
        self._see(now)
        if self._tokens.get(key) != token:
            return []  # stale: the timer was stopped or re-armed
        del self._tokens[key]
        request = self._requests[key.request_id]  # a live token implies a live request
        effects: list[RoutingEffect] = []
        if key.kind is RoutingTimerKind.ACCEPT:
            agent_id = request.agent_id
            assert agent_id is not None  # an ACCEPT token lives only while the offer does
            effects.append(
                Report(
                    request.conversation_id, request.id, ReportName.RONA, request.queue, agent_id
                )
            )
            effects.append(SetNotReady(agent_id))
            self._tally(request.queue).rona += 1
            self._release(request)
            self._requeue(request)
            agent = self._agents.get(agent_id)
            if agent is not None:
                agent.ready = False
        elif key.kind is RoutingTimerKind.TTL:
            effects.append(
                Report(
                    request.conversation_id,
                    request.id,
                    ReportName.NO_AGENT_AVAILABLE,
                    request.queue,
                    None,
                )
            )
            self._tally(request.queue).no_agent += 1
            self._end(request)
        elif key.kind is RoutingTimerKind.STICKY and request.sticky:
            if request.offered:  # the room's agent did not accept in time: RONA, still READY
                rona, agent_id = ReportName.RONA, request.agent_id
                conversation_id, queue = request.conversation_id, request.queue
                effects.append(Report(conversation_id, request.id, rona, queue, agent_id))
                self._release(request)
                self._requeue(request)
            elif request.agent_id is None:  # it waited for the room's agent in vain
                self._off_waiting(request)
                self._requeue(request)
        # a POSITION alarm: the interval has passed, what changed meanwhile is told now
        self._match(now, effects)
        self._tell_positions(now, effects)
        return effects

    # --- agents ------------------------------------------------------------------------------

    def agent_available(
        self, agent_id: str, *, ready: bool, free: int, queues: tuple[str, ...], now: int
    ) -> list[RoutingEffect]:
        """The Agent actor's authoritative report; a negative ``free`` counts as 0."""
        self._see(now)
        self._last_epoch += 1
        agent = self._agents.get(agent_id)
        if agent is None:
            self._last_order += 1
            agent = BookAgent(agent_id, self._last_order, ready, 0, (), now, 0)
            self._agents[agent_id] = agent
        agent.ready = ready
        agent.free = max(free, 0)
        agent.queues = tuple(queues)
        agent.epoch = self._last_epoch
        effects: list[RoutingEffect] = []
        self._match(now, effects)
        self._tell_positions(now, effects)
        return effects

    def agent_gone(self, agent_id: str) -> list[RoutingEffect]:
        if self._agents.pop(agent_id, None) is None:
            return []
        for request in self._requests.values():
            if request.agent_id == agent_id and request.offered:
                request.agent_id = None
                self._requeue(request)
        effects: list[RoutingEffect] = []
        self._match(self._now, effects)
        self._tell_positions(self._now, effects)
        return effects

    # --- status ------------------------------------------------------------------------------

    def waiting(self) -> dict[str, int]:
        """Queue -> requests waiting (neither offered nor assigned); every queue ever used."""
        waiting: dict[str, int] = {}
        for (queue, _), places in self._queues.items():
            waiting[queue] = waiting.get(queue, 0) + len(places)
        return waiting

    def lanes(self) -> int:
        """How many lanes requests wait in: one per queue ever used, and one per named agent
        that has a request waiting for it now."""
        return len(self._queues)

    def agents(self, counted: Counted = None) -> dict[str, int]:
        """Agents by presence; only those whose queues ``counted`` accepts, if given."""
        return presence_counts(self._agents.values(), counted)

    def availability(self, counted: Counted = None) -> dict[str, int]:
        """Agents READY with free capacity, BUSY (ready, with none free) and NOT_READY; only
        those whose queues ``counted`` accepts, if given."""
        return availability_counts(self._agents.values(), counted)

    def agent_list(self) -> list[dict[str, object]]:
        """Every agent the book knows, in registration order (``agent_figures.agent_rows``)."""
        return agent_rows(self._agents.values())

    def queue_figures(self, now: int) -> dict[str, dict[str, int]]:
        """Queue -> its counts (:class:`QueueTally`), ``waiting`` and ``oldest_wait_ms`` (how
        long the oldest waiting request has waited at ``now``; 0 when none waits); every queue
        ever used."""
        return queue_figures(self._queues, self._tallies, now)

    # --- internals ---------------------------------------------------------------------------

    def _tally(self, queue: str) -> QueueTally:
        tally = self._tallies.get(queue)
        if tally is None:
            tally = self._tallies[queue] = QueueTally()
        return tally

    def _see(self, now: int) -> None:
        self._now = max(self._now, now)

    def _arm(self, key: RoutingTimerKey, at: int) -> ArmRoutingAlarm:
        self._last_token += 1
        self._tokens[key] = self._last_token
        return ArmRoutingAlarm(key, self._last_token, at)

    def _to_waiting(self, request: BookRequest) -> None:
        insort(self._queues.setdefault(request.lane, []), request.place)

    def _off_waiting(self, request: BookRequest) -> None:
        """Out of its lane; a named agent's lane goes once empty (agent ids are the callers':
        lanes must not pile up), a queue's stays (every queue ever used is listed)."""
        places = self._queues[request.lane]
        places.remove(request.place)
        if not places and request.target is not None:
            del self._queues[request.lane]

    def _requeue(self, request: BookRequest) -> None:
        """Back to the waiting at its old place; its offer (if any) is over."""
        self._tokens.pop(RoutingTimerKey(RoutingTimerKind.ACCEPT, request.id), None)
        request.offered = False
        if request.sticky:  # its agent did not take it: it is the queue's from now on
            self._unstick(request)
        self._to_waiting(request)

    def _unstick(self, request: BookRequest) -> None:
        request.target, request.sticky = None, False
        self._queues.setdefault(request.lane, [])

    def _sticky_agent(self, request: BookRequest) -> str | None:
        """The agent of the last conversation of the request's room, if it is another
        conversation's and that agent is READY with a free slot (and not excluded)."""
        if self._settings.sticky_agent_ms is None or request.target is not None:
            return None
        last = self._rooms.last_agent(request.room, request.conversation_id)
        if last is None:
            return None
        agent = self._eligible((request.queue, frozenset((last,))), request.excluded)
        return None if agent is None else agent.id

    def _tell_positions(self, now: int, effects: list[RoutingEffect]) -> None:
        """Tell each request waiting in a queue (for any of its agents) its position and
        estimate, if they changed, at most once per ``position_interval_ms``."""
        interval = self._settings.position_interval_ms
        if interval is None:
            return
        for request_id, queue, at, estimate, due in self._notices.changes(
            self._queues, now, interval
        ):
            conversation_id = self._requests[request_id].conversation_id
            key = RoutingTimerKey(RoutingTimerKind.POSITION, request_id)
            if due == now:
                effects.append(QueuePosition(conversation_id, request_id, queue, at, estimate))
            elif key not in self._tokens:
                effects.append(self._arm(key, due))

    def _release(self, request: BookRequest) -> None:
        """The holder did not take the request: give its unit back, if still counted."""
        if request.agent_id is None:
            return
        agent = self._agents.get(request.agent_id)
        if agent is not None and agent.epoch == request.epoch:
            agent.free += 1
        request.agent_id = None

    def _end(self, request: BookRequest, *, taken: bool = False) -> None:
        """The request is over; ``taken``: by its holder, whose unit stays used."""
        if request.agent_id is None:
            self._off_waiting(request)
        elif not taken:
            self._release(request)
        for kind in RoutingTimerKind:
            self._tokens.pop(RoutingTimerKey(kind, request.id), None)
        del self._requests[request.id]
        self._notices.forget(request.id)
        self._ended[request.id] = None
        while len(self._ended) > max(self._settings.remember_ended, 0):
            del self._ended[next(iter(self._ended))]

    def _eligible(self, lane: Lane, excluded: frozenset[str] = frozenset()) -> BookAgent | None:
        named = lane[1]
        if named is None:
            return best_agent(self._agents.values(), lane, excluded)
        return best_agent(filter(None, map(self._agents.get, named)), lane, excluded)

    def _match(self, now: int, effects: list[RoutingEffect]) -> None:
        """The best match is the best-ranked request, over all queues, that has an eligible
        agent. Within a queue requests differ only by the agents they exclude, so a queue
        with no eligible agent at all is skipped at once, and otherwise its first request
        that excludes nobody eligible is its candidate."""
        priorities = self._settings.priorities
        while True:
            best: tuple[tuple[int, int, int], str, BookAgent] | None = None
            for lane, places in self._queues.items():
                if not places:
                    continue
                priority = -priorities.get(lane[0], 0)
                enqueued_at, seq, _ = places[0]
                if best is not None and (priority, enqueued_at, seq) >= best[0]:
                    continue
                if self._eligible(lane) is None:
                    continue
                for enqueued_at, seq, request_id in places:
                    rank = (priority, enqueued_at, seq)
                    if best is not None and rank >= best[0]:
                        break
                    agent = self._eligible(lane, self._requests[request_id].excluded)
                    if agent is not None:
                        best = (rank, request_id, agent)
                        break
            if best is None:
                return
            _, request_id, agent = best
            self._assign(self._requests[request_id], agent, now, effects)

    def _assign(
        self, request: BookRequest, agent: BookAgent, now: int, effects: list[RoutingEffect]
    ) -> None:
        self._off_waiting(request)
        agent.free -= 1
        agent.last_assigned = now
        offer = not self._settings.auto_accept
        request.agent_id = agent.id
        request.offered = offer
        request.epoch = agent.epoch
        self._tally(request.queue).assigned += 1
        effects.append(Assign(request.id, request.conversation_id, agent.id, request.queue, offer))
        if offer:
            effects.append(
                Report(
                    request.conversation_id,
                    request.id,
                    ReportName.AGENT_OFFERED,
                    request.queue,
                    agent.id,
                )
            )
            accept = RoutingTimerKey(RoutingTimerKind.ACCEPT, request.id)
            effects.append(self._arm(accept, now + self._settings.accept_timeout_ms))
