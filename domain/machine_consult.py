"""The commands of a consult: an agent asks a named agent or a queue for help.

:class:`~domain.commands.Consult` by a present agent asks for an agent (the named one alone,
or one of the queue's) without touching the conversation's queue or the customer's timers;
the agent that takes the request joins as ASSISTANT (the consulting agent is PRIMARY), and
offers, RONA and NO_AGENT_AVAILABLE work as for any routed request (their events carry
``consult: true``; the bot is not told of them). :class:`~domain.commands.ConcludeConsult` by
the consulting agent ends it: TRANSFER (the consulted agent becomes PRIMARY and the consulting
one leaves with CONSULT_TRANSFER, into WRAP_UP when wrap-up is enabled), CONFERENCE (both stay)
or END (the consulted agent leaves with CONSULT_ENDED). Either agent leaving ends the consult.
"""

from __future__ import annotations

from domain.commands import ConcludeConsult, Consult
from domain.effects import Effect
from domain.enums import ConsultOutcome, Role, UnsubscribeReason
from domain.errors import IllegalTransition
from domain.events import EventName
from domain.machine_parts import Bucket
from domain.machine_transfer import MachineTransfer


class MachineConsult(MachineTransfer):
    def _on_consult(self, cmd: Consult, now: int) -> list[Effect]:
        agent = self._agent_participant(cmd, cmd.agent_id)
        if not agent.present:
            raise self._refuse(
                IllegalTransition, cmd, f"agent {agent.id} in role {agent.role} cannot consult"
            )
        if self.consulting is not None:
            raise self._refuse(IllegalTransition, cmd, f"agent {self.consulting} is consulting")
        self._check_target(cmd, agent.id, cmd.queue, cmd.to_agent_id, cmd.note)
        self._begin(now)
        self.consulting = agent.id
        self._emit(
            Bucket.OWN,
            EventName.CONSULT_REQUESTED,
            self._agent(agent.id),
            None,
            {
                "agent_id": agent.id,
                "queue": cmd.queue,
                "to_agent_id": cmd.to_agent_id,
                "note": cmd.note,
            },
        )
        self._request_agent(
            cmd.queue if cmd.queue is not None else self.queue,
            self._agent(agent.id),
            Bucket.FOLLOW,
            (agent.id,),
            targets=() if cmd.to_agent_id is None else (cmd.to_agent_id,),
            note=cmd.note,
            consult=True,
        )
        return self._finish()

    def _on_conclude_consult(self, cmd: ConcludeConsult, now: int) -> list[Effect]:
        agent = self._agent_participant(cmd, cmd.agent_id)
        self._check_enum(cmd, "outcome", cmd.outcome, ConsultOutcome)
        consulted_id = self.consulted
        if agent.id != self.consulting or consulted_id is None:
            raise self._refuse(
                IllegalTransition, cmd, f"agent {agent.id} has no consult with an agent joined"
            )
        consulted = self._participants[consulted_id]
        if cmd.outcome is ConsultOutcome.TRANSFER and not agent.present:
            raise self._refuse(IllegalTransition, cmd, f"agent {agent.id} is not present")
        self._begin(now)
        self.consulting = self.consulted = None
        self._emit(
            Bucket.OWN,
            EventName.CONSULT_CONCLUDED,
            self._agent(agent.id),
            None,
            {"agent_id": agent.id, "consulted_agent_id": consulted_id, "outcome": cmd.outcome},
        )
        present, wrapping = self.agents_present, self.agents_wrapping_up
        if cmd.outcome is ConsultOutcome.TRANSFER:
            reason = UnsubscribeReason.CONSULT_TRANSFER
            if self.policy.wrap_up_enabled:
                self._start_wrap_up(agent, Bucket.PARTICIPANT, promote=False)
            else:
                self._unsubscribe(agent, reason, Bucket.PARTICIPANT, promote=False)
            self._set_role(consulted, Role.PRIMARY, Bucket.PARTICIPANT)
            self._after_agents_left(present, wrapping, reason)
        elif cmd.outcome is ConsultOutcome.END:
            reason = UnsubscribeReason.CONSULT_ENDED
            self._unsubscribe(consulted, reason, Bucket.PARTICIPANT, promote=False)
            self._after_agents_left(present, wrapping, reason)
        return self._finish()
