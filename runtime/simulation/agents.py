"""The agents' side of the driver: shifts, breaks, and how agents answer and end conversations.

Each agent logs in at the start of its group's shift and out at its end (once its last
conversation is done), takes breaks, accepts what it is offered after its accept time, replies
after its reply time, sometimes puts a conversation on hold, applies wrap-up codes (or forgets
to), and gets READY again a while after the engine made it not ready.
"""

from __future__ import annotations

from typing import Any

from infra.timefmt import seconds_to_ms
from runtime.simulation.handovers import HandoverActions
from runtime.simulation.people import AGENT_LINES, PRESENT, WITH_AGENT, SimAgent, SimConversation


class AgentActions(HandoverActions):
    """What the simulated agents do."""

    def _schedule_agents(self) -> None:
        for group in self.scenario.agents:
            for index in range(group.count):
                agent = SimAgent(f"{group.name}-{index + 1:03d}", group)
                self.agents[agent.id] = agent
                start = self.base + seconds_to_ms(group.shift_start)
                self.at(start, self._agent_login, agent)
                if group.shift_end is not None:
                    end = self.base + seconds_to_ms(group.shift_end)
                    self.at(end, self._agent_shift_end, agent)
                if group.break_every is not None:
                    first = group.break_every * (0.5 + self.rng.random())
                    self.at(start + seconds_to_ms(first), self._agent_break, agent)

    def _agent_login(self, agent: SimAgent, _b: Any = None) -> None:
        if agent.shift_over or not self._log_in(agent):
            return
        agent.logged_in = True
        agent.login_ms = self.now
        if not agent.on_break:
            self._agent_ready(agent)

    def _agent_login_again(self, agent: SimAgent) -> None:
        """Its agent host crashed (a fault): the desk logs the agent in again, READY if it was."""
        if not agent.logged_in or agent.shift_over or not self._log_in(agent):
            return
        if agent.ready and not agent.on_break:
            self._agent_ready(agent)

    def _log_in(self, agent: SimAgent) -> bool:
        group = agent.group
        return self._call(
            None,
            self.gw.agent_login,
            agent.id,
            queues=list(group.queues),
            max_conversations=group.max_conversations,
        )

    def _agent_ready(self, agent: SimAgent) -> None:
        if self._call(None, self.gw.agent_ready, agent.id):
            agent.ready = True
            if agent.can_take():
                self._discover_queue[agent.id] = None

    def _agent_recover(self, agent: SimAgent, _b: Any = None) -> None:
        if agent.logged_in and not agent.ready and not agent.on_break and not agent.shift_over:
            self._agent_ready(agent)

    def _agent_break(self, agent: SimAgent, _b: Any = None) -> None:
        group = agent.group
        if agent.shift_over or group.break_every is None:
            return
        if agent.logged_in:
            self._call(None, self.gw.agent_not_ready, agent.id)
            agent.ready = False
        agent.on_break = True
        self.after(seconds_to_ms(group.break_length), self._agent_break_end, agent)
        self.after(seconds_to_ms(group.break_length + group.break_every), self._agent_break, agent)

    def _agent_break_end(self, agent: SimAgent, _b: Any = None) -> None:
        agent.on_break = False
        if agent.logged_in and not agent.shift_over:
            self._agent_ready(agent)

    def _agent_shift_end(self, agent: SimAgent, _b: Any = None) -> None:
        agent.shift_over = True
        if not agent.logged_in:
            return
        if agent.ready:
            self._call(None, self.gw.agent_not_ready, agent.id)
            agent.ready = False
        if not agent.conversations:
            self._agent_logout(agent)

    def _agent_logout(self, agent: SimAgent, _b: Any = None) -> None:
        if not agent.logged_in or agent.conversations:
            return
        if self._call(None, self.gw.agent_logout, agent.id):
            agent.logged_in = False
            agent.ready = False
            agent.logout_ms = self.now

    def _agent_turn(self, c: SimConversation) -> None:
        """The customer wrote: its primary agent answers after its reply time."""
        primary = next((a for a, role in c.agents.items() if role == "PRIMARY"), None)
        agent = self.agents.get(primary) if primary is not None else None
        c.turn_token += 1
        if agent is None:
            return
        self.after(self._paced(c, agent.group.reply_time), self._agent_reply, c, c.turn_token)

    def _agent_reply(self, c: SimConversation, token: int) -> None:
        if c.done or token != c.turn_token or c.phase != WITH_AGENT:
            return
        primary = next((a for a, role in c.agents.items() if role == "PRIMARY"), None)
        agent = self.agents.get(primary) if primary is not None else None
        if agent is None:
            return
        group, rng = agent.group, self.rng
        if not c.hold_planned and not c.on_hold and rng.random() < group.hold_probability:
            c.hold_planned = True
            seconds = min(max(round(group.hold_seconds.draw(rng), 3), 1.0), self._hold_max)
            if self._call(c, self.gw.hold, agent.id, c.cid, seconds):
                self._poll(c)
                self.after(group.hold_duration.draw_ms(rng), self._agent_reply, c, token)
                return
        if c.on_hold and rng.random() < 0.5 and self._call(c, self.gw.resume, agent.id, c.cid):
            self._poll(c)
            if c.done or token != c.turn_token:
                return
        if self._hand_on(agent, c) or c.done or token != c.turn_token or c.phase != WITH_AGENT:
            return
        if not self._call(c, self.gw.agent_message, agent.id, c.cid, rng.choice(AGENT_LINES)):
            return
        if c.on_hold:  # the message resumed it: read what changed
            self._poll(c)
            if c.done or c.phase != WITH_AGENT:
                return
        else:  # a PRIMARY agent's message stops the agent SLA (and restarts inactivity, later)
            c.timers.pop(("AGENT_SLA", ""), None)
        c.turn_token += 1
        think = self.scenario.customers.think_time
        if c.exchanges_left > 0:
            self.after(self._paced(c, think), self._customer_turn, c, c.turn_token)
        elif rng.random() < group.ends_chat:
            self.after(self._paced(c, group.reply_time), self._agent_end_chat, agent, c)
        else:
            self.after(self._paced(c, think), self._leave, c)

    def _agent_end_chat(self, agent: SimAgent, c: SimConversation) -> None:
        if c.done or c.agents.get(agent.id) not in PRESENT:
            return
        live = c.live_sessions()
        for sid in live:
            if not self._call(c, self.gw.end_session, sid, "AGENT"):
                break
        if not c.done:
            self._poll(c)

    def _agent_leave(self, agent: SimAgent, c: SimConversation) -> None:
        if c.done or c.agents.get(agent.id) not in PRESENT:
            return
        if self._call(c, self.gw.agent_leave, agent.id, c.cid):
            self._poll(c)

    def _apply_wrap_up(self, agent: SimAgent, c: SimConversation) -> None:
        if c.done or c.agents.get(agent.id) != "WRAP_UP":
            return
        code = "resolved" if c.exchanges_left <= 0 else "follow-up"
        if self._call(c, self.gw.apply_wrap_up, agent.id, c.cid, [code]):
            self._poll(c)

    def _agent_accept(self, agent: SimAgent, c: SimConversation) -> None:
        if c.done or agent.id not in c.offers:
            return
        if self._call(c, self.gw.agent_join, agent.id, c.cid):
            self._poll(c)
