"""Which of the customer's channel sessions an agent's answer goes out on.

An agent answers on every channel session of the conversation by default; naming one of the
customer's live channel sessions (``AgentMessage.channel_session_id``) sends the answer there
instead, whichever session the customer wrote on last: the AGENT_MESSAGE event carries that
session's id, and the connectors of the other sessions leave it alone.
"""

from __future__ import annotations

from domain.commands import AgentMessage
from domain.machine_base import MachineBase


def reply_session(machine: MachineBase, cmd: AgentMessage) -> str | None:
    """The channel session ``cmd`` answers on (None: all); refused (unknown, or ENDED) before
    anything changes."""
    if cmd.channel_session_id is None:
        return None
    return machine._live_session(cmd, cmd.channel_session_id).id
