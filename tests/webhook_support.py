"""A webhook receiver for tests: an HTTP server on 127.0.0.1 that records what it
acknowledges."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from domain.enums import ParticipantType
from domain.events import AGENTS_AUDIENCE, AUDIENCE_KEY, EventName
from domain.records import ConversationRecord, Emitter, Event
from runtime.webhooks import SIGNATURE_HEADER
from tests.multiproc_support import free_port
from tests.test_archive import make_conversation

AGENT = ParticipantType.AGENT


class Receiver:
    """An HTTP receiver on 127.0.0.1: records what it acknowledges; ``status`` is its answer.
    Each POST waits for ``gate`` to be set before it is answered (set: at once)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.status = 200
        self.gate = threading.Event()
        self.gate.set()
        #: POSTs that arrived, answered or not yet.
        self.arrived = 0
        self.received: list[tuple[str, int]] = []
        self.bodies: list[tuple[bytes, str]] = []
        self._server: ThreadingHTTPServer | None = None

    @classmethod
    @contextmanager
    def on_free_port(cls) -> Iterator[Receiver]:
        """A receiver (down until ``up``), shut down afterwards."""
        receiver = cls(free_port())
        try:
            yield receiver
        finally:
            receiver.down()

    def up(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.arrived += 1
                receiver.gate.wait()
                if receiver.status == 200:
                    receiver.received.append(
                        (self.headers["X-Cx-Conversation"], int(self.headers["X-Cx-Seq"]))
                    )
                    receiver.bodies.append((body, self.headers[SIGNATURE_HEADER]))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def down(self) -> None:
        self.gate.set()  # no POST is held past the receiver's end
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def whispered(conversation_id: str, created_at: int) -> tuple[ConversationRecord, list[Event]]:
    """An archived conversation whose seq 3 is a whisper (``audience: AGENTS``) among its
    other events: 1 session started, 2 the customer's message, 4 CLOSED."""
    record, events = make_conversation(conversation_id, created_at=created_at)
    started, message, closed = events
    whisper = dataclasses.replace(
        message, seq=3, name=EventName.WHISPER_MESSAGE, emitter=Emitter("agent-7", AGENT),
        channel_session_id=None, data={"text": "a VIP", AUDIENCE_KEY: AGENTS_AUDIENCE},
    )  # fmt: skip
    return dataclasses.replace(record, seq=4), [
        started, message, whisper, dataclasses.replace(closed, seq=4)
    ]
