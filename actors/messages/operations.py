"""What an operator asks of a running engine: a drain, and a reload of its configuration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domain.pickling import pickle_by_field_names


@dataclass(frozen=True, slots=True)
class DrainEngine:
    """To the TopicMonitor (in a ``Deliver``): ``start`` stops it opening new conversations
    (live ones finish); either way it answers ``{"draining": bool, "live": int}``, the live
    conversations counting until each is CLOSED and archived. Starting twice is starting once."""

    start: bool = True


@dataclass(frozen=True, slots=True)
class ReloadConfig:
    """To the TopicMonitor (in a ``Deliver``): the configuration read again. Refused, naming the
    key, when a key that cannot change at run time differs from the engine's; otherwise
    answered with the keys that changed, and :class:`Reload` goes to every actor."""

    settings: Any  # infra.config.Settings


@dataclass(frozen=True, slots=True)
class Reload:
    """Actor to actor: use these settings from now on (for what is built from them after this:
    new conversations, the bot's next answers, the Routers' next decisions). A parent passes
    it on to its children; receiving settings already in use changes nothing."""

    settings: Any  # infra.config.Settings


pickle_by_field_names(globals())  # after every class above: see domain.pickling
