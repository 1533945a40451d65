"""How messages travel: addresses of hosted entities, delivery envelopes, batches, answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domain.errors import ErrorKind
from domain.pickling import pickle_by_field_names


@dataclass(frozen=True, slots=True)
class Ref:
    """Where an entity lives: the hosting actor's address and the entity's id."""

    address: Any  # a Thespian ActorAddress
    entity: str


@dataclass(frozen=True, slots=True)
class ReplyTo:
    """Where the answer to a call goes: the caller's address and its call id."""

    address: Any
    call_id: str


@dataclass(frozen=True, slots=True)
class Deliver:
    """One payload for one entity (or for the receiving actor itself when entity is "")."""

    entity: str
    payload: Any
    reply_to: ReplyTo | None = None


@dataclass(frozen=True, slots=True, repr=False)
class Batch:
    now: int
    items: tuple[Deliver, ...]

    def __repr__(self) -> str:
        # Thespian formats every message it sends or receives for its DEBUG log, whether or
        # not DEBUG is on; a dataclass repr would walk every item (7-23 % of a process's CPU)
        return f"Batch(now={self.now}, {len(self.items)} items)"


@dataclass(frozen=True, slots=True)
class Reply:
    call_id: str
    value: Any = None


@dataclass(frozen=True, slots=True)
class Failure:
    """A refusal or error; the gateway raises ``domain.errors.error_for(kind, message)``."""

    call_id: str
    kind: ErrorKind
    message: str


pickle_by_field_names(globals())  # after every class above: see domain.pickling
