"""What an agent's desk asks of the engine beyond joining and messaging: the part of
:class:`runtime.gateway.Gateway`'s public API that lists an agent's conversations and hands a
conversation on to another agent or queue."""

from __future__ import annotations

from typing import Any

from actors.messages import AgentQuery
from domain.commands import Command
from runtime.gateway_args import text as _text
from runtime.gateway_core import EngineLink


class Desk:
    engine: EngineLink

    def agent_conversations(self, agent_id: str) -> list[dict[str, Any]]:
        """The agent's conversations, each ``{conversation_id, state, role, request_id}``:
        those it is subscribed to (``role`` its role) and those offered to it and not yet
        accepted (``role`` None, ``request_id`` the offer's request, to accept with
        ``agent_join``), by conversation id."""
        _text("agent_id", agent_id)
        held: dict[str, Any] = self.engine.engine("agents", AgentQuery(agent_id))
        offers: dict[str, str] = held["offers"]
        listed = []
        for conversation_id in sorted({*held["conversations"], *held["monitoring"], *offers}):
            snapshot = self.conversation(conversation_id)
            role = next(
                (
                    p["role"]
                    for p in snapshot["participants"]
                    if p["id"] == agent_id and p["state"] == "SUBSCRIBED"
                ),
                None,
            )
            listed.append(
                {
                    "conversation_id": conversation_id,
                    "state": snapshot["state"],
                    "role": role,
                    "request_id": offers.get(conversation_id) if role is None else None,
                }
            )
        return listed

    # provided by Gateway and its Queries

    def conversation(self, conversation_id: str) -> dict[str, Any]:
        raise NotImplementedError

    def _apply(self, conversation_id: str, command: Command) -> None:
        raise NotImplementedError
