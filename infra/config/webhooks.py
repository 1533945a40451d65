"""The ``webhooks:`` list of ``config.yaml``: where conversation events are POSTed, checked
and turned into :class:`WebhookSettings`.

Each entry::

    - name: crm                      # unique; names the webhook's durable cursor
      url: https://crm.example/cx    # http or https
      secret: "at least 16 characters"   # the HMAC-SHA256 key of the signature
      events: [CUSTOMER_MESSAGE]     # event names delivered; [] (default): every event
      timeout_seconds: 10            # one POST's limit
      backoff_seconds: 1             # the first retry's wait, doubled at each failure ...
      max_backoff_seconds: 300       # ... up to this
      max_backlog: 10000             # conversations waiting before the oldest are passed over
      include_agent_only: false      # whether events for the agents alone (whispers) go too
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from domain.events import for_customer
from infra.config.checks import (
    Check,
    InvalidValue,
    as_mapping,
    boolean,
    duration,
    expected,
    integer,
    non_empty,
    record,
    sequence,
)

#: The shortest secret accepted.
MIN_SECRET_CHARS = 16


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    name: str
    url: str
    secret: str
    events: frozenset[str]
    timeout_seconds: float
    backoff_seconds: float
    max_backoff_seconds: float
    max_backlog: int
    #: Whether events marked for the agents and supervisors alone (``data.audience``
    #: ``AGENTS``: whispers, a supervisor's read receipts) are delivered too.
    include_agent_only: bool

    def wants(self, event_name: str) -> bool:
        """Whether an event of this name is delivered (no filter: every event)."""
        return not self.events or event_name in self.events

    def delivers(self, event_name: str, data: Mapping[str, object]) -> bool:
        """Whether an event of this name and ``data`` is delivered: the name filter, and
        the agents' own events only with ``include_agent_only``."""
        return self.wants(event_name) and (self.include_agent_only or for_customer(data))


def _url(value: Any, path: str) -> str:
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise expected(path, "an http:// or https:// URL", value)
    return str(value)


def _secret(value: Any, path: str) -> str:
    if not isinstance(value, str) or len(value) < MIN_SECRET_CHARS:
        # The value is never shown: it is a secret.
        raise InvalidValue(path, f"expected a string of at least {MIN_SECRET_CHARS} characters")
    return value


def _names(value: Any, path: str) -> list[str]:
    items = sequence(value, path, "a list of event names")
    return [non_empty(item, f"{path}[{index}]") for index, item in enumerate(items)]


_FIELDS: Mapping[str, Check] = {
    "name": non_empty,
    "url": _url,
    "secret": _secret,
    "events": _names,
    "timeout_seconds": duration,
    "backoff_seconds": duration,
    "max_backoff_seconds": duration,
    "max_backlog": integer(1),
    "include_agent_only": boolean,
}
_DEFAULTS: Mapping[str, Any] = {
    "events": [],
    "timeout_seconds": 10,
    "backoff_seconds": 1,
    "max_backoff_seconds": 300,
    "max_backlog": 10000,
    "include_agent_only": False,
}


def webhooks(value: Any, path: str) -> list[dict[str, Any]]:
    """The check of ``webhooks``: a list of entries, names unique."""
    clean: list[dict[str, Any]] = []
    for index, entry in enumerate(sequence(value, path, "a list of webhooks")):
        where = f"{path}[{index}]"
        webhook = record({**_DEFAULTS, **as_mapping(entry, where)}, where, _FIELDS)
        if any(seen["name"] == webhook["name"] for seen in clean):
            raise InvalidValue(f"{where}.name", f"duplicate webhook name {webhook['name']!r}")
        if webhook["max_backoff_seconds"] < webhook["backoff_seconds"]:
            raise InvalidValue(f"{where}.max_backoff_seconds", "must be >= backoff_seconds")
        clean.append(webhook)
    return clean


def webhook_settings(clean: list[dict[str, Any]]) -> tuple[WebhookSettings, ...]:
    return tuple(
        WebhookSettings(**{**entry, "events": frozenset(entry["events"])}) for entry in clean
    )
