"""Recovery after a host holding ``conversations`` live conversations is killed (SIGKILL).

Set-up: the conversations are opened on one host (pipelined) and each gets two customer
messages (so each has a few journal records: open, the bot's welcome, the messages and the
bot's answers). The host's pid is found with ``Ping``; it is killed with SIGKILL.

Measured from the kill:

- ``rebuilt_s``: until the TopicMonitor reports every conversation live again in its state
  (each rebuilt conversation reports its state when the new host has replayed its journal; the
  gateway's ``status()`` is polled every 20 ms);
- ``answered_s``: until every conversation has answered a query (a snapshot) from its new
  host: batches of :data:`CHUNK` queries to the new host right after ``rebuilt``, one answer
  each.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from bench import support
from bench.common import customer_messages, open_conversations, pid_of, settle, wait_live
from runtime import testing
from runtime.gateway import Gateway, UnavailableError


def recovery(conversations: int) -> dict[str, Any]:
    sections = {"placement": {"per_host": max(100_000, 10 * conversations)}}
    with support.scratch("recovery") as directory:
        config = support.write_config(directory, sections)
        with support.engine(config, shutdown_timeout=30) as running, Gateway.connect(config) as gw:
            population = open_conversations(gw, conversations, prefix="r")
            wait_live(gw, conversations)
            old_host = testing.host_of(gw, population.conversation_ids[0])
            sessions = population.session_ids
            for start in range(0, len(sessions), 500):
                chunk = sessions[start : start + 500]
                customer_messages(gw, chunk, [f"message {k}" for k in range(2)])
            settle(running)
            victim = pid_of(gw, old_host)
            with support.profiled(running, "recovery"):
                killed = time.monotonic()
                os.kill(victim, signal.SIGKILL)
                # First the TopicMonitor notices (ChildActorExited) and places every orphan on a
                # new host (state RESTORING); until then its status still shows the old states.
                first = population.conversation_ids[0]
                while _moved(gw, first, old_host) is None:
                    if time.monotonic() - killed > 60:
                        raise TimeoutError("the TopicMonitor did not notice the killed host")
                    time.sleep(0.005)
                while True:
                    try:
                        wait_live(gw, conversations, timeout=120, states=_SETTLED)
                        break
                    except UnavailableError:  # "a host failed while this call waited": ask again
                        if time.monotonic() - killed > 120:
                            raise
                rebuilt = time.monotonic() - killed
                new_host = _moved(gw, first, old_host)
                answers: list[dict[str, Any]] = []
                pipeline = gw.pipeline()
                for start in range(0, conversations, CHUNK):
                    for c in population.conversation_ids[start : start + CHUNK]:
                        pipeline.conversation(c)
                    answers.extend(pipeline.wait(timeout=120))
                answered = time.monotonic() - killed
            new_pid = pid_of(gw, new_host)
            states = {a["state"] for a in answers}
    return {
        "conversations": conversations,
        "rebuilt_s": rebuilt,
        "answered_s": answered,
        "answers": len(answers),
        "states": sorted(states),
        "new_host_is_another_process": new_pid != victim,
    }


#: Queries per batch. The host sends one message per answer, and Thespian scans its whole
#: queue of outgoing messages on every send: one batch of 10,000 queries was not answered
#: within 120 s, so they go 500 at a time.
CHUNK = 500


def _moved(gw: Gateway, conversation_id: str, old_host: Any) -> Any:
    """The conversation's new host once the TopicMonitor has moved it off ``old_host``, else
    None. The gateway refuses calls that were waiting when a host died: they are asked again."""
    testing.location_cache(gw).clear()  # where the gateway keeps conversations' hosts
    try:
        host = testing.host_of(gw, conversation_id)
    except UnavailableError:
        return None
    return host if host != old_host else None


_SETTLED = {"CREATED", "ACTIVE", "ON_HOLD", "INACTIVE", "CUSTOMER_LEFT", "WRAP_UP"}
