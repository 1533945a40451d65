"""The engine's id schemes, each written once: how an id is made and how it is read back.

- **Entity ids** address an entity inside a host (``Ref(host address, entity id)``):
  ``c:<conversation id>``, ``s:<channel session id>``, ``a:<agent id>``.
- **Subscription ids** name what a gateway subscribed to: ``session:<channel session id>``
  (that session's conversation's events) or ``agent:<agent id>`` (every conversation the agent
  is in).
- **Event ids** are ``<conversation id>:<seq>``; **agent request ids** ``<conversation id>/r<n>``.

Reading an id that does not follow its scheme raises :class:`MalformedIdError` naming the id
and the forms expected. The gateway draws the ids inside these (``conv-9f3a51c2e07b4d18``: see
``runtime.ids``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from domain.errors import CxError, ErrorKind


class MalformedIdError(CxError, ValueError):
    """An id that does not follow its scheme."""

    kind = ErrorKind.BAD_ARGUMENT

    def __init__(self, what: str, value: object, expected: str) -> None:
        self.what = what
        self.value = value
        self.expected = expected
        super().__init__(f"{value!r:.80} is not {what}: expected {expected}")

    def __reduce__(self) -> tuple[type[MalformedIdError], tuple[str, object, str]]:
        return (type(self), (self.what, self.value, self.expected))


class EntityKind(StrEnum):
    """The kind of a hosted entity; the value is its id's prefix (before the colon)."""

    CONVERSATION = "c"
    SESSION = "s"
    AGENT = "a"


class SubscriptionKind(StrEnum):
    """What a subscription follows; the value is its id's prefix (before the colon)."""

    SESSION = "session"
    AGENT = "agent"


_ENTITY_KINDS: Final = {f"{kind.value}:": kind for kind in EntityKind}
_ENTITY_FORMS: Final = ", ".join(f"{kind.value}:<id>" for kind in EntityKind)
_SUBSCRIPTION_KINDS: Final = {kind.value: kind for kind in SubscriptionKind}
_SUBSCRIPTION_FORMS: Final = " or ".join(f"{kind.value}:<id>" for kind in SubscriptionKind)

# --- entity ids ------------------------------------------------------------------------------


def entity_id(kind: EntityKind, ident: str) -> str:
    return f"{kind.value}:{ident}"


def conversation_entity_id(conversation_id: str) -> str:
    return f"c:{conversation_id}"


def session_entity_id(session_id: str) -> str:
    return f"s:{session_id}"


def agent_entity_id(agent_id: str) -> str:
    return f"a:{agent_id}"


def parse_entity_id(value: str) -> tuple[EntityKind, str]:
    """``(kind, id)`` of an entity id; MalformedIdError if it is not one."""
    kind = _ENTITY_KINDS.get(value[:2]) if isinstance(value, str) else None
    if kind is None or len(value) == 2:
        raise MalformedIdError("an entity id", value, _ENTITY_FORMS)
    return kind, value[2:]


def entity_kind(value: str) -> EntityKind | None:
    """The kind of an entity id, None if it is not one (a cheap test, never raises)."""
    kind = _ENTITY_KINDS.get(value[:2])
    return kind if kind is not None and len(value) > 2 else None


def conversation_id_of(value: str) -> str:
    """The conversation id inside a conversation's entity id (``c:<id>``)."""
    if not (isinstance(value, str) and value.startswith("c:") and len(value) > 2):
        raise MalformedIdError("a conversation entity id", value, "c:<conversation id>")
    return value[2:]


# --- subscription ids ------------------------------------------------------------------------


def subscription_id(kind: SubscriptionKind, ident: str) -> str:
    return f"{kind.value}:{ident}"


def session_subscription(session_id: str) -> str:
    return subscription_id(SubscriptionKind.SESSION, session_id)


def agent_subscription(agent_id: str) -> str:
    return subscription_id(SubscriptionKind.AGENT, agent_id)


def parse_subscription(value: object) -> tuple[SubscriptionKind, str]:
    """``(kind, id)`` of a subscription id; MalformedIdError if it is not one."""
    prefix, colon, ident = value.partition(":") if isinstance(value, str) else ("", "", "")
    kind = _SUBSCRIPTION_KINDS.get(prefix)
    if kind is None or not colon or not ident:
        raise MalformedIdError("a subscription", value, _SUBSCRIPTION_FORMS)
    return kind, ident


# --- event and agent request ids -------------------------------------------------------------


def event_id(conversation_id: str, seq: int) -> str:
    return f"{conversation_id}:{seq}"


def agent_request_id(conversation_id: str, number: int) -> str:
    return f"{conversation_id}/r{number}"
