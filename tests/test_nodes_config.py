"""A node's configuration: the leader it joins, its name and what it offers, as Thespian
capabilities; the convention timing set in the environment; bad values refused by name."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from infra.config import ConfigError, load_config
from runtime.convention import (
    CONVENTION_CAPABILITY,
    CONVENTION_ENVIRONMENT,
    HOSTS_CAPABILITY,
    NODE_CAPABILITY,
    WEIGHT_CAPABILITY,
    capabilities,
    set_convention_environment,
)


def system(**keys: Any) -> dict[str, Any]:
    return {"system": keys}


def test_member_capabilities_name_the_leader_to_join() -> None:
    caps = capabilities(load_config(system(convention_address="10.0.0.1:1900")))
    assert caps[CONVENTION_CAPABILITY] == "10.0.0.1:1900"


def test_leader_capabilities_have_no_convention_address() -> None:
    assert CONVENTION_CAPABILITY not in capabilities(load_config(None))


def test_capabilities_advertise_node_name_and_offer() -> None:
    caps = capabilities(load_config(system(node="n2", conversation_hosts=False, weight=3)))
    assert caps[NODE_CAPABILITY] == "n2"
    assert caps[HOSTS_CAPABILITY] is False
    assert caps[WEIGHT_CAPABILITY] == 3


def test_node_name_defaults_to_the_hostname() -> None:
    assert capabilities(load_config(None))[NODE_CAPABILITY] == socket.gethostname()


def test_capabilities_keep_the_admin_port() -> None:
    assert capabilities(load_config(system(admin_port=1999)))["Admin Port"] == 1999


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("convention_address", "no-port"),
        ("convention_address", "host:99999"),
        ("node", ""),
        ("conversation_hosts", "yes"),
        ("weight", 0),
    ],
)
def test_bad_node_setting_is_refused_naming_the_key(key: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=f"system.{key}"):
        load_config(system(**{key: value}))


def test_convention_environment_is_set_when_absent() -> None:
    environ: dict[str, str] = {}
    set_convention_environment(environ)
    assert environ == dict(CONVENTION_ENVIRONMENT)


def test_convention_environment_keeps_an_operators_value() -> None:
    environ = {"CONVENTION_REREGISTRATION_PERIOD": "0:30"}
    set_convention_environment(environ)
    assert environ["CONVENTION_REREGISTRATION_PERIOD"] == "0:30"
