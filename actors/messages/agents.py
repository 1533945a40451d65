"""Agents and routing: logins, presence, assignments, and the Router's requests."""

from __future__ import annotations

from dataclasses import dataclass

from actors.messages.envelope import Ref
from domain.enums import Role, UnsubscribeReason
from domain.pickling import pickle_by_field_names


@dataclass(frozen=True, slots=True)
class AgentLogin:
    agent_id: str
    queues: tuple[str, ...]
    max_conversations: int


@dataclass(frozen=True, slots=True)
class AgentPresence:
    """agent_ready / agent_not_ready / agent_logout from a gateway."""

    agent_id: str
    action: str  # READY, NOT_READY, LOGOUT


@dataclass(frozen=True, slots=True)
class AgentJoin:
    agent_id: str
    conversation: Ref
    role: Role | None


@dataclass(frozen=True, slots=True)
class AgentQuery:
    """agent_conversations from a gateway: the agent's conversations and offers."""

    agent_id: str


@dataclass(frozen=True, slots=True)
class Released:
    """The conversation unsubscribed the agent."""

    conversation_id: str
    reason: UnsubscribeReason


@dataclass(frozen=True, slots=True)
class Counted:
    """The agent, a supervisor there, barged into the conversation: it now counts against
    the agent's capacity."""

    conversation_id: str


@dataclass(frozen=True, slots=True)
class AgentAvailable:
    agent_id: str
    ready: bool
    free: int
    queues: tuple[str, ...]
    agent: Ref


@dataclass(frozen=True, slots=True)
class AgentGone:
    agent_id: str


@dataclass(frozen=True, slots=True)
class Assignment:
    """The Router gives a request to an agent (offer=False: subscribe now)."""

    request_id: str
    conversation: Ref
    queue: str
    offer: bool


@dataclass(frozen=True, slots=True)
class Reattach:
    """A conversation rebuilt from its journal asks for its agents again."""

    conversation: Ref
    counted: tuple[str, ...]  # agents whose limit this conversation counts against
    monitors: tuple[str, ...] = ()  # supervisors (not counted)


@dataclass(frozen=True, slots=True)
class AgentRef:
    """An agent entity tells a rebuilt conversation where it is now."""

    agent_id: str
    agent: Ref


@dataclass(frozen=True, slots=True)
class EnqueueRequest:
    request_id: str
    conversation: Ref
    queue: str
    excluded: tuple[str, ...] = ()
    agents: tuple[str, ...] = ()  # the agents the request may go to (none: the queue's)
    room_id: str = ""  # a customer's request (not a consult): its room, for the sticky agent


@dataclass(frozen=True, slots=True)
class CancelRequest:
    request_id: str


@dataclass(frozen=True, slots=True)
class RoutingOutcome:
    """An agent entity tells the Router how an assignment ended."""

    request_id: str
    agent_id: str
    accepted: bool
    refused: bool = False  # declined because the conversation would not have this agent


pickle_by_field_names(globals())  # after every class above: see domain.pickling
