"""Three nodes of one actor system on this machine (a leader and two members, the journal and
the archive in PostgreSQL), conversations on all three and customer messages flowing, through
a gateway beside the leader and one beside the surviving member, while every process of one
member is killed with SIGKILL. Bounded; every member process is killed at
the end, and the leader's processes are checked gone."""

from __future__ import annotations

import contextlib
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from actors.nodes import MEMBERSHIP_NAME, MembershipActor
from runtime.gateway import Gateway, UnavailableError
from tests.multiproc_support import eventually, running_system
from tests.nodes_support import (
    HardTimeout,
    alive,
    connect_beside,
    host_pid,
    kill_member,
    member_pids,
    node_configs,
    node_state,
    open_until_hosted_by,
    start_member,
)

pytestmark = pytest.mark.multiproc

HARD_TIMEOUT_S = 120
CONVERSATIONS = 24
PER_HOST = 3


@dataclass(slots=True)
class Customer:
    """One customer's conversation and what was sent on it: ``acked`` ids were acknowledged;
    ``pending`` is the id last refused (sent again, with the same id, until acknowledged)."""

    name: str
    conversation_id: str
    session_id: str
    gw: Gateway  # the one it sends through: the leader's or the member's
    acked: list[str] = field(default_factory=list)
    pending: str | None = None
    sent: int = 0

    def send(self) -> bool:
        """Send the pending message, or a new one; whether it was acknowledged."""
        if self.pending is None:
            self.sent += 1
            self.pending = f"{self.name}-m{self.sent}"
        try:
            self.gw.customer_message(
                self.session_id, f"text {self.pending}", message_id=self.pending
            )
        except UnavailableError:
            return False
        self.acked.append(self.pending)
        self.pending = None
        return True


def _stored_ids(gw: Gateway, conversation_id: str) -> list[str]:
    return [
        e["data"]["message_id"]
        for e in gw.events(conversation_id)
        if e["name"] == "CUSTOMER_MESSAGE"
    ]


def test_a_member_killed_under_load_loses_nothing_and_rejoins(
    tmp_path: Path, postgres_dsn: str
) -> None:
    leader_config, specs = node_configs(
        tmp_path, members=2, postgres=postgres_dsn, per_host=PER_HOST
    )
    victim, survivor = specs
    members: dict[str, subprocess.Popen[bytes]] = {}
    with HardTimeout(HARD_TIMEOUT_S):
        try:
            with (
                running_system(leader_config) as system,
                Gateway.connect(leader_config) as gw,
                contextlib.ExitStack() as stack,
            ):
                membership = system.createActor(MembershipActor, globalName=MEMBERSHIP_NAME)
                for spec in specs:
                    members[spec.name] = start_member(spec.config)
                for spec in specs:
                    eventually(lambda s=spec.name: alive(system, membership, s), timeout=20)
                first = node_state(system, membership, victim.name)
                assert first is not None
                # a gateway beside the surviving member, joined to that node's own admin
                beside = stack.enter_context(connect_beside(survivor.config))

                customers = []
                for n in range(CONVERSATIONS):
                    ref = gw.start_session(f"cust-{n}", "WEB", f"visitor-{n}")
                    customers.append(
                        Customer(
                            f"cust-{n}",
                            ref.conversation_id,
                            ref.channel_session_id,
                            gw if n % 2 else beside,
                        )
                    )
                victim_pids = member_pids(members[victim.name], victim.admin_port)
                survivor_pids = member_pids(members[survivor.name], survivor.admin_port)
                where = {c.name: host_pid(system, gw, c.conversation_id) for c in customers}
                on_victim = [c for c in customers if where[c.name] in victim_pids]
                assert on_victim, "no conversation was placed on the member to be killed"
                assert any(pid in survivor_pids for pid in where.values())
                assert any(pid not in victim_pids | survivor_pids for pid in where.values())

                for _ in range(3):  # load before the kill: every message acknowledged
                    assert all(c.send() for c in customers)
                killed = kill_member(members[victim.name], victim.admin_port)
                assert victim_pids <= killed | {members[victim.name].pid}

                # load through the loss: every customer keeps sending; the victim's get
                # `unavailable` until their conversations are rebuilt, and send again
                def every_victim_answers() -> bool:
                    results = [c.send() for c in customers]
                    return all(results)

                eventually(every_victim_answers, timeout=40)
                for _ in range(2):  # load after: every conversation answers at once
                    assert all(c.send() for c in customers)

                for customer in customers:
                    stored = _stored_ids(gw, customer.conversation_id)
                    duplicates = [i for i, n in Counter(stored).items() if n > 1]
                    assert not duplicates, f"{customer.name}: stored twice: {duplicates}"
                    assert stored == customer.acked, customer.name
                    # one live conversation per room: the customer's room still has this one
                    again = customer.gw.start_session(customer.name, "SMS", f"{customer.name}-sms")
                    assert again.conversation_id == customer.conversation_id
                for customer in on_victim:
                    assert host_pid(system, gw, customer.conversation_id) not in killed

                # the node comes back as a new incarnation and takes new work
                members[victim.name] = start_member(victim.config)

                def rejoined() -> bool:
                    node = node_state(system, membership, victim.name)
                    return (
                        node is not None
                        and node[1] > first[1]
                        and alive(system, membership, victim.name)
                    )

                eventually(rejoined, timeout=20)
                open_until_hosted_by(
                    system,
                    gw,
                    lambda: member_pids(members[victim.name], victim.admin_port),
                    first=CONVERSATIONS,
                    timeout=20,
                )
        finally:
            for spec in specs:
                member = members.get(spec.name)
                if member is not None and member.poll() is None:
                    kill_member(member, spec.admin_port)
