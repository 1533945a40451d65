"""What must hold of stored conversations after any fault: the checks of the chaos runs and of
simulations with ``faults:``, defined once.

- nothing acknowledged is lost: every acknowledged customer message (and agent message, where
  the caller knows its text) is stored exactly once;
- no event is stored twice: a customer message id appears once per conversation;
- sequences are gap free: a conversation's events are numbered 1, 2, 3, ...;
- states chain: each ``TOPIC_STATE_CHANGED`` starts from the state the previous one reached,
  and the last one is the conversation's state;
- one live conversation per room: the spans during which a room's conversations were live
  (created until closed) do not overlap.

Each check returns problems as sentences naming the conversation or room; none means it held.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["INVARIANTS", "StoredEvent", "conversation_problems", "room_problems"]

#: The invariants, as a simulation's summary names them.
INVARIANTS = (
    "nothing_acknowledged_lost",
    "no_event_stored_twice",
    "sequences_gap_free",
    "states_chain",
    "one_live_conversation_per_room",
)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """What the checks read of one stored event."""

    seq: int
    name: str
    data: Mapping[str, Any]


def conversation_problems(
    conversation_id: str,
    events: Sequence[StoredEvent],
    state: str | None,
    *,
    acknowledged: Iterable[tuple[str, str]] = (),
    acknowledged_customer_messages: int = 0,
    figures: Counter[str] | None = None,
) -> list[tuple[str, str]]:
    """(invariant, problem) pairs of one conversation's stored ``events``.

    ``state``: what its record says (None: not known, e.g. still live). ``acknowledged``:
    ``("customer_message", message id)`` or ``("agent_message", text)`` pairs the caller was
    told were stored; ``acknowledged_customer_messages``: how many customer messages were
    acknowledged where their ids are not known (at least that many must be stored).
    ``figures`` (if given) counts what was checked."""
    problems: list[tuple[str, str]] = []
    seqs = [e.seq for e in events]
    if seqs != list(range(1, len(events) + 1)):
        problems.append(
            (
                "sequences_gap_free",
                f"{conversation_id}: sequence numbers {seqs[:5]}... have gaps or repeats",
            )
        )
    reached = None
    for event in events:
        if event.name == "TOPIC_STATE_CHANGED":
            if event.data.get("from") != reached:
                problems.append(
                    (
                        "states_chain",
                        f"{conversation_id}: seq {event.seq} changes state from"
                        f" {event.data.get('from')}, but it was {reached}",
                    )
                )
            reached = event.data.get("to")
    if state is not None and reached != state:
        problems.append(
            ("states_chain", f"{conversation_id}: events end in {reached}, the record says {state}")
        )
    message_ids = Counter(e.data.get("message_id") for e in events if e.name == "CUSTOMER_MESSAGE")
    texts = Counter(e.data.get("text") for e in events if e.name == "AGENT_MESSAGE")
    for message_id, count in message_ids.items():
        if count > 1:
            problems.append(
                (
                    "no_event_stored_twice",
                    f"{conversation_id}: customer message {message_id} stored {count} times",
                )
            )
    for what, key in acknowledged:
        found = (message_ids if what == "customer_message" else texts)[key]
        if figures is not None:
            figures[f"acknowledged_{what}"] += 1
        if found != 1:
            problems.append(
                (
                    "nothing_acknowledged_lost",
                    f"{conversation_id}: acknowledged {what} {key} stored {found} times",
                )
            )
    if len(message_ids) < acknowledged_customer_messages:
        problems.append(
            (
                "nothing_acknowledged_lost",
                f"{conversation_id}: {acknowledged_customer_messages} customer messages"
                f" acknowledged, {len(message_ids)} stored",
            )
        )
    if figures is not None:
        figures["conversations"] += 1
        figures["events"] += len(events)
        figures["customer_messages_stored"] += sum(message_ids.values())
    return problems


def room_problems(room: str, spans: Iterable[tuple[int, int | None, str]]) -> list[str]:
    """Problems of a room whose conversations were live from ``created`` until ``ended``
    (None or 0: still live), given as (created, ended, conversation id)."""
    problems: list[str] = []
    ordered = sorted((created, ended or 2**63, cid) for created, ended, cid in spans)
    for (_, ended, first), (created, _, second) in itertools.pairwise(ordered):
        if ended > created:
            problems.append(f"room {room}: {first} and {second} were live at the same time")
    return problems
