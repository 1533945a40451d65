"""The conversation bot as each conversation host runs it.

Every conversation host constructs one bot policy (the default bot, or the class named by
``bot.class_path``) and asks it, in its own process, what to answer to the events a command
of one of its conversations published (the machine's ``TellBot``); the commands go back to the
conversation through the host's local mailbox. No process is shared by every conversation's
bot traffic.
"""

from __future__ import annotations

import importlib
from typing import Protocol

from domain.bot import BotView, DefaultBot
from domain.commands import Command
from domain.effects import TellBot
from domain.records import Event
from infra.config import Settings
from infra.policies import bot_script


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


class HostedBot:
    """The bot of one conversation host: its policy, constructed once per host, answering the
    conversations of that host in the host's own process (no message leaves for it)."""

    def __init__(self, policy: BotPolicy) -> None:
        self.policy = policy

    def answer(self, told: TellBot) -> list[Command]:
        """The commands the bot sends its conversation for the events of one command, in order."""
        view = BotView(told.role, told.agent_requested)
        return [command for event in told.events for command in self.policy.react(event, view)]
