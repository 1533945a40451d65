"""Deleting a customer's data on request through the gateway, on SQLite and PostgreSQL:
refused with a typed error while one of their conversations is live (nothing deleted), done
once it is closed, and the customer can come back afterwards as a new one."""

from __future__ import annotations

from pathlib import Path

import pytest

from domain.errors import BadArgumentError, IllegalTransitionError, UnknownIdError
from runtime.cli import main
from runtime.gateway import Gateway
from tests.conftest import MakeGateway
from tests.multiproc_support import free_port, write_config


def _closed(gw: Gateway, customer_id: str) -> str:
    """A conversation of the customer, ended and archived; its room."""
    ref = gw.start_session(customer_id, "WEB", f"browser-{customer_id}")
    gw.customer_message(ref.channel_session_id, "hello")
    gw.end_conversation(ref.conversation_id)
    gw.advance(1)
    assert gw.conversation(ref.conversation_id)["state"] == "CLOSED"
    return ref.room_id


def test_forget_is_refused_while_the_customer_has_a_live_conversation(
    make_gateway: MakeGateway, journal_at: str | None
) -> None:
    gw = make_gateway(storage={"postgres": journal_at})
    room = _closed(gw, "cust-1")
    live = gw.start_session("cust-1", "WEB", "browser-cust-1")

    with pytest.raises(IllegalTransitionError, match=live.conversation_id):
        gw.forget_customer("cust-1")
    assert len(gw.history(room)) == 1  # nothing deleted
    assert gw.conversation(live.conversation_id)["state"] != "CLOSED"


def test_forget_deletes_everything_of_a_customer_and_nothing_else(
    make_gateway: MakeGateway, journal_at: str | None
) -> None:
    gw = make_gateway(storage={"postgres": journal_at})
    room = _closed(gw, "cust-1")
    _closed(gw, "cust-1")
    other = _closed(gw, "cust-2")

    forgotten = gw.forget_customer("cust-1")

    assert (forgotten["conversations"], forgotten["rooms"], forgotten["identities"]) == (2, 1, 1)
    assert forgotten["events"] > 0
    with pytest.raises(UnknownIdError):
        gw.history(room)
    assert len(gw.history(other)) == 1
    again = gw.start_session("cust-1", "WEB", "browser-cust-1")  # a new customer now
    assert again.room_id != room


def test_forget_refuses_a_bad_customer_id(make_gateway: MakeGateway) -> None:
    gw = make_gateway()
    with pytest.raises(BadArgumentError, match="customer_id"):
        gw.forget_customer("")


def test_cx_forget_without_a_running_engine_deletes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, system={"admin_port": free_port()})
    assert main(["forget", "cust-1", "--config", str(config)]) == 1
    assert "no actor system is running" in capsys.readouterr().err
