"""The default conversation bot, as a pure policy: an event in, commands out.

It speaks only while it is PRIMARY: the welcome when it joins, a short canned answer to a
customer message, or, when the message asks for a person (one of ``agent_keywords`` as a whole
word, any case), an agent request on the default queue if none is pending. Its hold, resume and
no-agent notices are notifications to the customer whatever its role: they keep the customer
informed and start no timer.

A replacement bot (``bot.class_path``) implements the same two methods.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from actors.model.commands import BotMessage, BotNotification, Command, RequestAgent
from actors.model.enums import Role
from actors.model.records import Emitter, Event

BOT_EMITTER = Emitter("bot", "BOT")


@dataclass(frozen=True, slots=True)
class BotScript:
    welcome: str
    answer: str
    agent_keywords: tuple[str, ...]
    hold_notice: str
    resume_notice: str
    no_agent_notice: str
    queue: str = "default"


@dataclass(slots=True)
class _Seen:
    role: Role
    agent_requested: bool = False


class DefaultBot:
    def __init__(self, script: BotScript) -> None:
        self.script = script
        words = "|".join(re.escape(k) for k in script.agent_keywords if k)
        self._asks_for_agent = re.compile(rf"\b(?:{words})\b", re.IGNORECASE) if words else None
        self._conversations: dict[str, _Seen] = {}

    def react(self, event: Event) -> list[Command]:
        """The commands the bot sends its conversation in answer to ``event``."""
        seen = self._conversations.get(event.conversation_id)
        name = event.name
        if name == "BOT_SUBSCRIBED":
            self._conversations[event.conversation_id] = _Seen(Role(str(event.data["role"])))
            return [BotMessage(self.script.welcome, f"{event.id}/bot")]
        if seen is None:
            return []
        if name == "BOT_UNSUBSCRIBED":
            del self._conversations[event.conversation_id]
        elif name == "PARTICIPANT_ROLE_CHANGED" and event.data.get("participant_id") == "bot":
            seen.role = Role(str(event.data["to"]))
            if seen.role is Role.ASSISTANT:
                seen.agent_requested = False  # an agent came
        elif name == "AGENT_REQUESTED":
            seen.agent_requested = True
        elif name == "NO_AGENT_AVAILABLE":
            seen.agent_requested = False
            return [BotNotification(self.script.no_agent_notice)]
        elif name == "CONVERSATION_PAUSED":
            return [BotNotification(self.script.hold_notice)]
        elif name == "CONVERSATION_RESUMED":
            return [BotNotification(self.script.resume_notice)]
        elif name == "CUSTOMER_MESSAGE" and seen.role is Role.PRIMARY:
            return self._answer(event, seen)
        return []

    def _answer(self, event: Event, seen: _Seen) -> list[Command]:
        text = str(event.data.get("text", ""))
        if self._asks_for_agent is not None and self._asks_for_agent.search(text):
            if seen.agent_requested:
                return []
            seen.agent_requested = True
            return [RequestAgent(self.script.queue, BOT_EMITTER)]
        return [BotMessage(self.script.answer, f"{event.id}/bot")]

    def tracked(self) -> int:
        return len(self._conversations)
