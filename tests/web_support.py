"""The web gateway over an embedded engine, for the tests: a Starlette TestClient and tokens."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from runtime.gateway import Gateway
from runtime.web import WebOptions, create_app
from runtime.web.tokens import issue
from tests.conftest import storage_config

KEY = "test-signing-key-" + "0123456789abcdef" * 2


#: Tokens live a day: module-level headers are made once, at import, and must outlive the suite.
def token(role: str, subject: str, *channels: str, ttl_s: int = 86_400) -> dict[str, str]:
    """Headers carrying a token for ``subject`` in ``role``."""
    return {"Authorization": f"Bearer {issue(KEY, role, subject, ttl_s=ttl_s, channels=channels)}"}


CONNECTOR = token("connector", "webchat", "WEB")
SUPERVISOR = token("supervisor", "sam")


@dataclass
class Web:
    client: TestClient

    def call(self, op: str, headers: dict[str, str], **args: Any) -> Any:
        """The result of ``op``; AssertionError with the body if it was refused."""
        response = self.client.post(f"/v1/{op}", json=args, headers=headers)
        assert response.status_code == 200, response.text
        return response.json()["result"]


@contextlib.contextmanager
def web_gateway(
    directory: Path, config: dict[str, Any] | None = None, **options: Any
) -> Iterator[Web]:
    """The web gateway over an embedded engine (``config`` added to the test storage's)."""
    engine_config = {**storage_config(directory), **(config or {})}
    app = create_app(lambda: Gateway.embedded(engine_config), WebOptions(KEY, **options))
    with TestClient(app) as client:
        yield Web(client)


def ready(web: Web, headers: dict[str, str], agent_id: str, *queues: str) -> None:
    web.call("agent_login", headers, agent_id=agent_id, queues=list(queues or ["default"]))
    web.call("agent_ready", headers, agent_id=agent_id)


def routed(web: Web, headers: dict[str, str], agent_id: str) -> str:
    """A customer's conversation routed to ``agent_id`` (READY alone in the default queue)."""
    ready(web, headers, agent_id)
    ref = web.call("start_session", CONNECTOR, customer_id="c1", channel="WEB", identifier="b1")
    web.call("request_agent", CONNECTOR, conversation_id=ref["conversation_id"])
    assert roles(web, ref["conversation_id"]) == {agent_id: "PRIMARY"}
    return str(ref["conversation_id"])


def roles(
    web: Web, conversation_id: str, reader: dict[str, str] = SUPERVISOR
) -> dict[str, str]:
    """The role of each agent subscribed to the conversation, as ``reader`` reads it."""
    snapshot = web.call("conversation", reader, conversation_id=conversation_id)
    return {
        p["id"]: p["role"]
        for p in snapshot["participants"]
        if p["type"] == "AGENT" and p["state"] == "SUBSCRIBED"
    }
