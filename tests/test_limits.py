"""The bounds on a caller's input (domain.limits): the gateway refuses one past each, and the
network gateway's configurable bounds default to the configuration's own defaults."""

from __future__ import annotations

import pytest

from domain.limits import MAX_EXTERNAL_ID, MAX_ID, MAX_NAME, MAX_TEXT
from infra.config import load_config
from runtime.gateway import BadArgumentError, UnknownIdError
from runtime.netgateway.limits import Limits, limits_of
from tests.conftest import MakeGateway


def test_a_message_text_of_max_text_characters_is_taken_and_one_more_is_refused(
    make_gateway: MakeGateway,
) -> None:
    gw = make_gateway()
    ref = gw.start_session("cust-1", "WEB", "visitor-1")
    gw.customer_message(ref.channel_session_id, "x" * MAX_TEXT)
    with pytest.raises(BadArgumentError, match=f"at most {MAX_TEXT} characters"):
        gw.customer_message(ref.channel_session_id, "x" * (MAX_TEXT + 1))
    texts = [
        e["data"]["text"] for e in gw.events(ref.conversation_id) if e["name"] == "CUSTOMER_MESSAGE"
    ]
    assert [len(t) for t in texts] == [MAX_TEXT]


@pytest.mark.parametrize(
    ("argument", "limit"),
    [("customer_id", MAX_ID), ("identifier", MAX_EXTERNAL_ID)],
)
def test_a_session_id_one_character_past_its_bound_is_refused_naming_it(
    make_gateway: MakeGateway, argument: str, limit: int
) -> None:
    gw = make_gateway()
    args = {"customer_id": "cust-1", "channel": "WEB", "identifier": "visitor-1"}
    gw.start_session(**{**args, argument: "i" * limit})
    with pytest.raises(BadArgumentError, match=f"{argument} must be .* at most {limit} characters"):
        gw.start_session(**{**args, argument: "i" * (limit + 1)})


@pytest.mark.parametrize("argument", ["customer_id", "identifier"])
@pytest.mark.parametrize("control", ["\x00", "\n", "\x7f", "\x85"])
def test_an_id_holding_a_control_character_is_refused_naming_it_and_opens_nothing(
    make_gateway: MakeGateway, argument: str, control: str
) -> None:
    gw = make_gateway()
    args = {"customer_id": "cust-1", "channel": "WEB", "identifier": "visitor-1"}
    with pytest.raises(BadArgumentError, match=f"{argument} must not contain control characters"):
        gw.start_session(**{**args, argument: f"i{control}d"})
    assert gw.status()["conversations"] == {}


def test_a_room_id_one_character_past_max_id_is_refused(make_gateway: MakeGateway) -> None:
    gw = make_gateway()
    with pytest.raises(UnknownIdError):  # checked, then looked up
        gw.history("r" * MAX_ID)
    with pytest.raises(BadArgumentError, match=f"room_id must be .* at most {MAX_ID} characters"):
        gw.history("r" * (MAX_ID + 1))


def test_a_name_one_character_past_max_name_is_refused(make_gateway: MakeGateway) -> None:
    gw = make_gateway()
    gw.agent_login("a" * MAX_NAME)
    with pytest.raises(BadArgumentError, match=f"agent_id must be .* at most {MAX_NAME}"):
        gw.agent_login("a" * (MAX_NAME + 1))


def test_the_network_gateways_configurable_bounds_default_to_the_configurations() -> None:
    assert Limits() == limits_of(load_config())
