"""The commands by which an agent hands its conversation on to another agent or a queue.

A direct transfer (:class:`~domain.commands.Transfer`): the PRIMARY agent leaves with reason
DIRECT_TRANSFER (into WRAP_UP when wrap-up is enabled) and the conversation asks for an agent
of the queue, or for the named agent alone, with the transferring agent's note. The customer
is told (CONVERSATION_TRANSFERRED goes to its channel sessions like every event); no
inactivity timer starts because of it, and a request nobody takes in time ends with
NO_AGENT_AVAILABLE as any other does.
"""

from __future__ import annotations

from domain.commands import Transfer
from domain.effects import Effect
from domain.enums import Role, UnsubscribeReason
from domain.errors import IllegalTransition, InvalidArgument
from domain.events import EventName
from domain.machine_parts import Bucket, Participant
from domain.machine_reports import MachineReports


class MachineTransfer(MachineReports):
    def _on_transfer(self, cmd: Transfer, now: int) -> list[Effect]:
        agent = self._transferring_agent(cmd)
        self._begin(now)
        self._emit(
            Bucket.OWN,
            EventName.CONVERSATION_TRANSFERRED,
            self._agent(agent.id),
            None,
            {
                "agent_id": agent.id,
                "queue": cmd.queue,
                "to_agent_id": cmd.to_agent_id,
                "note": cmd.note,
            },
        )
        present, wrapping = self.agents_present, self.agents_wrapping_up
        if self.policy.wrap_up_enabled:
            self._start_wrap_up(agent, Bucket.PARTICIPANT)
        else:
            self._unsubscribe(agent, UnsubscribeReason.DIRECT_TRANSFER, Bucket.PARTICIPANT)
        self._after_agents_left(present, wrapping, UnsubscribeReason.DIRECT_TRANSFER)
        self._request_agent(
            cmd.queue if cmd.queue is not None else self.queue,
            self._agent(agent.id),
            Bucket.FOLLOW,
            (agent.id,),
            targets=() if cmd.to_agent_id is None else (cmd.to_agent_id,),
            note=cmd.note,
        )
        return self._finish()

    def _transferring_agent(self, cmd: Transfer) -> Participant:
        """The PRIMARY agent asking, once every part of ``cmd`` is checked (else a refusal)."""
        agent = self._agent_participant(cmd, cmd.agent_id)
        if not agent.present or agent.role is not Role.PRIMARY:
            raise self._refuse(
                IllegalTransition, cmd, f"agent {agent.id} in role {agent.role} cannot transfer"
            )
        self._check_target(cmd, agent.id, cmd.queue, cmd.to_agent_id, cmd.note)
        return agent

    def _check_target(
        self, cmd: object, agent_id: str, queue: str | None, to_agent_id: str | None, note: str
    ) -> None:
        """A transfer's or consult's target: exactly one of a queue and another agent that is
        not subscribed, a note, and no request pending."""
        if (queue is None) == (to_agent_id is None):
            raise self._refuse(InvalidArgument, cmd, "give exactly one of queue and to_agent_id")
        if queue is not None:
            self._check_name(cmd, "queue", queue)
        if to_agent_id is not None:
            self._check_name(cmd, "to_agent_id", to_agent_id)
            if to_agent_id == agent_id:
                raise self._refuse(InvalidArgument, cmd, f"agent {agent_id} names itself")
            if self.participant_role(to_agent_id) is not None:
                raise self._refuse(
                    IllegalTransition, cmd, f"agent {to_agent_id} is already subscribed"
                )
        self._check_text(cmd, note)
        if self.pending_request is not None:
            raise self._refuse(IllegalTransition, cmd, "an agent request is already pending")
