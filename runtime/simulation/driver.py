"""The discrete-event driver: simulated customers and agents acting on the embedded engine.

The driver sits outside the engine and uses only the gateway. It keeps an agenda, a heap of
``(virtual time ms, sequence, action)``; before each action it moves the engine's virtual clock
to the action's time with ``gw.advance`` (so the engine's own timers fire in order on the way),
then acts (a customer writes, an agent replies, ...). Every draw comes from one
``random.Random(seed)``, the agenda breaks ties by the order items were scheduled, and nothing
iterates a set: the same scenario and seed always make the same calls.

What the engine does by itself (routing, the bot, timers) the driver learns by reading events,
incrementally (``gw.events(cid, after_seq=...)``), only where something can have happened:

* after each of its own actions on a conversation;
* at the deadline of every timer it knows is running in a conversation (the ``_STARTED`` and
  ``_STOPPED`` events tell it which, and when): a *watch* on the agenda;
* when an agent may have been routed a waiting conversation (it became READY, or one of its
  conversations released it): the waiting conversations it serves, in the Router's order
  (priority, then request age), until one shows that agent or is still waiting.

Everything the driver learns from the engine, it also reacts to: an agent who got a
conversation answers after its reply time, a customer whose session ended by inactivity is
gone, an agent the engine removed for an expired SLA gets READY again after a while, etc.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any

from runtime.simulation.observer import EngineObserver

__all__ = ["Driver"]


class Driver(EngineObserver):
    """Runs one scenario on one embedded gateway; see the module docstring.

    Its parts, one module each: :class:`~runtime.simulation.driver_base.DriverBase` (state,
    agenda, engine access), :class:`~runtime.simulation.customers.CustomerActions`,
    :class:`~runtime.simulation.agents.AgentActions` and
    :class:`~runtime.simulation.observer.EngineObserver` (what the engine did).
    """

    def run(self) -> None:
        self._schedule_agents()
        if self.faults is not None:
            self.faults.agents_from(self.agents, self._agent_login_again)
        self._schedule_next_arrival(0)
        agenda = self._agenda
        gw = self.gw
        progress = self.progress
        ticks = 0
        while agenda and agenda[0][0] <= self.end_ms:
            when, _, action, a, b = heapq.heappop(agenda)
            if _stale(action, a, b):
                continue  # superseded: no need to move the clock for it
            if when > self.now:
                gw.advance((when - self.now) / 1000)
                self.now = when
                if gw.now_ms != when:  # the driver and the engine must share one clock
                    raise RuntimeError(f"virtual clock at {gw.now_ms} ms, expected {when}")
            action(a, b)
            if self._discover_queue:
                self._run_discoveries()
            ticks += 1
            if progress is not None and ticks % 256 == 0:
                self._show(progress)
        if self.end_ms > self.now:
            gw.advance((self.end_ms - self.now) / 1000)
            self.now = self.end_ms
        # what happened in the last stretch: final polls of everything still open
        for conversation in list(self._open.values()):
            self._poll(conversation)
        self._run_discoveries()
        if progress is not None:
            self._show(progress)

    def logged_in_ms(self) -> dict[str, tuple[int, int]]:
        """Each agent's time logged in: (from, to) in ms, ``to`` the end of the run if still in."""
        spans: dict[str, tuple[int, int]] = {}
        for agent in self.agents.values():
            if agent.login_ms is None:
                continue
            end = agent.logout_ms if agent.logout_ms is not None else self.end_ms
            spans[agent.id] = (agent.login_ms, end)
        return spans


def _stale(action: Callable[[Any, Any], None], a: Any, b: Any) -> bool:
    """Whether an agenda item was superseded (its token is old, its conversation is over)."""
    guard = _GUARDS.get(getattr(action, "__func__", None))
    if guard is None:
        return False
    if guard == "watch":
        return bool(a.done or a.watch_at != b)
    if guard == "turn":
        return bool(a.done or b != a.turn_token)
    if guard == "abandon":
        return bool(a.done or b != a.abandon_token)
    return bool(b.done)  # (agent, conversation) actions


_GUARDS: dict[object, str] = {
    Driver._watch: "watch",
    Driver._customer_turn: "turn",
    Driver._agent_reply: "turn",
    Driver._abandon: "abandon",
    Driver._agent_end_chat: "conversation",
    Driver._agent_leave: "conversation",
    Driver._apply_wrap_up: "conversation",
    Driver._agent_accept: "conversation",
}
