"""The domain's view of the configuration: settings translated once into domain values.

The actors build what the pure domain needs from :class:`~infra.config.Settings` only through
these functions: the conversation :class:`~domain.policy.Policy` (every conversation host),
the Router's :class:`~domain.routing.RoutingPolicy` and the bot's
:class:`~domain.bot.BotScript`. Times become int milliseconds here, and nowhere else.
"""

from __future__ import annotations

from types import MappingProxyType

from domain import routing
from domain.bot import BotScript
from domain.policy import Policy
from infra import config
from infra.timefmt import seconds_to_ms


def conversation_policy(settings: config.Settings) -> Policy:
    """The state machine's view of the configuration (times in ms)."""
    timers, queues = settings.timers, settings.routing.queues
    return Policy(
        bot_enabled=settings.bot.enabled,
        wrap_up_enabled=timers.wrap_up_enabled,
        wrap_up_ms=seconds_to_ms(timers.wrap_up_seconds),
        hold_max_ms=seconds_to_ms(timers.hold_max_seconds),
        agent_sla_ms=seconds_to_ms(timers.agent_sla_seconds),
        agent_sla_thresholds=timers.agent_sla_thresholds,
        queue_sla_ms=MappingProxyType(
            {
                name: seconds_to_ms(queue.agent_sla_seconds)
                for name, queue in queues.items()
                if queue.agent_sla_seconds is not None
            }
        ),
        inactivity_ms=seconds_to_ms(timers.customer_inactivity_seconds),
        channel_inactivity_ms=MappingProxyType(
            {k: seconds_to_ms(v) for k, v in timers.customer_inactivity_channels.items()}
        ),
        inactivity_thresholds=timers.customer_inactivity_thresholds,
        default_queue=settings.routing.default_queue,
    )


def routing_settings(settings: config.Settings) -> routing.RoutingPolicy:
    """The Router's routing book settings (times in ms, priorities by queue)."""
    configured = settings.routing
    return routing.RoutingPolicy(
        auto_accept=configured.auto_accept,
        accept_timeout_ms=seconds_to_ms(configured.accept_timeout_seconds),
        request_ttl_ms=seconds_to_ms(configured.request_ttl_seconds),
        priorities={name: queue.priority for name, queue in configured.queues.items()},
        service_level_ms=seconds_to_ms(settings.metrics.service_level_seconds),
        position_interval_ms=_ms_or_none(configured.position_interval_seconds),
        sticky_agent_ms=_ms_or_none(configured.sticky_agent_seconds),
    )


def _ms_or_none(seconds: float | None) -> int | None:
    return None if seconds is None else seconds_to_ms(seconds)


def bot_script(settings: config.Settings) -> BotScript:
    """What the bot says and listens for, and the queue it asks an agent in."""
    bot = settings.bot
    return BotScript(
        welcome=bot.welcome,
        answer=bot.answer,
        agent_keywords=tuple(bot.agent_keywords),
        hold_notice=bot.hold_notice,
        resume_notice=bot.resume_notice,
        no_agent_notice=bot.no_agent_notice,
        queue=settings.routing.default_queue,
    )
