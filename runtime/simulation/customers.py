"""The customers' side of the driver: arrivals, and what each customer says and does.

Customers arrive by a Poisson process whose rate follows the scenario's hourly profile; each
draws its plan on arrival (channel, queue, how many questions for the bot, whether it needs an
agent, whether it leaves silently, whether it opens a second channel), then talks to the bot,
asks for an agent, waits (abandoning after its patience), talks with the agent, and leaves.
"""

from __future__ import annotations

import itertools
from random import Random
from typing import Any

from infra.timefmt import seconds_to_ms
from runtime.gateway import GatewayError
from runtime.simulation.driver_base import DriverBase
from runtime.simulation.people import (
    BOT,
    CUSTOMER_LINES,
    LEFT,
    NO_AGENT,
    PRESENT,
    WAITING,
    WITH_AGENT,
    SimConversation,
    identifier,
)


class CustomerActions(DriverBase):
    """What the simulated customers do."""

    def _schedule_next_arrival(self, from_ms: int) -> None:
        arrivals = self.scenario.arrivals
        if arrivals.limit is not None and self._arrivals >= arrivals.limit:
            return
        second = from_ms / 1000
        end = self.scenario.duration
        profile = arrivals.profile
        while second < end:
            rate = arrivals.rate_at(second)
            boundary = next((start for start, _ in profile if start > second), end)
            boundary = min(boundary, end)
            if rate > 0:
                candidate = second + self.arrival_rng.expovariate(rate / 3600.0)
                if candidate < boundary:
                    self.at(self.base + round(candidate * 1000), self._arrive)
                    return
            second = boundary

    def _pick(self, names: list[str], cumulative: list[float], rng: Random | None = None) -> str:
        point = (rng or self.rng).random() * cumulative[-1]
        for name, edge in zip(names, cumulative, strict=True):
            if point < edge:
                return name
        return names[-1]

    def _arrive(self, _a: Any = None, _b: Any = None) -> None:
        self._arrivals += 1
        self._schedule_next_arrival(self.now - self.base)
        customers = self.scenario.customers
        self._customers += 1
        number = self._customers
        # with common random numbers each customer's plan, patience and handling time come
        # from its own stream: a variant with other agents meets the same customers
        rng = (
            Random(f"{self.scenario.seed}:customer:{number}")
            if self.scenario.common_random_numbers
            else self.rng
        )
        customer_id = f"cust-{number:06d}"
        channel = self._pick(self._channel_names, self._channel_weights, rng)
        needs_agent = rng.random() >= customers.bot_resolves
        bot_left = customers.messages_to_bot.draw(rng)
        exchanges = customers.exchanges.draw(rng)
        silent = rng.random() < customers.silent_leave and channel != "VOICE"
        queue = self._pick(self._queue_names, self._queue_weights, rng)
        second = rng.random() < self.scenario.second_channel
        self.stats.actions += 1
        try:
            ref = self.gw.start_session(customer_id, channel, identifier(channel, number))
        except GatewayError as error:
            self._refused("start_session", error)
            return
        c = self._register(ref.conversation_id, customer_id, ref.room_id)
        c.needs_agent, c.bot_left, c.exchanges_left = needs_agent, bot_left, exchanges
        c.silent, c.queue, c.second_channel, c.rng = silent, queue, second, rng
        self._poll(c)
        c.turn_token += 1
        self.after(customers.think_time.draw_ms(rng) // 2, self._customer_turn, c, c.turn_token)
        if second:
            self.after(customers.think_time.draw_ms(rng) * 2, self._second_channel, c)

    def _register(self, cid: str, customer_id: str, room: str) -> SimConversation:
        c = self.conversations.get(cid)
        if c is None:
            self.rooms[cid] = room
            c = SimConversation(cid, len(self.conversations), customer_id)
            self.conversations[cid] = c
            self._open[cid] = c
            self.stats.conversations += 1
        return c

    def _second_channel(self, c: SimConversation, _b: Any = None) -> None:
        if c.done or c.phase == LEFT:
            return
        channels = [n for n in self._channel_names if n != c.channel]
        names = channels or self._channel_names
        weights = list(itertools.accumulate(w for n, w in self.scenario.channels if n in names))
        channel = self._pick(names, weights)
        number = int(c.customer_id.rsplit("-", 1)[1])
        self.stats.actions += 1
        try:
            ref = self.gw.start_session(c.customer_id, channel, identifier(channel, number) + "-2")
        except GatewayError as error:
            self._refused("start_session", error)
            self._poll(c)
            return
        if ref.conversation_id == c.cid:
            self._poll(c)
            return
        # the conversation had closed meanwhile: the customer started a new one; it leaves
        other = self._register(ref.conversation_id, c.customer_id, ref.room_id)
        other.bot_left, other.needs_agent = 1, False
        self._poll(other)
        other.turn_token += 1
        self.after(
            self.scenario.customers.think_time.draw_ms(self.rng),
            self._customer_turn,
            other,
            other.turn_token,
        )

    def _say(self, c: SimConversation, text: str) -> bool:
        live = c.live_sessions()
        if not live:
            return False
        sid = live[-1] if len(live) == 1 else live[self.rng.randrange(len(live))]
        faults = self.faults
        if faults is not None and faults.duplicate():  # the channel delivers it twice
            message_id = f"sim-dup-{faults.duplicated}"
            said = self._call(c, self.gw.customer_message, sid, text, message_id=message_id)
            if said:
                self._call(c, self.gw.customer_message, sid, text, message_id=message_id)
        else:
            said = self._call(c, self.gw.customer_message, sid, text)
        if said:
            self.acknowledged[c.cid] += 1
        return said

    def _customer_turn(self, c: SimConversation, token: int) -> None:
        if c.done or token != c.turn_token or c.phase in (WAITING, LEFT):
            return
        rng = self.rng
        think = self.scenario.customers.think_time
        if c.phase == BOT:
            if c.bot_left > 0:
                c.bot_left -= 1
                if self._say(c, rng.choice(self._bot_questions)):
                    # not read back: the bot's answer only restarts inactivity timers, later
                    c.turn_token += 1
                    self.after(think.draw_ms(rng), self._customer_turn, c, c.turn_token)
                return
            if c.needs_agent:
                self._ask_for_agent(c)
            else:
                self._bot_resolved(c)
        elif c.phase == WITH_AGENT:
            c.exchanges_left -= 1
            if self._say(c, rng.choice(CUSTOMER_LINES)):
                self._expect_agent_sla(c)
                self._agent_turn(c)
        elif c.phase == NO_AGENT:
            if not c.retried and rng.random() < self.scenario.customers.retry_after_no_agent:
                c.retried = True
                self._ask_for_agent(c)
            else:
                self._leave(c)

    def _expect_agent_sla(self, c: SimConversation) -> None:
        """A customer message with an agent present (re)starts the agent SLA: watch it without
        reading the conversation back. (Timers the driver believes end earlier than they do
        only cost an early look; one it did not know about could be missed.)"""
        if c.on_hold or any(c.sessions.get(sid) for sid in c.voice):
            return
        if not any(role in PRESENT for role in c.agents.values()):
            return
        deadline = self.now + seconds_to_ms(self.settings.queue_sla_seconds(c.sla_queue))
        c.timers[("AGENT_SLA", "")] = deadline
        self._rewatch(c)

    def _ask_for_agent(self, c: SimConversation) -> None:
        default_queue = self.settings.routing.default_queue
        by_keyword = self._keyword_bot and c.queue == default_queue
        text = self._request_text if by_keyword else "I need some help with my account."
        if not self._say(c, text):
            return
        self._poll(c)
        # no keyword bot (or another queue): the channel asks for the agent itself
        if (
            c.request is None
            and c.phase not in (WITH_AGENT, LEFT)
            and not c.done
            and self._call(c, self.gw.request_agent, c.cid, c.queue)
        ):
            self._poll(c)

    def _bot_resolved(self, c: SimConversation) -> None:
        if self.rng.random() < self.scenario.bot_closes:
            if self._call(c, self.gw.end_conversation, c.cid, by="BOT"):
                self._poll(c)
        else:
            self._leave(c)

    def _leave(self, c: SimConversation, _b: Any = None) -> None:
        """The customer goes: ends its sessions, or (``silent``) just stops answering."""
        if c.done or c.phase == LEFT:
            return
        if c.silent and not c.voice:
            c.phase = LEFT
            c.turn_token += 1
            return
        live = c.live_sessions()
        for index, sid in enumerate(live):
            ok = self._call(c, self.gw.end_session, sid, "CUSTOMER")
            if not ok or index == len(live) - 1:
                break
        if not c.done:
            self._poll(c)

    def _abandon(self, c: SimConversation, token: int) -> None:
        if c.done or token != c.abandon_token or c.phase != WAITING:
            return
        self._poll(c)  # an agent may just have come
        if c.done or token != c.abandon_token or c.phase != WAITING:
            return
        c.silent = False
        self._leave(c)
