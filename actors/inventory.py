"""The inventory's views: a live conversation in one line (what ``Gateway.conversations``
lists), the filter a conversation host applies, and a customer's archived rooms.

Times are ISO-8601 UTC like every snapshot; ``age_seconds`` is measured on the host's clock
(the virtual one under a simulation).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from actors.conversation import ConversationEntity
from actors.messages.survey import ConversationFilter
from actors.snapshots import record_dict
from domain.conversation import ConversationMachine
from infra.archive_store import ArchiveStore
from infra.timefmt import iso

__all__ = ["customer_rooms", "live_conversations", "matches", "summary"]


def summary(machine: ConversationMachine, now: int) -> dict[str, Any]:
    """One live conversation: ids, state, queue, agents, whether it waits for an agent, age."""
    return {
        "id": machine.id,
        "room_id": machine.room_id,
        "customer_id": machine.customer_id,
        "state": "" if machine.state is None else machine.state.value,
        "queue": machine.queue,
        "agents": machine.subscribed_agents(),
        "waiting_for_agent": machine.pending_request is not None,
        "created_at": iso(machine.created_at),
        "age_seconds": max(now - machine.created_at, 0) / 1000,
        "events": machine.seq,
    }


def matches(machine: ConversationMachine, where: ConversationFilter, now: int) -> bool:
    """Whether ``where`` matches the conversation (None matches any value)."""
    state = None if machine.state is None else machine.state.value
    return (
        (where.state is None or where.state == state)
        and (where.queue is None or where.queue == machine.queue)
        and (where.customer_id is None or where.customer_id == machine.customer_id)
        and (where.agent_id is None or where.agent_id in machine.subscribed_agents())
        and now - machine.created_at >= where.min_age_ms
    )


def live_conversations(
    entities: Iterable[object], where: ConversationFilter, now: int
) -> list[dict[str, Any]]:
    """The summaries of the conversations among ``entities`` that ``where`` matches, the
    oldest first, at most ``where.limit``."""
    found = [
        e.machine
        for e in entities
        if isinstance(e, ConversationEntity) and matches(e.machine, where, now)
    ]
    found.sort(key=lambda machine: (machine.created_at, machine.id))
    return [summary(machine, now) for machine in found[: max(where.limit, 0)]]


def customer_rooms(archive: ArchiveStore, customer_id: str) -> dict[str, Any] | None:
    """A customer's room and the conversations archived in it (snapshots without their
    events: ``seq`` says how many); None if the archive knows no room of the customer."""
    room = archive.contact_center_room_of(customer_id)
    if room is None:
        return None
    return {
        "customer_id": customer_id,
        "rooms": [
            {
                "room_id": room.id,
                "type": str(room.type),
                "mode": str(room.mode),
                "created_at": iso(room.created_at),
                "conversations": [record_dict(c) for c in archive.room_conversations(room.id)],
            }
        ],
    }
