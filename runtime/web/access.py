"""Who may do what: each operation's rule for each role, checked before the engine is asked.

:func:`authorize` decides from the token's claims and the request's arguments alone, and
returns what remains to be checked against the engine (:class:`Need`): that a channel session
is on one of a connector's channels, or that a conversation has a session on them, that an
agent takes part in it, or that an agent is a member of a room. Anything not allowed here is
:class:`Forbidden` (HTTP 403).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from domain.enums import Role
from domain.errors import ErrorKind
from runtime.web.errors import WebError
from runtime.web.tokens import AccessRole, Claims

__all__ = ["RULES", "Forbidden", "Need", "authorize", "may_watch_agent", "may_watch_session"]


class Forbidden(WebError):
    """The token does not allow this (HTTP 403)."""

    kind = ErrorKind.AUTH

    def __init__(self, message: str) -> None:
        super().__init__("forbidden", message)


@dataclass(frozen=True, slots=True)
class Need:
    """What the engine must confirm before the operation is carried out (all None: nothing)."""

    #: this channel session is on one of the connector's channels
    session_on_channels: str | None = None
    #: this conversation has a channel session on one of the connector's channels
    conversation_on_channels: str | None = None
    #: the token's subject takes part (or took part) in this conversation
    participant_in: str | None = None
    #: ... or, for a read, the conversation is offered to it now (what it is asked to accept)
    or_offered: bool = False
    #: the token's subject is a member of this room (a TEAM room's member, a PRIVATE room's
    #: advisor)
    member_of: str | None = None


NOTHING: Final = Need()
Rule = Callable[[Claims, Mapping[str, Any]], Need]

#: The roles an agent may join a conversation in; a supervisor may use any join role.
_AGENT_JOIN_ROLES: Final = frozenset({Role.PRIMARY.value, Role.ASSISTANT.value})


def _refuse(claims: Claims, op: str, why: str) -> Forbidden:
    return Forbidden(f"{op} is not allowed to {claims.role.value} {claims.subject!r}: {why}")


def _anyone(claims: Claims, args: Mapping[str, Any]) -> Need:
    return NOTHING


def _as_itself(op: str) -> Rule:
    """The ``agent_id`` argument is the token's subject."""

    def rule(claims: Claims, args: Mapping[str, Any]) -> Need:
        if args.get("agent_id") != claims.subject:
            raise _refuse(claims, op, f"it acts only as agent {claims.subject!r}")
        return NOTHING

    return rule


def _agent_join(claims: Claims, args: Mapping[str, Any]) -> Need:
    _as_itself("agent_join")(claims, args)
    role = str(args.get("role", Role.PRIMARY.value)).upper()
    if claims.role is AccessRole.AGENT and role not in _AGENT_JOIN_ROLES:
        raise _refuse(claims, "agent_join", f"an agent joins as PRIMARY or ASSISTANT, not {role}")
    return NOTHING


def _own_session(claims: Claims, args: Mapping[str, Any]) -> Need:
    return Need(session_on_channels=args["channel_session_id"])


def _own_conversation(claims: Claims, args: Mapping[str, Any]) -> Need:
    return Need(conversation_on_channels=args["conversation_id"])


def _taking_part(claims: Claims, args: Mapping[str, Any]) -> Need:
    return Need(participant_in=args["conversation_id"])


def _taking_part_or_offered(claims: Claims, args: Mapping[str, Any]) -> Need:
    return Need(participant_in=args["conversation_id"], or_offered=True)


def _room_member(claims: Claims, args: Mapping[str, Any]) -> Need:
    return Need(member_of=args["room_id"])


def _own_rooms(claims: Claims, args: Mapping[str, Any]) -> Need:
    """An agent lists the rooms it is a member of, not a customer's (nor another agent's)."""
    if args.get("customer_id") is not None:
        raise _refuse(claims, "rooms", "a customer's rooms are listed to supervisors and operators")
    return _as_itself("rooms")(claims, args)


