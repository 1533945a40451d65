"""The settings objects: frozen dataclasses, one per ``config.yaml`` section.

They are built only by :func:`infra.config.load_config`, after the whole document has been
checked, and travel to actor processes inside messages (pickled).
"""

from __future__ import annotations

import copyreg
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from domain.policy import Threshold
from infra.config.webhooks import WebhookSettings


def _read_only(mapping: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    return MappingProxyType(mapping)


# Settings travel to actor processes inside messages (pickled): teach pickle the read-only
# mappings the settings use; they are rebuilt by ``_read_only`` on the other side.
copyreg.pickle(MappingProxyType, lambda proxy: (_read_only, (dict(proxy),)))


@dataclass(frozen=True, slots=True)
class SystemSettings:
    base: str
    admin_port: int
    bind: str
    allow_wide_bind: bool
    convention_address: str | None
    node: str | None
    offers_hosts: bool
    weight: int
    offers_agent_hosts: bool
    offers_archivists: bool
    heartbeat_ms: int
    suspect_after: int
    dead_after: int
    restart_limit: int
    restart_window_seconds: int


@dataclass(frozen=True, slots=True)
class PlacementSettings:
    routers: int
    per_host: int
    hosts: int
    archivists: int  # archive writers; a conversation's writes go to one (by a stable hash)
    agent_hosts: int = 1
    #: Room desks deciding get-or-create; a customer's rooms all go to one (by a stable hash).
    room_desks: int = 1
    #: Hosts a dead host's conversations are rebuilt on side by side (at least, when enough).
    restore_hosts: int = 2


@dataclass(frozen=True, slots=True)
class StorageSettings:
    archive: Path
    journal: Path
    fsync: str
    fsync_interval_ms: int
    salvage_journal: bool
    postgres: str | None
    #: Closed conversations older than this many days are swept from the archive; None: kept.
    retention_days: int | None
    #: True: no journal and the archive in this process's memory (simulations; nothing survives).
    memory: bool = False


@dataclass(frozen=True, slots=True)
class BotSettings:
    enabled: bool
    welcome: str
    agent_keywords: tuple[str, ...]
    answer: str
    hold_notice: str
    resume_notice: str
    no_agent_notice: str
    class_path: str | None


@dataclass(frozen=True, slots=True)
class TimerSettings:
    agent_sla_seconds: float
    agent_sla_thresholds: tuple[Threshold, ...]
    customer_inactivity_seconds: float
    customer_inactivity_channels: Mapping[str, float]
    customer_inactivity_thresholds: tuple[Threshold, ...]
    wrap_up_enabled: bool
    wrap_up_seconds: float
    hold_max_seconds: float


@dataclass(frozen=True, slots=True)
class QueueSettings:
    agent_sla_seconds: float | None
    priority: int


@dataclass(frozen=True, slots=True)
class RoutingSettings:
    auto_accept: bool
    accept_timeout_seconds: float
    request_ttl_seconds: float
    queues: Mapping[str, QueueSettings]
    default_queue: str
    position_interval_seconds: float | None = None  # None: customers are not told
    sticky_agent_seconds: float | None = None  # None: no sticky agent


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    listen: str
    token: str | None
    max_frame_bytes: int
    auth_timeout_seconds: float
    max_connections: int
    max_unauthenticated: int
    max_unauthenticated_per_peer: int
    max_connections_per_peer: int
    inflight_bytes: int
    total_inflight_bytes: int
    outbound_bytes: int
    total_outbound_bytes: int


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """The daemon's HTTP endpoint (Prometheus metrics, health): ``port`` None is off."""

    bind: str
    port: int | None
    service_level_seconds: float
    ready_timeout_seconds: float


@dataclass(frozen=True, slots=True)
class WebSettings:
    listen: str
    token_key: str | None
    token_ttl_seconds: int
    max_body_bytes: int
    tls_certfile: Path | None
    tls_keyfile: Path | None


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    format: str
    level: str
    file: Path | None
    #: The levels file ``cx log-level`` writes (infra.logs); set by the daemon, not a key.
    levels: Path | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything ``config.yaml`` says; ``source``: the file name, ``<dict>`` or ``<defaults>``."""

    system: SystemSettings
    placement: PlacementSettings
    storage: StorageSettings
    bot: BotSettings
    timers: TimerSettings
    routing: RoutingSettings
    gateway: GatewaySettings
    web: WebSettings
    logging: LoggingSettings
    metrics: MetricsSettings
    source: str
    webhooks: tuple[WebhookSettings, ...] = ()

    def queue_sla_seconds(self, queue: str) -> float:
        """Agent SLA duration for agents routed from ``queue`` (queue override, else default)."""
        settings = self.routing.queues.get(queue)
        if settings is not None and settings.agent_sla_seconds is not None:
            return settings.agent_sla_seconds
        return self.timers.agent_sla_seconds

    def queue_priority(self, queue: str) -> int:
        """Priority of ``queue`` (higher is served first); unconfigured queues have 0."""
        settings = self.routing.queues.get(queue)
        return 0 if settings is None else settings.priority

    def inactivity_seconds(self, channel: str) -> float:
        """Customer inactivity duration on ``channel`` (per channel override, else default)."""
        channels = self.timers.customer_inactivity_channels
        return channels.get(channel, self.timers.customer_inactivity_seconds)
