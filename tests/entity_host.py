"""A stand-in host for one conversation entity in tests (not a test module)."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from actors.messages import Failure, Ref, ReplyTo, Wiring
from domain.commands import Command
from domain.effects import Effect
from infra.journal_records import command_record


class RecordingHost:
    """A host for one entity: it records what the entity asks of it."""

    def __init__(self) -> None:
        self.clock = 10_000
        self.failures: list[Failure] = []
        self.journaled: list[dict[str, Any]] = []
        self.posted: list[Any] = []
        self.replies: list[Any] = []

    def wired(self) -> Wiring:
        return Wiring(None, "monitor", "router", "agents", True, 0)

    def now(self) -> int:
        return self.clock

    def ref(self, entity_id: str) -> Ref:
        return Ref("here", entity_id)

    def post(self, target: Ref, payload: Any, reply_to: ReplyTo | None = None) -> None:
        self.posted.append(payload)

    def local(self, entity_id: str, payload: Any, reply_to: ReplyTo | None = None) -> None:
        self.posted.append(payload)

    def reply(self, reply_to: ReplyTo | None, value: Any = None) -> None:
        if reply_to is not None:
            self.replies.append(value)

    def fail(self, reply_to: ReplyTo | None, failure: Failure) -> None:
        self.failures.append(failure)

    def refuse(self, reply_to: ReplyTo | None, kind: str, message: str) -> None:
        self.failures.append(Failure("", kind, message))

    def arm(self, entity_id: str, key: Hashable, token: int, at: int, percent: int) -> None:
        pass

    def disarm(self, entity_id: str, key: Hashable) -> None:
        pass

    def journal(self, conversation_id: str, record: dict[str, Any]) -> None:
        self.journaled.append(record)

    def journal_command(
        self, conversation_id: str, command: Command, now: int, effects: list[Effect]
    ) -> None:
        self.journal(conversation_id, command_record(conversation_id, command, now, effects))

    def journal_records(self, conversation_id: str) -> list[dict[str, Any]]:
        return list(self.journaled)

    def tell_bot(self, entity_id: str, told: Any) -> None:
        self.posted.append(told)

    def count_events(self, events: list[Any]) -> None:
        pass
