"""What an agent's desk asks of the engine beyond joining and messaging: the part of
:class:`runtime.gateway.Gateway`'s public API that lists an agent's conversations and hands a
conversation on to another agent or queue."""

from __future__ import annotations

from typing import Any

from actors.messages import AgentQuery
from domain.commands import Command, ConcludeConsult, Consult, Transfer
from domain.enums import ConsultOutcome
from runtime.gateway_args import message_text as _message_text
from runtime.gateway_args import text as _text
from runtime.gateway_core import EngineLink
from runtime.gateway_types import BadArgumentError


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

    def transfer(
        self,
        agent_id: str,
        conversation_id: str,
        *,
        queue: str | None = None,
        to_agent_id: str | None = None,
        note: str = "",
    ) -> None:
        """The conversation's PRIMARY agent hands it on to ``queue`` or to the agent
        ``to_agent_id`` (exactly one), with ``note`` for whoever takes it: the agent leaves
        (DIRECT_TRANSFER; WRAP_UP when wrap-up is enabled) and the conversation asks for an
        agent, the bot PRIMARY meanwhile."""
        _text("agent_id", agent_id)
        _target("transfer", conversation_id, queue, to_agent_id)
        _message_text(note)
        self._apply(conversation_id, Transfer(agent_id, queue, to_agent_id, note))

    def consult(
        self,
        agent_id: str,
        conversation_id: str,
        *,
        queue: str | None = None,
        to_agent_id: str | None = None,
        note: str = "",
    ) -> None:
        """A present agent asks ``queue`` or the agent ``to_agent_id`` (exactly one) for help,
        with ``note``: the agent that takes the request joins as ASSISTANT. End it with
        :meth:`consult_transfer`, :meth:`conference` or :meth:`end_consult`."""
        _text("agent_id", agent_id)
        _target("consult", conversation_id, queue, to_agent_id)
        _message_text(note)
        self._apply(conversation_id, Consult(agent_id, queue, to_agent_id, note))

    def consult_transfer(self, agent_id: str, conversation_id: str) -> None:
        """The consulted agent becomes PRIMARY; ``agent_id``, who consulted, leaves
        (CONSULT_TRANSFER; WRAP_UP when wrap-up is enabled)."""
        self._conclude(agent_id, conversation_id, ConsultOutcome.TRANSFER)

    def conference(self, agent_id: str, conversation_id: str) -> None:
        """The consult ends with both agents staying (the consulted one ASSISTANT)."""
        self._conclude(agent_id, conversation_id, ConsultOutcome.CONFERENCE)

    def end_consult(self, agent_id: str, conversation_id: str) -> None:
        """The consult ends: the consulted agent leaves (CONSULT_ENDED)."""
        self._conclude(agent_id, conversation_id, ConsultOutcome.END)

    def _conclude(self, agent_id: str, conversation_id: str, outcome: ConsultOutcome) -> None:
        _text("agent_id", agent_id)
        self._apply(conversation_id, ConcludeConsult(agent_id, outcome))

    # provided by Gateway and its Queries

    def conversation(self, conversation_id: str) -> dict[str, Any]:
        raise NotImplementedError

    def _apply(self, conversation_id: str, command: Command) -> None:
        raise NotImplementedError


def _target(what: str, conversation_id: str, queue: str | None, to_agent_id: str | None) -> None:
    """Exactly one of ``queue`` and ``to_agent_id``, each a name."""
    if (queue is None) == (to_agent_id is None):
        raise BadArgumentError(
            f"{what} refused on conversation {conversation_id}: give exactly one of queue and"
            " to_agent_id"
        )
    if queue is not None:
        _text("queue", queue)
    if to_agent_id is not None:
        _text("to_agent_id", to_agent_id)
