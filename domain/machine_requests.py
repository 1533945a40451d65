"""A conversation's agent requests: asking the Router for an agent (for the queue, a named
agent, or a consult), withdrawing the request, and telling an agent that is not subscribed
of an offer made to it or taken back. The building blocks of :mod:`domain.machine_steps`
that concern the pending request."""

from __future__ import annotations

from domain.effects import CancelRoute, RouteRequest
from domain.events import EventName
from domain.ids import agent_request_id
from domain.machine_parts import Bucket
from domain.machine_timers import MachineTimers
from domain.records import SYSTEM, Emitter
from domain.timers import TimerKind


class MachineRequests(MachineTimers):
    def _request_agent(
        self,
        queue: str,
        by: Emitter,
        bucket: Bucket,
        excluded: tuple[str, ...] = (),
        *,
        targets: tuple[str, ...] = (),
        note: str = "",
        consult: bool = False,
    ) -> None:
        """Ask the Router for an agent of ``queue`` (or for one of ``targets`` alone), with a
        note for whoever takes the request. A ``consult`` leaves the conversation's queue and
        the customer's timers as they are."""
        self._requests += 1
        request_id = agent_request_id(self.id, self._requests)
        self.pending_request = request_id
        self.request_queue = queue
        if not consult:
            self.queue = queue
        self.request_targets, self.request_note = targets, note
        self.request_consult = consult
        data: dict[str, object] = {"queue": queue, "request_id": request_id}
        if len(targets) == 1:
            data["to_agent_id"] = targets[0]
        elif targets:
            data["to_agent_ids"] = list(targets)
        if note:
            data["note"] = note
        self._emit(bucket, EventName.AGENT_REQUESTED, by, None, data)
        self._t.effects.append(RouteRequest(request_id, queue, excluded, targets))
        if not consult:
            self._stop_all(TimerKind.CUSTOMER_SLA)

    def _cancel_request(self) -> None:
        if self.pending_request is not None:
            self._withdraw_offer()
            self._t.effects.append(CancelRoute(self.pending_request, self.request_queue))
            self._request_over()

    def _consult_left(self, agent_id: str) -> None:
        """An agent left: the consult it asked for or joined is over (a request for it that is
        still pending is withdrawn)."""
        if agent_id == self.consulted or (agent_id == self.consulting and self.consulted):
            self.consulting = self.consulted = None
        elif agent_id == self.consulting:
            self._cancel_request()

    def _request_over(self) -> None:
        """The pending request ended untaken: a consult it was for is over too."""
        self.pending_request = None
        if self.request_consult and self.consulted is None:
            self.consulting = None

    def _notify(self, agent_id: str, name: EventName) -> None:
        """The command's ``name`` event also goes to ``agent_id`` if it is not subscribed."""
        self._t.notify.append((agent_id, str(name)))

    def _withdraw_offer(self, taken_by: str | None = None) -> None:
        """The pending request is over: an agent holding an offer of it (other than
        ``taken_by``, who took it) is told that the offer is withdrawn."""
        agent_id, self.offered_to = self.offered_to, None
        if agent_id is None or agent_id == taken_by:
            return
        self._emit(
            Bucket.FOLLOW,
            EventName.AGENT_OFFER_WITHDRAWN,
            SYSTEM,
            None,
            {
                "agent_id": agent_id,
                "request_id": self.pending_request,
                "queue": self.request_queue,
            },
        )
        self._notify(agent_id, EventName.AGENT_OFFER_WITHDRAWN)
