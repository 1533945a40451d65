"""The commands of supervision: whispers among a conversation's agents and supervisors, and
a supervisor's barge-in.

:class:`~domain.commands.Whisper` by an agent (PRIMARY or ASSISTANT) or a WHISPER supervisor
publishes WHISPER_MESSAGE, marked ``audience: AGENTS`` (see :func:`domain.events.for_customer`):
every subscribed agent and supervisor is pushed it and the archive keeps it, but no channel
session gets it, the bot is not told of it and no timer moves. A SILENT_MONITOR only listens.

:class:`~domain.commands.BargeIn` by a supervisor (SILENT_MONITOR or WHISPER) makes it an agent
of the conversation: PRIMARY when no agent is PRIMARY, else ASSISTANT. When no agent was
present it arrives as a direct join does (ACTIVE, the bot ASSISTANT, a pending request
withdrawn, the agent SLA started). From then on the conversation takes one of the agent's
slots (:class:`~domain.effects.CountAgent`), even beyond its ``max_conversations``: a
supervisor barges in when it must.
"""

from __future__ import annotations

from domain.commands import BargeIn, Whisper
from domain.effects import CancelRoute, CountAgent, Effect
from domain.enums import PRESENT_ROLES, SUPERVISOR_ROLES, Role
from domain.errors import IllegalTransition
from domain.events import AGENTS_AUDIENCE, AUDIENCE_KEY, EventName
from domain.machine_consult import MachineConsult
from domain.machine_parts import Bucket
from domain.timers import TimerKind
from domain.transitions import Trigger

#: The roles that may whisper: the agents and the supervisors who whisper.
WHISPERING_ROLES: frozenset[Role] = PRESENT_ROLES | {Role.WHISPER}


class MachineWhisper(MachineConsult):
    def _on_whisper(self, cmd: Whisper, now: int) -> list[Effect]:
        agent = self._agent_participant(cmd, cmd.agent_id)
        if agent.role not in WHISPERING_ROLES:
            raise self._refuse(
                IllegalTransition, cmd, f"agent {agent.id} in role {agent.role} cannot whisper"
            )
        self._check_text(cmd, cmd.text)
        self._begin(now)
        self._emit(
            Bucket.OWN,
            EventName.WHISPER_MESSAGE,
            self._agent(agent.id),
            None,
            {"text": cmd.text, "message_id": cmd.message_id, AUDIENCE_KEY: AGENTS_AUDIENCE},
        )
        return self._finish()

    def _on_barge_in(self, cmd: BargeIn, now: int) -> list[Effect]:
        supervisor = self._agent_participant(cmd, cmd.agent_id)
        if supervisor.role not in SUPERVISOR_ROLES:
            raise self._refuse(
                IllegalTransition,
                cmd,
                f"agent {supervisor.id} in role {supervisor.role} is not a supervisor",
            )
        t = self._begin(now)
        arriving = not self.agents_present
        role = Role.PRIMARY if self._primary() is None else Role.ASSISTANT
        self._emit(
            Bucket.OWN,
            EventName.SUPERVISOR_BARGED_IN,
            self._agent(supervisor.id),
            None,
            {"agent_id": supervisor.id, "from": supervisor.role.value, "role": role.value},
        )
        self._set_role(supervisor, role, Bucket.PARTICIPANT)
        t.effects.append(CountAgent(supervisor.id))
        if arriving:
            if self.pending_request is not None:  # it answers the need: withdraw the request
                self._withdraw_offer(taken_by=supervisor.id)
                t.effects.append(CancelRoute(self.pending_request, self.request_queue))
                self._request_over()
            self._transition(Trigger.AGENT_ARRIVED, EventName.SUPERVISOR_BARGED_IN)
            self._start_agent_sla()
            self._stop_all(TimerKind.CUSTOMER_SLA)
        return self._finish()
