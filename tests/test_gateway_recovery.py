"""A connected gateway when a host or the whole engine goes away: answered at once, and working
again by itself once the engine is back. Real multiprocTCPBase systems; bounded, always shut
down (every process of each system is ended, killed if need be)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

from infra.config import load_config
from runtime import testing
from runtime.gateway import Gateway, UnavailableError
from runtime.system import start
from tests.multiproc_support import eventually, running_system, same_program, write_config

pytestmark = pytest.mark.multiproc

#: Only catches a hang (the calls below are answered in well under a second when they work).
HANG_S = 5.0


def pid_of(gw: Gateway, address: Any) -> int:
    return testing.pid_of(gw, address)


@contextmanager
def crashable_system(config: Path) -> Iterator[Callable[[], None]]:
    """Start the engine; yields a function that crashes it (kills every process of it, as
    :func:`crash`), which also runs at the end."""
    before = same_program()
    start(load_config(config))  # crashed, never shut down

    def crash_it() -> None:
        crash(same_program(config) - before)

    try:
        yield crash_it
    finally:
        crash_it()


def crash(pids: set[int]) -> None:
    for pid in sorted(pids):
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10.0
    while any(not _zombie(p) for p in pids):
        assert time.monotonic() < deadline, "killed processes did not exit"
        time.sleep(0.01)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def test_a_call_to_a_conversation_whose_host_was_just_killed_is_answered_at_once(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, placement={"per_host": 1})
    with running_system(config), Gateway.connect(config) as gw:
        ref = gw.start_session("cust-1", "WEB", "visitor-1")
        gw.customer_message(ref.channel_session_id, "before", message_id="m-1")
        os.kill(pid_of(gw, testing.host_of(gw, ref.conversation_id)), signal.SIGKILL)
        started = time.monotonic()
        try:
            gw.customer_message(ref.channel_session_id, "after", message_id="m-2")
            outcome = "applied"
        except UnavailableError as error:
            outcome = "unavailable"
            assert "rebuilt" in str(error) or "failed" in str(error)
        assert time.monotonic() - started < HANG_S
        assert outcome in {"applied", "unavailable"}
        # the conversation is rebuilt on another host and takes the message (again: once)
        gw.customer_message(ref.channel_session_id, "after", message_id="m-2")
        texts = [e["data"].get("text") for e in gw.events(ref.conversation_id)]
        assert texts.count("after") == 1 and texts.count("before") == 1


def test_a_gateway_refuses_while_the_engine_is_away_and_works_again_when_it_is_back(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path)
    gw: Gateway | None = None
    try:
        with crashable_system(config) as crash_it:
            gw = Gateway.connect(config)
            ref = gw.start_session("cust-1", "WEB", "visitor-1")
            gw.customer_message(ref.channel_session_id, "before the crash", message_id="m-1")
            crash_it()
            for _ in range(3):
                started = time.monotonic()
                with pytest.raises(UnavailableError):
                    gw.customer_message(ref.channel_session_id, "while away", message_id="m-2")
                assert time.monotonic() - started < HANG_S
        with crashable_system(config):
            working = gw

            def answers() -> bool:
                try:
                    return working.conversation(ref.conversation_id)["state"] == "CREATED"
                except UnavailableError:
                    return False

            eventually(answers, timeout=30.0)
            gw.customer_message(ref.channel_session_id, "after the restart", message_id="m-3")
            texts = [e["data"].get("text") for e in gw.events(ref.conversation_id)]
            assert texts.count("before the crash") == 1 and "after the restart" in texts
    finally:
        if gw is not None:
            gw.close()
