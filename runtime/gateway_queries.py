"""What a gateway reads from the engine, and activities it adds: the part of
:class:`runtime.gateway.Gateway`'s public API that asks a live conversation, or the archive
once it is closed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from actors.messages import (
    Apply,
    ArchivedActivity,
    ArchivedQuery,
    Directory,
    EventsQuery,
    ForgetCustomer,
    SnapshotQuery,
    Status,
    StatusQuery,
)
from domain.commands import AddActivity
from domain.enums import ParticipantType
from domain.ids import conversation_entity_id
from domain.limits import MAX_ID
from domain.records import Emitter
from runtime.gateway_args import after_seq as _after_seq
from runtime.gateway_args import payload as _payload
from runtime.gateway_args import text as _text
from runtime.gateway_core import EngineLink
from runtime.gateway_transport import Unreachable
from runtime.gateway_types import UnavailableError

_APP = Emitter("gateway", ParticipantType.APP)


class Queries:
    engine: EngineLink

    def add_activity(self, conversation_id: str, name: str, data: Mapping[str, Any]) -> None:
        _text("name", name)
        payload = _payload("data", data)
        live = Apply(AddActivity(name, payload, _APP))
        archived = ArchivedActivity(conversation_id, name, payload)
        self._query(conversation_id, live, archived)

    def conversation(self, conversation_id: str) -> dict[str, Any]:
        snapshot: dict[str, Any] = self._query(
            conversation_id, SnapshotQuery(), ArchivedQuery("conversation", conversation_id)
        )
        return snapshot

    def events(self, conversation_id: str, *, after_seq: int = 0) -> list[dict[str, Any]]:
        _after_seq(f"events refused for conversation {conversation_id}", after_seq)
        return self._query(  # type: ignore[no-any-return]
            conversation_id,
            EventsQuery(after_seq),
            ArchivedQuery("events", conversation_id, after_seq),
        )

    def forget_customer(self, customer_id: str) -> dict[str, int]:
        """Delete everything the archive holds of the customer (conversations with their
        events, rooms, identities); how many of each went. Refused (IllegalTransitionError)
        while one of their conversations is live, and then nothing is deleted."""
        _text("customer_id", customer_id, limit=MAX_ID)
        forget = ForgetCustomer(customer_id)
        return self.engine.engine("monitor", forget, customer=customer_id)  # type: ignore[no-any-return]

    def history(self, room_id: str) -> list[dict[str, Any]]:
        _text("room_id", room_id, limit=MAX_ID)
        return self.engine.engine("monitor", ArchivedQuery("history", room_id))  # type: ignore[no-any-return]

    def status(self) -> dict[str, dict[str, int]]:
        link = self.engine
        conversations: Status = link.engine("monitor", StatusQuery())
        routers = link.ask_direct(link.addresses.monitor, Directory(link.call_id()))["routers"]
        agents: Counter[str] = Counter()
        queues: Counter[str] = Counter()
        for router in routers:  # each owns its queues: their counts add up
            try:
                routing: Status = link.call(router, "", StatusQuery())
            except Unreachable as error:
                raise UnavailableError(f"the engine's router does not answer: {error}") from None
            agents.update(routing.agents)
            queues.update(routing.queues)
        return {
            "conversations": dict(sorted(conversations.conversations.items())),
            "agents": dict(sorted(agents.items())),
            "queues": dict(sorted(queues.items())),
            "storage": dict(sorted(conversations.storage.items())),
        }

    def _query(self, conversation_id: str, live_query: Any, archived_query: Any) -> Any:
        """Ask the live conversation, or the archive once it is closed (also if it closes
        between the lookup and the call)."""
        return self.engine.at_conversation(
            conversation_id,
            conversation_entity_id(conversation_id),
            live_query,
            "",
            archived=archived_query,
        )
