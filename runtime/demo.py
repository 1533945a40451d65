"""``cx demo``: walk conversations through their lifecycle on the embedded engine and print them.

It runs on the built-in defaults (or a config file), on a virtual clock, so it takes a moment
however many simulated minutes pass. Rooms are permanent: run it twice and the second run finds
the first run's conversations in the customers' history.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from runtime.gateway import Gateway

Printer = Callable[[str], None]


def run_demo(
    config: str | os.PathLike[str] | Mapping[str, Any] | None = None, *, out: Printer = print
) -> int:
    with Gateway.embedded(config, seed=42) as gw:
        printed: dict[str, int] = {}

        def show(conversation_id: str) -> None:
            for event in gw.events(conversation_id, after_seq=printed.get(conversation_id, 0)):
                printed[conversation_id] = event["seq"]
                out(_line(event))

        out("== A web chat: the bot answers, then an agent takes over")
        ref = gw.start_session("cust-ada", "WEB", "ada@example.com")
        gw.customer_message(ref.channel_session_id, "Hi, where is my order?")
        gw.agent_login("alice", queues=["default"], max_conversations=2)
        gw.agent_ready("alice")
        gw.customer_message(ref.channel_session_id, "I would like to talk to a human please")
        show(ref.conversation_id)

        out("\n== The agent answers, puts the customer on hold; the hold runs out")
        gw.advance(20)
        gw.agent_message("alice", ref.conversation_id, "Hello Ada, let me check that for you.")
        gw.hold("alice", ref.conversation_id, 30)
        gw.advance(31)
        show(ref.conversation_id)

        out("\n== The customer writes from WhatsApp too: same conversation")
        whatsapp = gw.start_session("cust-ada", "WHATSAPP", "+44 7700 900123")
        gw.customer_message(whatsapp.channel_session_id, "Sending the order number here: 4711")
        gw.agent_message("alice", ref.conversation_id, "Found it: it ships tomorrow.")
        show(ref.conversation_id)

        out("\n== The customer leaves both channels, the agent leaves: CLOSED and archived")
        gw.end_session(ref.channel_session_id)
        gw.end_session(whatsapp.channel_session_id)
        gw.agent_leave("alice", ref.conversation_id)
        show(ref.conversation_id)

        out("\n== A second customer goes silent: inactivity ends the session")
        quiet = gw.start_session("cust-bob", "SMS", "+1 555 0100")
        gw.advance(gw.settings.timers.customer_inactivity_seconds)
        show(quiet.conversation_id)

        out("\n== Status and history")
        out(f"status: {gw.status()}")
        for room_id, who in ((ref.room_id, "cust-ada"), (quiet.room_id, "cust-bob")):
            history = gw.history(room_id)
            states = ", ".join(
                f"{c['id']} {c['state']} ({len(c['events'])} events)" for c in history
            )
            out(f"history of {who} (room {room_id}): {states}")
    return 0


def _line(event: dict[str, Any]) -> str:
    data = {k: v for k, v in event["data"].items() if k not in ("message_id", "request_id")}
    details = " ".join(f"{k}={v}" for k, v in data.items())
    clock = event["timestamp"][11:19]
    who = event["emitter"]["id"]
    return f"  {event['seq']:>3} {clock} {event['name']:<26} {who:<12} {details}"
