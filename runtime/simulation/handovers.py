"""How simulated agents hand chats on: a direct transfer to another queue, and a consult
with an agent of another queue that ends in a consult-transfer or with the consulted agent
leaving.

At its first reply in a chat, the PRIMARY agent draws a transfer (its group's
``transfer.share``), else a consult (``consult.share``); a group with neither draws nothing,
so scenarios without them keep their event logs. A transfer replaces that reply (the next
agent answers); a consult does not. Once the consulted agent has joined as ASSISTANT, the
consulting agent's next reply concludes it: a consult-transfer (``consult.transfer``; the
consulted agent answers from then on) or the end of the consult.
"""

from __future__ import annotations

from runtime.simulation.customers import CustomerActions
from runtime.simulation.people import SimAgent, SimConversation

TRANSFER_NOTE = "Please take over: the customer needs this queue."
CONSULT_NOTE = "Could you help me with this one?"


class HandoverActions(CustomerActions):
    """What the simulated agents do to hand chats on."""

    def _hand_on(self, agent: SimAgent, c: SimConversation) -> bool:
        """Before ``agent`` replies in ``c``: transfer, consult or conclude a consult. True
        if the agent no longer replies (it transferred the chat or handed it to the agent it
        consulted)."""
        if c.consulting == agent.id:
            return self._conclude_consult(agent, c)
        group = agent.group
        if c.handover_drawn or c.on_hold or c.consulting is not None:
            return False
        if group.transfer_share == 0 and group.consult_share == 0:
            return False
        c.handover_drawn = True
        if group.transfer_share > 0 and self.rng.random() < group.transfer_share:
            queue = group.transfer_queue
            if self._call(c, self.gw.transfer, agent.id, c.cid, queue=queue, note=TRANSFER_NOTE):
                self._poll(c)
                return True
            return False
        if group.consult_share > 0 and self.rng.random() < group.consult_share:
            queue = group.consult_queue
            if self._call(c, self.gw.consult, agent.id, c.cid, queue=queue, note=CONSULT_NOTE):
                self._poll(c)
        return False

    def _conclude_consult(self, agent: SimAgent, c: SimConversation) -> bool:
        """The consulted agent has joined: a consult-transfer or the end of the consult."""
        if "ASSISTANT" not in c.agents.values() or c.on_hold:
            return False  # not joined yet (or it never will: NO_AGENT_AVAILABLE ends it)
        if self.rng.random() < agent.group.consult_transfer:
            if self._call(c, self.gw.consult_transfer, agent.id, c.cid):
                self._poll(c)
                self._agent_turn(c)  # the consulted agent, PRIMARY now, replies
                return True
        elif self._call(c, self.gw.end_consult, agent.id, c.cid):
            self._poll(c)
        return False

    def _agent_turn(self, c: SimConversation) -> None:
        raise NotImplementedError  # provided by AgentActions
