"""The commands of presence: typing indicators and read receipts, from the customer (by its
channel session) or an agent.

:class:`~domain.commands.Typing` returns one :class:`~domain.effects.Signal` (TYPING) and
publishes nothing: it is pushed at once and never journaled, archived or numbered. One sender
(a session or an agent) is pushed at most once per ``TYPING_INTERVAL_MS``; an indicator
sooner than that is accepted and changes nothing. The customer's typing goes to the agents
and supervisors; an agent's (PRIMARY, ASSISTANT, WRAP_UP) also to the customer's live
sessions; a supervisor's to the agents and supervisors alone.

:class:`~domain.commands.ReadReceipt` publishes READ_RECEIPT naming the last seq read (at
most the conversation's last): archived and delivered like any event, a supervisor's marked
``audience: AGENTS`` so that the customer never learns it is there. Neither moves a timer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from domain.commands import BargeIn, ReadReceipt, Typing, Whisper
from domain.effects import Effect, Signal
from domain.enums import SUPERVISOR_ROLES
from domain.errors import InvalidArgument
from domain.events import AGENTS_AUDIENCE, AUDIENCE_KEY, EventName
from domain.limits import TYPING_INTERVAL_MS
from domain.machine_parts import Bucket
from domain.machine_whisper import MachineWhisper
from domain.records import Emitter


class MachinePresence(MachineWhisper):
    #: when each sender (a session id or an agent id) was last pushed as typing; transient,
    #: so never part of the conversation's record
    typing_at: Mapping[str, int] = MappingProxyType({})

    def _on_typing(self, cmd: Typing, now: int) -> list[Effect]:
        emitter, session_id, supervisor = self._sender(cmd, cmd.agent_id, cmd.session_id)
        sender = session_id if session_id is not None else emitter.id
        last = self.typing_at.get(sender)
        if last is not None and now - last < TYPING_INTERVAL_MS:
            return []
        self.typing_at = {**self.typing_at, sender: now}
        to_customer = session_id is None and not supervisor
        sessions = tuple(self.live_session_ids()) if to_customer else ()
        return [Signal(EventName.TYPING, emitter, session_id, now, sessions)]

    def _on_read_receipt(self, cmd: ReadReceipt, now: int) -> list[Effect]:
        emitter, session_id, supervisor = self._sender(cmd, cmd.agent_id, cmd.session_id)
        seq_ok = isinstance(cmd.seq, int) and not isinstance(cmd.seq, bool)
        if not seq_ok or not 0 < cmd.seq <= self.seq:
            raise self._refuse(
                InvalidArgument, cmd, f"seq must be an int from 1 to {self.seq}, got {cmd.seq!r:.40}"
            )
        self._begin(now)
        data: dict[str, object] = {"reader_id": session_id or emitter.id, "seq": cmd.seq}
        if supervisor:
            data[AUDIENCE_KEY] = AGENTS_AUDIENCE
        self._emit(Bucket.OWN, EventName.READ_RECEIPT, emitter, session_id, data)
        return self._finish()

    def _sender(
        self, cmd: object, agent_id: str | None, session_id: str | None
    ) -> tuple[Emitter, str | None, bool]:
        """Who sends ``cmd`` (exactly one of an agent and a live session), its session, and
        whether it is a supervisor (SILENT_MONITOR, WHISPER)."""
        if (agent_id is None) == (session_id is None):
            raise self._refuse(InvalidArgument, cmd, "give exactly one of agent_id and session_id")
        if session_id is not None:
            self._live_session(cmd, session_id)
            return self._customer(), session_id, False
        assert agent_id is not None
        agent = self._agent_participant(cmd, agent_id)
        return self._agent(agent.id), None, agent.role in SUPERVISOR_ROLES


#: The handlers of the commands of supervision and presence, for the machine's table.
PRESENCE_HANDLERS: Mapping[type[Any], Callable[[Any, Any, int], list[Effect]]] = MappingProxyType(
    {
        Whisper: MachinePresence._on_whisper,
        BargeIn: MachinePresence._on_barge_in,
        Typing: MachinePresence._on_typing,
        ReadReceipt: MachinePresence._on_read_receipt,
    }
)
