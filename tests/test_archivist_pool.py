"""The pool of Archivists: each conversation's archive work goes to the archivist its id hashes
to (a stable hash), a customer's first contact to the one its customer id hashes to."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from actors.archivist import Archivist
from actors.topic_monitor import TopicMonitor
from domain.routing import partition_of as partition
from runtime import testing
from runtime.gateway import Gateway, SessionRef
from tests.conftest import MakeGateway

POOL = 2


def writes(gw: Gateway) -> list[int]:
    """Each archivist's write transactions so far, by partition."""
    monitor: TopicMonitor = testing.actor(gw, testing.addresses(gw).monitor)
    pool: list[Archivist] = [testing.actor(gw, a) for a in monitor.archivists]
    return [archivist.archive.write_attempts for archivist in pool]


def one_per_partition(gw: Gateway) -> list[SessionRef]:
    """Conversations of one customer each, the first whose id hashes to archivist 0, then 1."""
    found: dict[int, SessionRef] = {}
    for n in range(50):
        ref = gw.start_session(f"cust-{n}", "WEB", f"v-{n}")
        found.setdefault(partition(ref.conversation_id, POOL), ref)
        if len(found) == POOL:
            return [found[0], found[1]]
    raise AssertionError("no conversation id hashed to one of the archivists")


def test_the_partition_of_a_key_is_the_same_in_every_process() -> None:
    """Python's string hash is salted per process; the archivist of a key must not be."""
    keys = [f"conv-{n}" for n in range(64)]
    here = [partition(key, 7) for key in keys]
    program = (
        f"from domain.routing import partition_of; print([partition_of(k, 7) for k in {keys!r}])"
    )
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", program],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent.parent,
        ).stdout
        assert out.strip() == str(here)
    assert len(set(here)) == 7  # and every archivist gets some


def test_the_engine_starts_the_configured_number_of_archivists(
    make_gateway: MakeGateway,
) -> None:
    gw = make_gateway(placement={"archivists": 3})
    monitor: TopicMonitor = testing.actor(gw, testing.addresses(gw).monitor)
    assert len({str(a) for a in monitor.archivists}) == 3


def test_each_conversation_is_archived_by_the_archivist_its_id_hashes_to(
    make_gateway: MakeGateway,
) -> None:
    gw = make_gateway(placement={"archivists": POOL})
    for index, ref in enumerate(one_per_partition(gw)):
        before = writes(gw)
        gw.end_session(ref.channel_session_id)  # its last session: it is archived and CLOSED
        assert gw.conversation(ref.conversation_id)["state"] == "CLOSED"
        after = writes(gw)
        assert [b - a for a, b in zip(before, after, strict=True)] == [
            1 if n == index else 0 for n in range(POOL)
        ]


def test_one_conversations_late_activity_goes_to_its_archivist_after_its_closing(
    make_gateway: MakeGateway,
) -> None:
    gw = make_gateway(placement={"archivists": POOL})
    refs = one_per_partition(gw)
    for index, ref in enumerate(refs):
        gw.end_session(ref.channel_session_id)
        before = writes(gw)
        gw.add_activity(ref.conversation_id, "SURVEY", {"score": 5})
        after = writes(gw)
        assert [b - a for a, b in zip(before, after, strict=True)] == [
            1 if n == index else 0 for n in range(POOL)
        ]
        events = gw.events(ref.conversation_id)
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert events[-1]["name"] == "SURVEY"


def test_a_first_contact_is_stored_by_the_archivist_its_customer_id_hashes_to(
    make_gateway: MakeGateway,
) -> None:
    gw = make_gateway(placement={"archivists": POOL})
    for customer in ("cust-a", "cust-b", "cust-c", "cust-d"):
        before = writes(gw)
        gw.start_session(customer, "WEB", f"visitor-{customer}")
        after = writes(gw)
        index = partition(customer, POOL)
        assert [b - a for a, b in zip(before, after, strict=True)] == [
            1 if n == index else 0 for n in range(POOL)
        ]
