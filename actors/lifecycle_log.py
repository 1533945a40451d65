"""A conversation's story in the log: one line at ``info`` per step an operator follows.

Each event a conversation publishes is logged once, by the host that publishes it, with the
conversation id, its sequence number and only the fields named here: ids, states, reasons and
queues, never a message's text, a customer's address or a token. The steps at ``info``:

- ``conversation_opened`` (the first TOPIC_STATE_CHANGED), ``conversation_state_changed``,
  ``conversation_closing`` and ``conversation_closed`` (archived: the close has committed);
- ``agent_requested``, ``agent_offered``, ``agent_assigned`` (AGENT_SUBSCRIBED), ``rona``,
  ``no_agent_available``: routing;
- ``conversation_transferred`` (an agent leaving by DIRECT_TRANSFER), ``agent_left``,
  ``participant_role_changed``, ``conversation_ended`` (END_CONVERSATION), and the expiries of
  the agent SLA and of a customer's inactivity.

Every other event (messages, timers starting and stopping, ...) is logged at ``debug`` as
``event`` with its name and sequence number alone.
"""

from __future__ import annotations

from collections.abc import Mapping

import structlog

from domain.events import EventName
from domain.records import Event
from infra.logs import enabled

LOGGER = "cx.conversation"
log = structlog.get_logger(LOGGER)

_INFO: Mapping[str, tuple[str, tuple[str, ...]]] = {
    EventName.AGENT_REQUESTED: ("agent_requested", ("queue", "request_id")),
    EventName.AGENT_OFFERED: ("agent_offered", ("queue", "agent_id")),
    EventName.AGENT_SUBSCRIBED: ("agent_assigned", ("agent_id", "role")),
    EventName.RONA: ("rona", ("queue", "agent_id")),
    EventName.NO_AGENT_AVAILABLE: ("no_agent_available", ("queue",)),
    EventName.PARTICIPANT_ROLE_CHANGED: ("participant_role_changed", ("participant_id", "from", "to")),
    EventName.END_CONVERSATION: ("conversation_ended", ("by",)),
    EventName.AGENT_SLA_EXPIRED: ("agent_sla_expired", ()),
    EventName.CUSTOMER_SLA_EXPIRED: ("customer_inactivity_expired", ()),
}
_STATE_FIELDS = ("from", "to", "reason")


def _step(event: Event) -> tuple[str, tuple[str, ...]] | None:
    if event.name == EventName.TOPIC_STATE_CHANGED:
        if event.data.get("from") is None:
            return "conversation_opened", ("to",)
        to = event.data.get("to")
        if to == "CLOSING":
            return "conversation_closing", _STATE_FIELDS
        if to == "CLOSED":
            return "conversation_closed", _STATE_FIELDS
        return "conversation_state_changed", _STATE_FIELDS
    if event.name == EventName.AGENT_UNSUBSCRIBED:
        if event.data.get("reason") == "DIRECT_TRANSFER":
            return "conversation_transferred", ("agent_id",)
        return "agent_left", ("agent_id", "reason")
    return _INFO.get(event.name)


def log_published(event: Event) -> None:
    """Log ``event``, just published: its lifecycle step at info, anything else at debug."""
    step = _step(event)
    if step is None:
        if enabled(LOGGER, "debug"):
            log.debug(
                "event", conversation_id=event.conversation_id, seq=event.seq, name=event.name
            )
        return
    if not enabled(LOGGER, "info"):
        return
    message, fields = step
    log.info(
        message,
        conversation_id=event.conversation_id,
        room_id=event.room_id,
        seq=event.seq,
        **{name: event.data.get(name) for name in fields},
    )
