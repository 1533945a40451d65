"""``cx demo --web``: the web chat and the agent desk on an engine of their own.

An embedded engine on real time (private storage in a temporary directory, removed at the end)
behind the web gateway on loopback, a signing key drawn for this run, and links that carry
their tokens: the customer web chat (a connector token for WEB) and the agent desk (an agent
token for ``alice``), with a second desk (``bob``) to transfer or consult to. The browser
opens the chat and the first desk when it can; Ctrl-C stops everything.
"""

from __future__ import annotations

import secrets
import socket
import tempfile
import webbrowser
from collections.abc import Callable
from pathlib import Path

import uvicorn

from runtime.gateway import Gateway
from runtime.web.app import WebOptions, create_app
from runtime.web.tokens import issue

Printer = Callable[[str], None]
#: How long the demo's tokens are valid.
DEMO_TTL_S = 8 * 3600


def run_web_demo(*, open_browser: bool = True, out: Printer = print) -> int:
    key = secrets.token_hex(32)
    with tempfile.TemporaryDirectory(prefix="cx-web-demo-") as scratch, socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        config = {
            "storage": {"archive": str(Path(scratch) / "archive.sqlite3"),
                        "journal": str(Path(scratch) / "journal")},
            "logging": {"level": "warning", "file": str(Path(scratch) / "engine.log")},
        }  # fmt: skip
        app = create_app(lambda: Gateway.embedded(config, virtual_time=False), WebOptions(key))
        base = f"http://127.0.0.1:{port}/pages"
        chat = f"{base}/chat.html#token={issue(key, 'connector', 'web-demo', ttl_s=DEMO_TTL_S, channels=['WEB'])}"
        desk = f"{base}/desk.html#token={issue(key, 'agent', 'alice', ttl_s=DEMO_TTL_S)}"
        second = f"{base}/desk.html#token={issue(key, 'agent', 'bob', ttl_s=DEMO_TTL_S)}"
        out("cx demo --web: a customer web chat and an agent desk (Ctrl-C to stop)")
        out(f"  agent desk (log in, then Ready): {desk}")
        out(f"  a second desk, to transfer or consult to (agent bob): {second}")
        out(f"  customer web chat (Start, then write 'I want an agent'): {chat}")
        if open_browser:
            webbrowser.open(desk)
            webbrowser.open(chat)
        uvicorn.run(app, host="127.0.0.1", port=port, access_log=False, log_level="warning")
    return 0
