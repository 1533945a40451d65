"""A host process killed with SIGKILL mid-traffic: its conversations are rebuilt from the
journal on a new host, and nothing acknowledged is lost or doubled. Real multiprocTCPBase."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from runtime import testing
from runtime.gateway import Gateway, GatewayError
from tests.multiproc_support import eventually, running_system, write_config

pytestmark = pytest.mark.multiproc


def _host_pid(gw: Gateway, conversation_id: str) -> int:
    return testing.pid_of(gw, testing.host_of(gw, conversation_id))


def _send(gw: Gateway, session_id: str, message_id: str) -> None:
    """Send until acknowledged: a customer message with a provider id is safe to repeat."""

    def attempt() -> bool:
        try:
            gw.customer_message(session_id, f"text of {message_id}", message_id=message_id)
            return True
        except GatewayError:  # its host died: not acknowledged, so it is sent again
            return False

    eventually(attempt, timeout=60)


def test_killed_host_loses_nothing_acknowledged(tmp_path: Path, journal_at: str | None) -> None:
    config = write_config(
        tmp_path,
        placement={"per_host": 1000},
        storage={
            "archive": str(tmp_path / "archive.sqlite3"),
            "journal": str(tmp_path / "journal"),
            "fsync": "never",
            "postgres": journal_at,
        },
    )
    with running_system(config), Gateway.connect(config) as gw:
        gw.agent_login("alice", max_conversations=5)
        refs = [gw.start_session(f"cust-{i}", "WEB", f"v{i}") for i in range(3)]
        for ref in refs:
            gw.agent_join("alice", ref.conversation_id)
        sent: dict[str, list[str]] = {ref.conversation_id: [] for ref in refs}
        for n in range(5):
            for ref in refs:
                _send(gw, ref.channel_session_id, f"{ref.conversation_id}-m{n}")
                sent[ref.conversation_id].append(f"{ref.conversation_id}-m{n}")

        victim = _host_pid(gw, refs[0].conversation_id)
        os.kill(victim, signal.SIGKILL)

        for n in range(5, 10):  # keep sending: retried until the rebuilt conversations answer
            for ref in refs:
                _send(gw, ref.channel_session_id, f"{ref.conversation_id}-m{n}")
                sent[ref.conversation_id].append(f"{ref.conversation_id}-m{n}")

        assert _host_pid(gw, refs[0].conversation_id) != victim
        for ref in refs:
            events = gw.events(ref.conversation_id)
            assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
            received = [e["data"]["message_id"] for e in events if e["name"] == "CUSTOMER_MESSAGE"]
            assert received == sent[ref.conversation_id]  # every acknowledged one, once, in order
            snapshot = gw.conversation(ref.conversation_id)
            assert snapshot["state"] == "ACTIVE"
            assert {p["id"] for p in snapshot["participants"] if p["state"] == "SUBSCRIBED"} == {
                "bot",
                "alice",
            }

        # and they still end where they should
        for ref in refs:
            gw.end_conversation(ref.conversation_id)
        for ref in refs:
            eventually(lambda ref=ref: gw.conversation(ref.conversation_id)["state"] == "CLOSED")


def test_whole_system_killed_then_restarted_on_the_same_storage(
    tmp_path: Path, journal_at: str | None
) -> None:
    """Every process of the system (admin included) dies with SIGKILL, as in a machine
    crash; a new system on the same storage restores the live conversations, and the room
    keeps its live conversation."""
    from infra.config import load_config
    from runtime.system import start
    from tests.multiproc_support import running_system as restarted
    from tests.multiproc_support import same_program

    config = write_config(
        tmp_path,
        storage={
            "archive": str(tmp_path / "archive.sqlite3"),
            "journal": str(tmp_path / "journal"),
            "fsync": "always",
            "postgres": journal_at,
        },
    )
    before = same_program(config)
    system = start(load_config(config))
    try:
        with Gateway.connect(config) as gw:
            ref = gw.start_session("cust-1", "WEB", "v")
            gw.agent_login("alice")
            gw.agent_join("alice", ref.conversation_id)
            gw.customer_message(ref.channel_session_id, "before the crash", message_id="m-1")
            events = gw.events(ref.conversation_id)
    finally:
        for pid in same_program(config) - before:
            os.kill(pid, signal.SIGKILL)
        eventually(lambda: not (same_program(config) - before), timeout=60)
    del system

    with restarted(config), Gateway.connect(config) as gw:
        eventually(lambda: gw.status()["conversations"] == {"ACTIVE": 1}, timeout=60)
        assert gw.events(ref.conversation_id) == events
        assert gw.start_session("cust-1", "SMS", "+1").conversation_id == ref.conversation_id
        gw.customer_message(
            ref.channel_session_id, "before the crash", message_id="m-1"
        )  # a repeat
        gw.customer_message(ref.channel_session_id, "after the restart", message_id="m-2")
        texts = [
            e["data"]["text"]
            for e in gw.events(ref.conversation_id)
            if e["name"] == "CUSTOMER_MESSAGE"
        ]
        assert texts == ["before the crash", "after the restart"]


def test_killed_router_is_replaced_and_loses_nothing(tmp_path: Path) -> None:
    from actors.messages import Directory, Ping

    def pid_of(gw: Gateway, role: str) -> int | None:
        """The process of the Router (None while it has just died)."""
        address = testing.ask(gw, testing.addresses(gw).monitor, Directory("dir"))[role]
        answer = testing.system(gw).ask(address, Ping("pid"), 2)
        return None if answer is None else int(answer.value["pid"])

    config = write_config(tmp_path)
    with running_system(config), Gateway.connect(config) as gw:
        gw.agent_login("alice", max_conversations=1)
        gw.agent_ready("alice")
        first = gw.start_session("cust-1", "WEB", "v")
        gw.request_agent(first.conversation_id)
        eventually(lambda: gw.conversation(first.conversation_id)["state"] == "ACTIVE")
        waiting = gw.start_session("cust-2", "WEB", "w")
        gw.request_agent(waiting.conversation_id)
        eventually(lambda: gw.status()["queues"] == {"default": 1})

        router = pid_of(gw, "router")
        assert router is not None
        os.kill(router, signal.SIGKILL)
        eventually(lambda: pid_of(gw, "router") not in (router, None))
        # the new Router learnt the waiting request and alice's availability
        eventually(
            lambda: (
                gw.status()
                == {
                    "conversations": {"ACTIVE": 1, "CREATED": 1},
                    "agents": {"NOT_READY": 0, "READY": 0, "BUSY": 1},  # her one slot taken
                    "queues": {"default": 1},
                    "storage": {"failing_journals": 0},
                }
            )
        )
        gw.agent_leave("alice", first.conversation_id)  # alice is free: the waiting one is hers
        eventually(lambda: gw.conversation(waiting.conversation_id)["state"] == "ACTIVE")

        third = gw.start_session("cust-3", "WEB", "x")

        def welcomed() -> bool:
            return any(e["name"] == "BOT_MESSAGE" for e in gw.events(third.conversation_id))

        eventually(welcomed)