def _start_session(claims: Claims, args: Mapping[str, Any]) -> Need:
    channel = str(args.get("channel", "")).upper()
    if channel not in {c.value for c in claims.channels}:
        mine = ", ".join(sorted(c.value for c in claims.channels))
        raise _refuse(claims, "start_session", f"its channels are {mine}, not {channel[:32]}")
    return NOTHING


def _rules() -> dict[str, dict[AccessRole, Rule]]:
    connector, agent = AccessRole.CONNECTOR, AccessRole.AGENT
    supervisor, operator = AccessRole.SUPERVISOR, AccessRole.OPERATOR
    reading: dict[AccessRole, Rule] = {
        connector: _own_conversation, agent: _taking_part_or_offered, supervisor: _anyone,
        operator: _anyone,
    }
    rules: dict[str, dict[AccessRole, Rule]] = {
        "ping": dict.fromkeys(AccessRole, _anyone),
        "start_session": {connector: _start_session},
        "customer_message": {connector: _own_session},
        "end_session": {connector: _own_session},
        "request_agent": {connector: _own_conversation},
        "set_data": {connector: _own_conversation, agent: _taking_part, supervisor: _anyone},
        "add_activity": {connector: _own_conversation},
        "agent_join": {agent: _agent_join, supervisor: _agent_join},
        "end_conversation": {operator: _anyone},
        "conversation": reading,
        "events": reading,
        "history": {operator: _anyone},
        "status": {supervisor: _anyone, operator: _anyone},
        "create_room": {supervisor: _anyone, operator: _anyone},
        **{  # outbound contacts and team messages: as that agent
            op: {agent: _as_itself(op), supervisor: _as_itself(op)}
            for op in ("start_outbound", "room_message")
        },
        # rooms: an agent its own, and the members and history of a room it is a member of
        "rooms": {agent: _own_rooms, supervisor: _anyone, operator: _anyone},
        **{
            op: {agent: _room_member, supervisor: _anyone, operator: _anyone}
            for op in ("room_members", "room_history")
        },
        "customer_typing": {connector: _own_session},
        "customer_read": {connector: _own_session},
        "barge_in": {supervisor: _as_itself("barge_in")},
    }
    for op in ("metrics", "conversations", "agents", "queues"):  # watching the floor
        rules[op] = {supervisor: _anyone, operator: _anyone}
    for op in ("customer", "forget_customer", "drain_engine", "drain_status", "reload_config"):
        rules[op] = {operator: _anyone}  # a customer's history, and running the engine
    for op in ("agent_login", "agent_ready", "agent_not_ready", "agent_logout", "agent_message",
               "hold", "resume", "agent_leave", "apply_wrap_up", "agent_conversations",
               "transfer", "consult", "consult_transfer", "conference", "end_consult",
               "whisper", "agent_typing", "agent_read"):  # fmt: skip
        rules[op] = {agent: _as_itself(op), supervisor: _as_itself(op)}
    return rules


#: Each operation of the HTTP API: the roles that may call it, with the rule for each.
RULES: Final[Mapping[str, Mapping[AccessRole, Rule]]] = _rules()


def authorize(claims: Claims, op: str, args: Mapping[str, Any]) -> Need:
    """What the engine must still confirm for ``claims`` to call ``op`` with ``args``;
    Forbidden when the role may not call it, or not with these arguments."""
    rule = RULES.get(op, {}).get(claims.role)
    if rule is None:
        raise _refuse(claims, op, "not offered to this role")
    return rule(claims, args)


def may_watch_session(claims: Claims, channel_session_id: str) -> Need:
    """A channel session's pushed events: its connector, or any supervisor or operator."""
    if claims.role is AccessRole.CONNECTOR:
        return Need(session_on_channels=channel_session_id)
    if claims.role in (AccessRole.SUPERVISOR, AccessRole.OPERATOR):
        return NOTHING
    raise _refuse(claims, "watching a channel session", "only connectors, supervisors, operators")


def may_watch_agent(claims: Claims, agent_id: str) -> None:
    """An agent's pushed events: that agent (or supervisor) only."""
    if claims.role not in (AccessRole.AGENT, AccessRole.SUPERVISOR) or agent_id != claims.subject:
        raise _refuse(claims, "watching an agent", f"it watches only agent {claims.subject!r}")
