"""What the TopicMonitor restores from hosts' journals, and what damage cost.

:func:`plan_recovery` fences each writer (a host declared dead may never write again), reads
its journal from the store (:mod:`infra.journal_store`: directories, or PostgreSQL) and returns
the live conversations to rebuild. A torn tail is dropped and described. Damage in the middle
of a log stops the whole restore (``refused``: nothing is restored, nothing deleted) unless the
journal is salvaged; then every intact record is read, and each conversation that may have
lost records gets a :class:`Loss`:

- ``restored``: it has records after the damage and the whole of them replays exactly as
  journaled (same events, same sequence numbers): nothing it published was in the damaged
  bytes (a command that published nothing could have been);
- ``restored_prefix``: it has no record after the damage: restored up to the damage; whatever
  it journaled in the damaged bytes is lost;
- ``refused``: its records after the damage do not replay as journaled (a gap): it is not
  restored; its records stay in the journal moved aside (docs/DECISIONS.md);
- ``unrestorable``: its opening record was in the damaged bytes.

Journals read with mid-log damage are moved aside (``JournalStore.move_aside``), never
deleted, once their conversations are back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from actors.restore import rebuild
from infra.codec import CodecError
from infra.journal_read import JournalDamagedError, JournalRead
from infra.journal_records import Record, RecordKind, conversation_of, kind_of, time_of
from infra.journal_segment import Damage, JournalError
from infra.journal_store import JournalStore


@dataclass(frozen=True, slots=True)
class Loss:
    """What salvaging a damaged journal did to one conversation."""

    conversation_id: str
    outcome: str  # restored, restored_prefix, refused, unrestorable
    file: str
    offset: int
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Plan:
    found: dict[str, tuple[Record, list[Record]]] = field(default_factory=dict)
    writers: list[str] = field(default_factory=list)  # read: deleted once restored
    damaged: list[str] = field(default_factory=list)  # salvaged: moved aside once restored
    now: int = 0  # the latest journaled time
    damage: list[str] = field(default_factory=list)  # every damaged place, described
    losses: list[Loss] = field(default_factory=list)
    refused: list[Damage] = field(default_factory=list)  # mid-log damage, not salvaged
    errors: list[str] = field(default_factory=list)  # journals that stop the restore


@dataclass
class Seen:
    """One conversation's records in a host's journal, as read in order."""

    opened: Record | None = None
    opened_at: int = -1  # index of the open record in the directory's records
    commands: list[Record] = field(default_factory=list)
    last_at: int = -1
    closed: bool = False


def plan_recovery(
    store: JournalStore, writers: list[str], *, salvage: bool, archived: Callable[[str], bool]
) -> Plan:
    """The conversations journaled by ``writers`` to restore (not closed, not ``archived``);
    each writer is fenced before its journal is read."""
    plan = Plan()
    reads: list[tuple[str, JournalRead]] = []
    for writer in writers:
        try:
            store.fence(writer)
            read = store.read(writer, salvage=salvage)
        except JournalDamagedError as error:
            plan.refused.extend(error.damage)
            plan.errors.append(str(error))
            continue
        except JournalError as error:
            plan.errors.append(str(error))
            continue
        reads.append((writer, read))
        plan.damage.extend(read.damage)
        (plan.damaged if read.mid_log else plan.writers).append(writer)
    if plan.errors:  # nothing is restored and nothing deleted: a person decides
        return Plan(damage=plan.damage, refused=plan.refused, errors=plan.errors)
    closed: set[str] = set()
    chosen: dict[str, tuple[Seen, JournalRead]] = {}
    for _, read in reads:
        for conversation_id, seen in by_conversation(read.records).items():
            records = ([seen.opened] if seen.opened else []) + seen.commands
            plan.now = max(plan.now, *(time_of(r) or 0 for r in records), 0)
            if seen.closed:
                closed.add(conversation_id)
            # A conversation moved between hosts is in both journals: the longer wins.
            current = chosen.get(conversation_id)
            if current is None or len(seen.commands) > len(current[0].commands):
                chosen[conversation_id] = (seen, read)
    for conversation_id, (seen, read) in chosen.items():
        if conversation_id in closed or archived(conversation_id):
            continue
        loss = _assess(conversation_id, seen, read.mid_log) if read.mid_log else None
        if loss is not None:
            plan.losses.append(loss)
        if seen.opened is not None and (loss is None or loss.outcome.startswith("restored")):
            plan.found[conversation_id] = (seen.opened, seen.commands)
    return plan


def by_conversation(records: list[Record]) -> dict[str, Seen]:
    seen: dict[str, Seen] = {}
    for index, record in enumerate(records):
        conversation_id, kind = conversation_of(record), kind_of(record)
        entry = seen.setdefault(conversation_id, Seen())
        if kind is RecordKind.OPEN:  # a restored conversation's history starts again
            entry.opened, entry.opened_at, entry.commands = record, index, []
        elif kind is RecordKind.COMMAND and entry.opened is not None:
            entry.commands.append(record)
        elif kind is RecordKind.CLOSED:
            entry.closed = True
        entry.last_at = index
    return seen


def _assess(conversation_id: str, seen: Seen, mid_log: list[tuple[int, Damage]]) -> Loss | None:
    """The loss of one conversation of a salvaged directory, or None if none is possible."""
    if seen.opened is None:
        at, damage = next(((a, d) for a, d in mid_log if a <= seen.last_at), mid_log[-1])
        return Loss(
            conversation_id,
            "unrestorable",
            damage.path,
            damage.offset,
            "its opening record was in the damaged bytes: not restored; its later records are"
            " kept in the journal moved aside",
        )
    exposed = [(a, d) for a, d in mid_log if a > seen.opened_at]
    if not exposed:
        return None  # opened after the damage
    at, damage = exposed[0]
    if seen.last_at < at:
        return Loss(
            conversation_id,
            "restored_prefix",
            damage.path,
            damage.offset,
            f"restored up to the damage ({len(seen.commands)} commands); what it journaled in"
            f" the {damage.end - damage.offset} damaged bytes, if anything, is lost",
        )
    try:
        problems = rebuild(seen.opened, seen.commands).problems
    except (CodecError, KeyError, TypeError, ValueError) as error:
        problems = [str(error)]
    if problems:
        return Loss(
            conversation_id,
            "refused",
            damage.path,
            damage.offset,
            f"records lost in the damaged bytes leave a gap ({problems[0]}): not restored; its"
            f" {len(seen.commands)} intact commands are kept in the journal moved aside",
        )
    return Loss(
        conversation_id,
        "restored",
        damage.path,
        damage.offset,
        "its records after the damage replay exactly as journaled: no event it published was"
        " lost (a command that published nothing could have been)",
    )
