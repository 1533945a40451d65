"""A webhook receiver for tests: an HTTP server on 127.0.0.1 that records what it
acknowledges."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from runtime.webhooks import SIGNATURE_HEADER
from tests.multiproc_support import free_port


class Receiver:
    """An HTTP receiver on 127.0.0.1: records what it acknowledges; ``status`` is its answer."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.status = 200
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
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
