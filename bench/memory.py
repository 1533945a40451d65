"""The memory one conversation holds: its entity and state machine after 10 and after 2,000
customer and agent messages.

::

    python -m bench.memory                      # after 10 and after 2,000 messages
    python -m bench.memory --messages 10,2000,20000

One conversation is opened on a stand-in host in this process (what it is asked to send, arm
or journal is dropped), an agent joins, and customer and agent messages alternate, one
(virtual) second apart. After each count the memory still allocated since just before the
conversation was opened is printed (tracemalloc, after a garbage collection): what the entity
and its machine keep. The figure must not grow with the number of messages: a conversation
keeps its last ``RECENT_EVENTS`` events (actors.event_window) and no history of commands.
"""

from __future__ import annotations

import argparse
import gc
import tracemalloc
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from actors.conversation import ConversationEntity
from actors.event_window import RECENT_EVENTS
from actors.messages import Failure, Ref, ReplyTo, Wiring
from domain.commands import AgentMessage, CustomerMessage, StartSession, SubscribeAgent
from domain.conversation import ConversationMachine
from domain.enums import Channel
from domain.policy import Policy

DEFAULT_COUNTS = (10, 2_000)
AGENT = "agent-1"
SESSION = "cs-1"


class _Discarding:
    """A host that carries nothing out: only the conversation's own memory is measured."""

    def __init__(self) -> None:
        self.clock = 1_000_000

    def wired(self) -> Wiring:
        return Wiring(None, None, None, None, True, 0)

    def now(self) -> int:
        return self.clock

    def ref(self, entity_id: str) -> Ref:
        return Ref(None, entity_id)

    def post(self, target: Ref, payload: Any, reply_to: ReplyTo | None = None) -> None:
        pass

    def local(self, entity_id: str, payload: Any, reply_to: ReplyTo | None = None) -> None:
        pass

    def reply(self, reply_to: ReplyTo | None, value: Any = None) -> None:
        pass

    def fail(self, reply_to: ReplyTo | None, failure: Failure) -> None:
        raise AssertionError(failure.message)

    def refuse(self, reply_to: ReplyTo | None, kind: str, message: str) -> None:
        raise AssertionError(message)

    def arm(self, entity_id: str, key: Hashable, token: int, at: int, percent: int) -> None:
        pass

    def disarm(self, entity_id: str, key: Hashable) -> None:
        pass

    def count_events(self, events: list[Any]) -> None:
        pass

    def journal(self, conversation_id: str, record: dict[str, Any]) -> None:
        pass

    def journal_command(self, conversation_id: str, command: Any, now: int, effects: Any) -> None:
        pass

    def journal_records(self, conversation_id: str) -> list[dict[str, Any]]:
        return []

    def tell_bot(self, entity_id: str, told: Any) -> None:
        pass


@dataclass(frozen=True)
class Figure:
    messages: int
    bytes: int
    events_published: int
    events_in_memory: int


def measure(counts: Sequence[int]) -> list[Figure]:
    """The memory of one conversation after each of ``counts`` messages (ascending)."""
    figures: list[Figure] = []
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        host = _Discarding()
        machine, effects = ConversationMachine.open(
            conversation_id="conv-memory",
            room_id="room-memory",
            customer_id="cust-memory",
            first=StartSession(SESSION, Channel.WHATSAPP, "+15550100"),
            policy=Policy(),
            now=host.clock,
        )
        entity = ConversationEntity(machine)
        entity.perform(effects, host)
        assert entity.apply(SubscribeAgent(AGENT), None, host)
        sent = 0
        for count in sorted(counts):
            while sent < count:
                host.clock += 1_000
                command = (
                    CustomerMessage(SESSION, f"question {sent}", f"wamid-{sent}")
                    if sent % 2 == 0
                    else AgentMessage(AGENT, f"answer {sent}", f"reply-{sent}")
                )
                assert entity.apply(command, None, host)
                sent += 1
            gc.collect()
            used = tracemalloc.get_traced_memory()[0] - base
            figures.append(Figure(count, used, machine.seq, len(entity.events)))
    finally:
        tracemalloc.stop()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.memory", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument(
        "--messages",
        default=",".join(str(c) for c in DEFAULT_COUNTS),
        help="comma-separated message counts (default: 10,2000)",
    )
    options = parser.parse_args(argv)
    counts = [int(c) for c in options.messages.split(",")]
    print(f"one conversation (RECENT_EVENTS = {RECENT_EVENTS})")
    print(f"{'messages':>9} {'events':>8} {'in memory':>10} {'KiB':>9}")
    for f in measure(counts):
        print(
            f"{f.messages:>9,} {f.events_published:>8,} {f.events_in_memory:>10,}"
            f" {f.bytes / 1024:>9.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
