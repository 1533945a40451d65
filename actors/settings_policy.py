"""The conversation state machine's view of the configuration: settings to :class:`Policy`."""

from __future__ import annotations

from collections.abc import Iterable
from types import MappingProxyType
from typing import Any

from domain.enums import ThresholdAction
from domain.policy import Policy, Threshold
from infra.config import Settings
from infra.timefmt import seconds_to_ms


def policy_of(settings: Settings) -> Policy:
    """The state machine's view of the configuration (times in ms)."""
    timers, routing = settings.timers, settings.routing
    return Policy(
        bot_enabled=settings.bot.enabled,
        wrap_up_enabled=timers.wrap_up_enabled,
        wrap_up_ms=seconds_to_ms(timers.wrap_up_seconds),
        hold_max_ms=seconds_to_ms(timers.hold_max_seconds),
        agent_sla_ms=seconds_to_ms(timers.agent_sla_seconds),
        agent_sla_thresholds=_thresholds(timers.agent_sla_thresholds),
        queue_sla_ms=MappingProxyType(
            {
                name: seconds_to_ms(queue.agent_sla_seconds)
                for name, queue in routing.queues.items()
                if queue.agent_sla_seconds is not None
            }
        ),
        inactivity_ms=seconds_to_ms(timers.customer_inactivity_seconds),
        channel_inactivity_ms=MappingProxyType(
            {k: seconds_to_ms(v) for k, v in timers.customer_inactivity_channels.items()}
        ),
        inactivity_thresholds=_thresholds(timers.customer_inactivity_thresholds),
        default_queue=routing.default_queue,
    )


def _thresholds(items: Iterable[Any]) -> tuple[Threshold, ...]:
    return tuple(Threshold(t.percent, ThresholdAction(t.action)) for t in items)
