"""``webhooks:`` and ``storage.retention_days`` in config.yaml: defaults filled in, mistakes
refused naming the key (and never showing a secret)."""

from __future__ import annotations

from typing import Any

import pytest

from infra.config import ConfigError, load_config

SECRET = "a-secret-of-some-length"


def _hook(**fields: Any) -> dict[str, Any]:
    return {"name": "crm", "url": "https://crm.example/cx", "secret": SECRET, **fields}


def test_a_webhook_gets_the_defaults_it_does_not_name() -> None:
    (webhook,) = load_config({"webhooks": [_hook(events=["CUSTOMER_MESSAGE"])]}).webhooks
    assert webhook.events == frozenset({"CUSTOMER_MESSAGE"})
    assert (webhook.timeout_seconds, webhook.backoff_seconds) == (10, 1)
    assert (webhook.max_backoff_seconds, webhook.max_backlog) == (300, 10000)
    assert webhook.wants("CUSTOMER_MESSAGE") and not webhook.wants("AGENT_MESSAGE")


def test_no_webhooks_and_no_retention_by_default() -> None:
    settings = load_config(None)
    assert settings.webhooks == ()
    assert settings.storage.retention_days is None


@pytest.mark.parametrize(
    ("entry", "key", "problem"),
    [
        (_hook(url="ftp://crm.example/x"), "webhooks[0].url", "http:// or https://"),
        (_hook(secret="short"), "webhooks[0].secret", "at least 16 characters"),
        (_hook(max_backlog=0), "webhooks[0].max_backlog", "integer >= 1"),
        (_hook(events=[""]), "webhooks[0].events[0]", "non-empty string"),
        (_hook(colour="red"), "webhooks[0]", "colour"),
        (_hook(max_backoff_seconds=0.5), "webhooks[0].max_backoff_seconds", "backoff_seconds"),
    ],
)
def test_a_bad_webhook_is_refused_naming_its_key(
    entry: dict[str, Any], key: str, problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem) as refused:
        load_config({"webhooks": [entry]})
    assert refused.value.key.startswith(key)


def test_two_webhooks_of_one_name_are_refused() -> None:
    with pytest.raises(ConfigError, match="duplicate webhook name 'crm'"):
        load_config({"webhooks": [_hook(), _hook(url="https://other.example/")]})


def test_a_refused_secret_is_not_shown() -> None:
    with pytest.raises(ConfigError) as refused:
        load_config({"webhooks": [_hook(secret="hunter2-short")]})
    assert refused.value.key == "webhooks[0].secret"
    assert "hunter2" not in str(refused.value)


def test_retention_days_must_be_a_positive_integer() -> None:
    assert load_config({"storage": {"retention_days": 30}}).storage.retention_days == 30
    with pytest.raises(ConfigError, match=r"storage\.retention_days"):
        load_config({"storage": {"retention_days": 0}})
