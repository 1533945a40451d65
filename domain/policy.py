"""The settings the state machine obeys, as plain values (built from ``config.yaml``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from domain.enums import Channel, ThresholdAction


@dataclass(frozen=True, slots=True)
class Threshold:
    percent: int  # 0 < percent < 100; 100 is always the expiry
    action: ThresholdAction


@dataclass(frozen=True, slots=True)
class Policy:
    bot_enabled: bool = True
    wrap_up_enabled: bool = False
    wrap_up_ms: int = 60_000
    hold_max_ms: int = 600_000
    agent_sla_ms: int = 60_000
    agent_sla_thresholds: tuple[Threshold, ...] = ()
    queue_sla_ms: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    inactivity_ms: int = 300_000
    channel_inactivity_ms: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    inactivity_thresholds: tuple[Threshold, ...] = ()
    default_queue: str = "default"
    max_data_keys: int = 10
    #: The agents a private room's agent requests go to, without the queue (none: the queue).
    advisors: tuple[str, ...] = ()

    def sla_ms(self, queue: str | None) -> int:
        if queue is None:
            return self.agent_sla_ms
        return self.queue_sla_ms.get(queue, self.agent_sla_ms)

    def inactivity_for(self, channel: Channel) -> int:
        return self.channel_inactivity_ms.get(channel.value, self.inactivity_ms)
