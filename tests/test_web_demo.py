"""``cx demo --web``: the links it prints open their pages, each token in its role."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from runtime.web.demo import build_web_demo

BASE = "http://127.0.0.1:8123"
#: What each kind of token is allowed to do first: open a web chat, or log in as an agent.
FIRST_STEPS: dict[str, tuple[str, dict[str, Any]]] = {
    "connector of WEB": (
        "start_session",
        {"customer_id": "c1", "channel": "WEB", "identifier": "b1"},
    ),
    "agent alice": ("agent_login", {"agent_id": "alice"}),
    "agent bob": ("agent_login", {"agent_id": "bob"}),
}


def test_each_link_of_the_web_demo_opens_its_page_and_its_token_acts_in_its_role(
    tmp_path: Path,
) -> None:
    demo = build_web_demo(tmp_path, 8123)
    opened = []
    with TestClient(demo.app) as client:
        for _, link in demo.links:
            url, token = link.split("#token=")
            page = client.get(url.removeprefix(BASE))
            headers = {"Authorization": f"Bearer {token}"}
            allowed = [
                who
                for who, (op, args) in FIRST_STEPS.items()
                if client.post(f"/v1/{op}", json=args, headers=headers).status_code == 200
            ]
            opened.append((url.removeprefix(BASE), page.status_code, allowed))
    assert opened == [
        ("/pages/desk.html", 200, ["agent alice"]),
        ("/pages/desk.html", 200, ["agent bob"]),
        ("/pages/chat.html", 200, ["connector of WEB"]),
    ]
