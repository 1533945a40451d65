"""The keys of a node in a multi-node system (``system.convention_address``, ``system.node``,
``system.offers_hosts``, ``system.weight``, ``system.offers_agent_hosts``,
``system.offers_archivists``, the heartbeat keys) and what the node advertises."""

from __future__ import annotations

import socket

import pytest

from actors.nodes import (
    AGENT_HOSTS_CAPABILITY,
    ARCHIVISTS_CAPABILITY,
    CONVENTION_CAPABILITY,
    HOSTS_CAPABILITY,
    NODE_CAPABILITY,
    WEIGHT_CAPABILITY,
)
from infra.config import ConfigError, load_config
from runtime.system import (
    THESPIAN_TIMING,
    node_capabilities,
    set_thespian_timing,
)


def test_a_member_advertises_the_leader_it_joins() -> None:
    settings = load_config({"system": {"convention_address": "10.0.0.1:1900"}})
    assert node_capabilities(settings, 1)[CONVENTION_CAPABILITY] == "10.0.0.1:1900"


def test_a_leader_advertises_no_convention_address() -> None:
    assert CONVENTION_CAPABILITY not in node_capabilities(load_config(), 1)


def test_a_node_advertises_its_name_and_what_it_offers() -> None:
    settings = load_config({"system": {"node": "n2", "offers_hosts": False, "weight": 3}})
    capabilities = node_capabilities(settings, 1)
    assert capabilities[NODE_CAPABILITY] == "n2"
    assert capabilities[HOSTS_CAPABILITY] is False
    assert capabilities[WEIGHT_CAPABILITY] == 3


def test_a_node_advertises_whether_it_takes_agent_hosts_and_archivists() -> None:
    settings = load_config({"system": {"offers_agent_hosts": False, "offers_archivists": True}})
    capabilities = node_capabilities(settings, 1)
    assert capabilities[AGENT_HOSTS_CAPABILITY] is False
    assert capabilities[ARCHIVISTS_CAPABILITY] is True


def test_a_node_without_a_name_is_named_after_the_host() -> None:
    assert node_capabilities(load_config(), 1)[NODE_CAPABILITY] == socket.gethostname()


@pytest.mark.parametrize("address", ["leader", "10.0.0.1", "10.0.0.1:99999", ""])
def test_a_convention_address_that_is_not_host_port_is_refused(address: str) -> None:
    with pytest.raises(ConfigError, match=r"system\.convention_address"):
        load_config({"system": {"convention_address": address}})


@pytest.mark.parametrize("name", ["", "-n1", "n 1", "n/1", 7])
def test_a_bad_node_name_is_refused(name: object) -> None:
    with pytest.raises(ConfigError, match=r"system\.node"):
        load_config({"system": {"node": name}})


def test_a_weight_below_one_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"system\.weight"):
        load_config({"system": {"weight": 0}})


def test_death_before_suspicion_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"system\.dead_after"):
        load_config({"system": {"suspect_after": 4, "dead_after": 4}})


def test_thespian_timing_fills_the_environment() -> None:
    environ: dict[str, str] = {}
    set_thespian_timing(environ)
    assert environ == dict(THESPIAN_TIMING)


def test_thespian_timing_keeps_what_the_environment_says() -> None:
    environ = {"THESPIAN_TRANSMIT_TIMEOUT_PERIOD": "0:30"}
    set_thespian_timing(environ)
    assert environ["THESPIAN_TRANSMIT_TIMEOUT_PERIOD"] == "0:30"
    assert (
        environ["CONVENTION_REREGISTRATION_PERIOD"]
        == THESPIAN_TIMING["CONVENTION_REREGISTRATION_PERIOD"]
    )
