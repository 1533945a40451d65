"""An agent's own commands on a conversation it takes part in: hold and resume (ON_HOLD),
leave, and the wrap-up that ends its part (a layer of
:class:`~domain.conversation.ConversationMachine`)."""

from __future__ import annotations

from domain.commands import AgentLeave, ApplyWrapUp, Hold, Resume
from domain.effects import Effect
from domain.enums import VOLUNTARY_LEAVE_REASONS, ResumeReason, UnsubscribeReason
from domain.errors import IllegalTransition, InvalidArgument
from domain.events import EventName
from domain.limits import MAX_NAME
from domain.machine_parts import Bucket
from domain.machine_presence import MachinePresence
from domain.machine_timers import HOLD_KEY
from domain.transitions import Trigger

__all__ = ["MachineAgent"]


class MachineAgent(MachinePresence):
    def _on_hold(self, cmd: Hold, now: int) -> list[Effect]:
        agent = self._agent_participant(cmd, cmd.agent_id)
        if not agent.present:
            raise self._refuse(
                IllegalTransition, cmd, f"agent {agent.id} in role {agent.role} cannot hold"
            )
        max_seconds = self.policy.hold_max_ms / 1000
        seconds_ok = isinstance(cmd.seconds, int | float) and not isinstance(cmd.seconds, bool)
        if not seconds_ok or not 0 < cmd.seconds <= max_seconds:
            raise self._refuse(
                InvalidArgument,
                cmd,
                f"hold seconds must be > 0 and <= {max_seconds:g}, got {cmd.seconds!r}",
            )
        self._begin(now)
        self._emit(
            Bucket.OWN,
            EventName.CONVERSATION_PAUSED,
            self._agent(agent.id),
            None,
            {"seconds": cmd.seconds},
        )
        self._transition(Trigger.HOLD, EventName.CONVERSATION_PAUSED)
        self._start(HOLD_KEY, round(cmd.seconds * 1000))
        return self._finish()

    def _on_resume(self, cmd: Resume, now: int) -> list[Effect]:
        agent = self._agent_participant(cmd, cmd.agent_id)
        if not agent.present:
            raise self._refuse(
                IllegalTransition, cmd, f"agent {agent.id} in role {agent.role} cannot resume"
            )
        self._begin(now)
        self._resume(ResumeReason.AGENT, self._agent(agent.id))
        return self._finish()

    def _on_agent_leave(self, cmd: AgentLeave, now: int) -> list[Effect]:
        agent = self._agent_participant(cmd, cmd.agent_id)
        self._check_enum(cmd, "reason", cmd.reason, UnsubscribeReason)
        voluntary = cmd.reason in VOLUNTARY_LEAVE_REASONS
        if voluntary and agent.wrapping_up:
            raise self._refuse(
                IllegalTransition, cmd, f"agent {agent.id} is in WRAP_UP: apply_wrap_up ends it"
            )
        self._begin(now)
        present, wrapping = self.agents_present, self.agents_wrapping_up
        if voluntary and agent.present and self.policy.wrap_up_enabled:
            self._start_wrap_up(agent, Bucket.OWN)
        else:
            self._unsubscribe(agent, cmd.reason, Bucket.OWN)
        self._after_agents_left(present, wrapping, cmd.reason)
        return self._finish()

    def _on_apply_wrap_up(self, cmd: ApplyWrapUp, now: int) -> list[Effect]:
        agent = self._agent_participant(cmd, cmd.agent_id)
        if not agent.wrapping_up:
            raise self._refuse(IllegalTransition, cmd, f"agent {agent.id} is not in role WRAP_UP")
        if (
            not all(isinstance(c, str) and 0 < len(c) <= MAX_NAME for c in cmd.codes)
            or len(cmd.codes) > 32
        ):
            raise self._refuse(InvalidArgument, cmd, "codes must be at most 32 non-empty strings")
        self._check_text(cmd, cmd.note)
        self._begin(now)
        present, wrapping = self.agents_present, self.agents_wrapping_up
        self._emit(
            Bucket.OWN,
            EventName.WRAPUP_APPLIED,
            self._agent(agent.id),
            None,
            {"agent_id": agent.id, "codes": list(cmd.codes), "note": cmd.note},
        )
        self._unsubscribe(agent, UnsubscribeReason.WRAP_UP_APPLIED, Bucket.PARTICIPANT)
        self._after_agents_left(present, wrapping, UnsubscribeReason.WRAP_UP_APPLIED)
        return self._finish()
