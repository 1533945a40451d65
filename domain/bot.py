"""The default conversation bot, as a pure policy: an event in, commands out.

It speaks only while it is PRIMARY: the welcome when it joins, a short canned answer to a
customer message, or, when the message asks for a person (one of ``agent_keywords`` as a whole
word, any case), an agent request on the default queue if none is pending. Its hold, resume and
no-agent notices are notifications to the customer whatever its role: they keep the customer
informed and start no timer.

It keeps no state per conversation: each event comes with the bot's role in that conversation
and whether an agent request is pending (:class:`BotView`), so a restarted bot loses nothing.
A replacement bot (``bot.class_path``) implements the same ``react``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from domain.commands import BotMessage, BotNotification, Command, RequestAgent
from domain.enums import ParticipantType, Role
from domain.events import EventName
from domain.records import Emitter, Event

BOT_EMITTER = Emitter("bot", ParticipantType.BOT)

#: What the bot reacts to; the conversation sends it nothing else (it would only cost messages).
BOT_INTERESTS: frozenset[str] = frozenset(
    {
        EventName.BOT_SUBSCRIBED,
        EventName.CUSTOMER_MESSAGE,
        EventName.CONVERSATION_PAUSED,
        EventName.CONVERSATION_RESUMED,
        EventName.NO_AGENT_AVAILABLE,
    }
)


@dataclass(frozen=True, slots=True)
class BotScript:
    welcome: str
    answer: str
    agent_keywords: tuple[str, ...]
    hold_notice: str
    resume_notice: str
    no_agent_notice: str
    queue: str = "default"


@dataclass(frozen=True, slots=True)
class BotView:
    """What the bot knows of the conversation an event comes from."""

    role: Role
    agent_requested: bool


class DefaultBot:
    def __init__(self, script: BotScript) -> None:
        self.script = script
        words = "|".join(re.escape(k) for k in script.agent_keywords if k)
        self._asks_for_agent = re.compile(rf"\b(?:{words})\b", re.IGNORECASE) if words else None

    def react(self, event: Event, view: BotView) -> list[Command]:
        """The commands the bot sends its conversation in answer to ``event``."""
        name = event.name
        if name == EventName.BOT_SUBSCRIBED and view.role is Role.PRIMARY:
            return [BotMessage(self.script.welcome, f"{event.id}/bot")]
        if name == EventName.NO_AGENT_AVAILABLE:
            return [BotNotification(self.script.no_agent_notice)]
        if name == EventName.CONVERSATION_PAUSED:
            return [BotNotification(self.script.hold_notice)]
        if name == EventName.CONVERSATION_RESUMED:
            return [BotNotification(self.script.resume_notice)]
        if name == EventName.CUSTOMER_MESSAGE and view.role is Role.PRIMARY:
            return self._answer(event, view)
        return []

    def _answer(self, event: Event, view: BotView) -> list[Command]:
        text = str(event.data.get("text", ""))
        if self._asks_for_agent is not None and self._asks_for_agent.search(text):
            # Asked again while a request is pending: nothing to add.
            return [] if view.agent_requested else [RequestAgent(self.script.queue, BOT_EMITTER)]
        return [BotMessage(self.script.answer, f"{event.id}/bot")]
