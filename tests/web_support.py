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
