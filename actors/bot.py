"""The Bot actor: one shared controller that runs the conversation bot for every conversation.

It receives the events it is interested in, asks its policy (the default bot, or the class
named by ``bot.class_path``) what to answer, and sends the commands back to the conversation.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

import structlog

from actors.base import EngineActor
from actors.messages import Apply, BotDelivery, Deliver
from domain.bot import BotView, DefaultBot
from domain.commands import Command
from domain.records import Event
from infra.config import Settings
from infra.policies import bot_script

log = structlog.get_logger("cx.bot")


class BotPolicy(Protocol):
    def react(self, event: Event, view: BotView) -> list[Command]: ...


def load_bot(settings: Settings) -> BotPolicy:
    """The bot named by ``bot.class_path`` (built with the BotScript), else the default bot."""
    script, class_path = bot_script(settings), settings.bot.class_path
    if class_path is None:
        return DefaultBot(script)
    module_name, _, class_name = class_path.partition(":")
    policy_class = getattr(importlib.import_module(module_name), class_name)
    policy: BotPolicy = policy_class(script)
    return policy


class Bot(EngineActor):
    def __init__(self) -> None:
        super().__init__()
        self.policy: BotPolicy | None = None

    def on_wired(self, sender: Any) -> None:
        self.policy = load_bot(self.wired().settings)

    def on_deliver(self, item: Deliver, sender: Any) -> None:
        payload = item.payload
        if not isinstance(payload, BotDelivery) or self.policy is None or payload.bot_role is None:
            return
        view = BotView(payload.bot_role, payload.agent_requested)
        for event in payload.events:
            for command in self.policy.react(event, view):
                self.post(payload.conversation, Apply(command))
