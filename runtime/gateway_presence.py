"""What supervisors, agents and customers say beside their messages: the part of
:class:`runtime.gateway.Gateway`'s public API for whispers, a supervisor's barge-in, typing
indicators and read receipts.

A supervisor joins with ``agent_join(..., role="SILENT_MONITOR")`` (listens) or
``role="WHISPER"`` (listens and whispers) and leaves with ``agent_leave``; in between
:meth:`Participation.barge_in` makes it an agent of the conversation."""

from __future__ import annotations

from actors.messages import Apply
from domain.commands import BargeIn, Command, ReadReceipt, Typing, Whisper
from domain.limits import MAX_ID
from runtime.gateway_args import message_text as _message_text
from runtime.gateway_args import text as _text
from runtime.gateway_types import BadArgumentError
from runtime.ids import IdSource


class Participation:
    _ids: IdSource

    def whisper(self, agent_id: str, conversation_id: str, text: str) -> None:
        """An agent (PRIMARY, ASSISTANT) or a WHISPER supervisor writes to the conversation's
        other agents and supervisors (WHISPER_MESSAGE): the customer never receives it."""
        _text("agent_id", agent_id)
        _message_text(text)
        self._apply(conversation_id, Whisper(agent_id, text, self._ids.new("msg")))

    def barge_in(self, agent_id: str, conversation_id: str) -> None:
        """A supervisor (SILENT_MONITOR or WHISPER) takes part as an agent: PRIMARY when no
        agent is PRIMARY, else ASSISTANT (SUPERVISOR_BARGED_IN)."""
        _text("agent_id", agent_id)
        self._apply(conversation_id, BargeIn(agent_id))

    def agent_typing(self, agent_id: str, conversation_id: str) -> None:
        """The agent is typing: pushed (TYPING) to the customer's sessions (not a supervisor's)
        and the other agents, at most once per sender every few seconds; never archived."""
        _text("agent_id", agent_id)
        self._apply(conversation_id, Typing(agent_id=agent_id))

    def customer_typing(self, channel_session_id: str) -> None:
        """The customer is typing on this session: pushed (TYPING) to the conversation's agents
        and supervisors, at most once per session every few seconds; never archived."""
        _text("channel_session_id", channel_session_id, limit=MAX_ID)
        self._to_session(channel_session_id, Apply(Typing(session_id=channel_session_id)))

    def agent_read(self, agent_id: str, conversation_id: str, seq: int) -> None:
        """The agent has read the conversation's events up to ``seq`` (READ_RECEIPT)."""
        _text("agent_id", agent_id)
        _seq(seq)
        self._apply(conversation_id, ReadReceipt(seq, agent_id=agent_id))

    def customer_read(self, channel_session_id: str, seq: int) -> None:
        """The customer has read the conversation's events up to ``seq`` (READ_RECEIPT)."""
        _text("channel_session_id", channel_session_id, limit=MAX_ID)
        _seq(seq)
        receipt = ReadReceipt(seq, session_id=channel_session_id)
        self._to_session(channel_session_id, Apply(receipt))

    # provided by Gateway

    def _apply(self, conversation_id: str, command: Command) -> None:
        raise NotImplementedError

    def _to_session(self, session_id: str, payload: Apply) -> None:
        raise NotImplementedError


def _seq(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadArgumentError(f"seq must be an int >= 1, got {value!r:.40}")
