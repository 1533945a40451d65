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
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from runtime.gateway import Gateway
from runtime.web.app import WebOptions, create_app
from runtime.web.tokens import issue

Printer = Callable[[str], None]
#: How long the demo's tokens are valid.
DEMO_TTL_S = 8 * 3600


@dataclass(frozen=True, slots=True)
class WebDemo:
    """The demo's application and the links it prints, each with its label."""

    app: Starlette
    links: tuple[tuple[str, str], ...]


def build_web_demo(scratch: Path, port: int) -> WebDemo:
    """The gateway over an engine storing under ``scratch``, and links for ``port`` on loopback
    whose tokens are signed with a key drawn here."""
    key = secrets.token_hex(32)
    config = {
        "storage": {"archive": str(scratch / "archive.sqlite3"), "journal": str(scratch / "journal")},
        "logging": {"level": "warning", "file": str(scratch / "engine.log")},
    }
    app = create_app(lambda: Gateway.embedded(config, virtual_time=False), WebOptions(key))
    base = f"http://127.0.0.1:{port}/pages"
    chat = f"{base}/chat.html#token={issue(key, 'connector', 'web-demo', ttl_s=DEMO_TTL_S, channels=['WEB'])}"
    desk = f"{base}/desk.html#token={issue(key, 'agent', 'alice', ttl_s=DEMO_TTL_S)}"
    second = f"{base}/desk.html#token={issue(key, 'agent', 'bob', ttl_s=DEMO_TTL_S)}"
    return WebDemo(app, (
        ("agent desk (log in, then Ready)", desk),
        ("a second desk, to transfer or consult to (agent bob)", second),
        ("customer web chat (Start, then write 'I want an agent')", chat),
    ))  # fmt: skip


def run_web_demo(*, open_browser: bool = True, out: Printer = print) -> int:
    with tempfile.TemporaryDirectory(prefix="cx-web-demo-") as scratch, socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        demo = build_web_demo(Path(scratch), port)
        out("cx demo --web: a customer web chat and an agent desk (Ctrl-C to stop)")
        for label, link in demo.links:
            out(f"  {label}: {link}")
        if open_browser:
            webbrowser.open(demo.links[0][1])
            webbrowser.open(demo.links[-1][1])
        uvicorn.run(demo.app, host="127.0.0.1", port=port, access_log=False, log_level="warning")
    return 0
