"""Settings translated once into the domain's values (infra/policies.py)."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from domain.enums import ThresholdAction
from domain.policy import Threshold
from infra.config import load_config
from infra.policies import bot_script, conversation_policy, routing_settings

CONFIG: dict[str, Any] = {
    "timers": {
        "agent_sla": {"seconds": 90, "thresholds": [{"percent": 50, "action": "NOTIFY_AGENT"}]},
        "customer_inactivity": {"seconds": 30, "channels": {"WHATSAPP": 86400}},
        "wrap_up": {"enabled": True, "seconds": 1.5},
        "hold": {"max_seconds": 600},
    },
    "routing": {
        "accept_timeout_seconds": 20,
        "queues": {"billing": {"agent_sla_seconds": 45, "priority": 3}, "sales": {"priority": 1}},
        "default_queue": "billing",
    },
    "bot": {"welcome": "Hi", "agent_keywords": ["human"]},
}


def test_the_conversation_policy_has_the_configured_times_in_ms() -> None:
    policy = conversation_policy(load_config(CONFIG))
    assert (policy.agent_sla_ms, policy.inactivity_ms, policy.wrap_up_ms) == (90_000, 30_000, 1_500)
    assert policy.wrap_up_enabled and policy.hold_max_ms == 600_000
    assert policy.queue_sla_ms == MappingProxyType({"billing": 45_000})
    assert policy.channel_inactivity_ms == MappingProxyType({"WHATSAPP": 86_400_000})
    assert policy.agent_sla_thresholds == (Threshold(50, ThresholdAction.NOTIFY_AGENT),)
    assert policy.default_queue == "billing"


def test_the_routing_settings_have_times_in_ms_and_each_queue_priority() -> None:
    routing = routing_settings(load_config(CONFIG))
    assert (routing.accept_timeout_ms, routing.request_ttl_ms) == (20_000, 120_000)
    assert dict(routing.priorities) == {"billing": 3, "sales": 1}


def test_the_bot_script_asks_for_agents_in_the_default_queue() -> None:
    script = bot_script(load_config(CONFIG))
    assert (script.welcome, script.agent_keywords, script.queue) == ("Hi", ("human",), "billing")
