"""Drain and reload of a running engine (docs/OPERATIONS.md, "Drain" and "Reload"): an
embedded engine on the virtual clock, its configuration a file that the test rewrites."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.config import load_config
from infra.reload import changes_of, config_key, reloaded
from runtime.gateway import BadArgumentError, Gateway, UnavailableError
from runtime.netgateway import serve
from tests.conftest import (
    TEST_TIME_LIMIT_S,
    MakeGateway,
    deep_merge,
    storage_config,
    watchdog,
)
from tests.test_netgateway import MAX_FRAME, TOKEN, RawClient

FIRST_WELCOME = "Welcome to the shop."
NEW_WELCOME = "Welcome to the new shop."


class ConfigFile:
    """A configuration file: the engine starts on it, the test changes it."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "config.yaml"
        self.config = deep_merge(storage_config(directory), {"bot": {"welcome": FIRST_WELCOME}})
        self.write()

    def write(self, **changes: Any) -> None:
        self.config = deep_merge(self.config, changes)
        self.path.write_text(yaml.safe_dump(self.config))


@pytest.fixture
def config_file(tmp_path: Path) -> ConfigFile:
    return ConfigFile(tmp_path)


@pytest.fixture
def gw(config_file: ConfigFile) -> Iterator[Gateway]:
    with watchdog(TEST_TIME_LIMIT_S, "the test"), Gateway.embedded(config_file.path) as gateway:
        yield gateway


def bot_texts(gw: Gateway, conversation_id: str) -> list[str]:
    events = gw.events(conversation_id)
    return [str(e["data"]["text"]) for e in events if e["name"] == "BOT_MESSAGE"]


def inactivity_seconds(gw: Gateway, conversation_id: str) -> list[float]:
    events = gw.events(conversation_id)
    return [e["data"]["seconds"] for e in events if e["name"] == "CUSTOMER_SLA_STARTED"]


def no_agent_times(gw: Gateway, conversation_id: str) -> int:
    return [e["name"] for e in gw.events(conversation_id)].count("NO_AGENT_AVAILABLE")


def test_a_reload_changes_the_bot_welcome_for_new_conversations_only(
    gw: Gateway, config_file: ConfigFile
) -> None:
    before = gw.start_session("cust-1", "WEB", "visitor-1")
    config_file.write(bot={"welcome": NEW_WELCOME})

    assert gw.reload_config() == ["bot.welcome"]

    after = gw.start_session("cust-2", "WEB", "visitor-2")
    assert bot_texts(gw, before.conversation_id) == [FIRST_WELCOME]
    assert bot_texts(gw, after.conversation_id) == [NEW_WELCOME]


def test_a_reload_changes_timers_for_new_conversations_while_live_ones_keep_theirs(
    gw: Gateway, config_file: ConfigFile
) -> None:
    before = gw.start_session("cust-1", "WEB", "visitor-1")
    config_file.write(timers={"customer_inactivity": {"seconds": 100}})

    assert gw.reload_config() == ["timers.customer_inactivity.seconds"]

    after = gw.start_session("cust-2", "WEB", "visitor-2")
    gw.advance(100)
    assert set(inactivity_seconds(gw, before.conversation_id)) == {300}
    assert set(inactivity_seconds(gw, after.conversation_id)) == {100}
    assert gw.conversation(after.conversation_id)["state"] == "CLOSED"
    assert gw.conversation(before.conversation_id)["state"] == "CREATED"


def test_a_reload_gives_the_routers_the_new_request_deadline_for_requests_made_after_it(
    gw: Gateway, config_file: ConfigFile
) -> None:
    before = gw.start_session("cust-1", "WEB", "visitor-1")
    gw.request_agent(before.conversation_id)
    config_file.write(routing={"request_ttl_seconds": 30})

    assert gw.reload_config() == ["routing.request_ttl_seconds"]

    after = gw.start_session("cust-2", "WEB", "visitor-2")
    gw.request_agent(after.conversation_id)
    gw.advance(30)
    assert no_agent_times(gw, after.conversation_id) == 1
    assert no_agent_times(gw, before.conversation_id) == 0
    gw.advance(90)  # the first request's deadline: the 120 s it was queued with
    assert no_agent_times(gw, before.conversation_id) == 1


def test_a_reload_that_changes_a_fixed_key_is_refused_naming_it_and_changes_nothing(
    gw: Gateway, config_file: ConfigFile
) -> None:
    config_file.write(bot={"welcome": NEW_WELCOME}, placement={"per_host": 7})

    with pytest.raises(BadArgumentError, match=r"placement\.per_host") as refused:
        gw.reload_config()

    assert "bot.welcome" not in str(refused.value)
    ref = gw.start_session("cust-1", "WEB", "visitor-1")
    assert bot_texts(gw, ref.conversation_id) == [FIRST_WELCOME]


def test_a_reload_of_an_invalid_file_is_refused_naming_its_key_and_changes_nothing(
    gw: Gateway, config_file: ConfigFile
) -> None:
    config_file.write(bot={"welcome": NEW_WELCOME}, timers={"wrap_up": {"seconds": -5}})

    with pytest.raises(BadArgumentError, match=r"timers\.wrap_up\.seconds"):
        gw.reload_config()

    ref = gw.start_session("cust-1", "WEB", "visitor-1")
    assert bot_texts(gw, ref.conversation_id) == [FIRST_WELCOME]


def test_reloading_the_same_configuration_again_changes_nothing(
    gw: Gateway, config_file: ConfigFile
) -> None:
    config_file.write(bot={"welcome": NEW_WELCOME})

    assert gw.reload_config() == ["bot.welcome"]
    assert gw.reload_config() == []

    ref = gw.start_session("cust-1", "WEB", "visitor-1")
    assert bot_texts(gw, ref.conversation_id) == [NEW_WELCOME]


def test_the_keys_a_start_sets_are_neither_compared_nor_changed_by_a_reload(
    config_file: ConfigFile, tmp_path: Path
) -> None:
    from_file = load_config(config_file.path)
    running = replace(  # as cx start --salvage-journal runs it: logs to its log file, as JSON
        from_file,
        logging=replace(from_file.logging, file=tmp_path / "cx.log", format="json"),
        storage=replace(from_file.storage, salvage_journal=True),
    )
    config_file.write(bot={"welcome": NEW_WELCOME})
    new = load_config(config_file.path)

    changes = changes_of(running, new)
    applied = reloaded(running, new)

    assert (changes.reloadable, changes.fixed) == (("bot.welcome",), ())
    assert applied.logging == running.logging and applied.storage == running.storage
    assert applied.bot.welcome == NEW_WELCOME


def test_the_levels_file_a_start_sets_does_not_refuse_a_reload(
    config_file: ConfigFile, tmp_path: Path
) -> None:
    from_file = load_config(config_file.path)
    running = replace(  # as the daemon runs it: cx log-level writes its levels file
        from_file, logging=replace(from_file.logging, levels=tmp_path / "cx.levels.json")
    )
    config_file.write(bot={"welcome": NEW_WELCOME})

    changes = changes_of(running, load_config(config_file.path))

    assert (changes.reloadable, changes.fixed) == (("bot.welcome",), ())


@pytest.mark.parametrize(
    ("path", "key"),
    [
        ("timers.agent_sla_thresholds", "timers.agent_sla.thresholds"),
        ("timers.customer_inactivity_channels.SMS", "timers.customer_inactivity.channels.SMS"),
        ("timers.wrap_up_enabled", "timers.wrap_up.enabled"),
        ("timers.hold_max_seconds", "timers.hold.max_seconds"),
        ("routing.queues.vip.priority", "routing.queues.vip.priority"),
        ("storage.fsync", "storage.fsync"),
    ],
)
def test_a_reload_names_each_key_as_the_configuration_file_spells_it(path: str, key: str) -> None:
    assert config_key(path) == key


def test_an_engine_configured_from_a_mapping_refuses_a_reload(tmp_path: Path) -> None:
    with (
        Gateway.embedded(storage_config(tmp_path)) as gateway,
        pytest.raises(BadArgumentError, match="not read from a file"),
    ):
        gateway.reload_config()


def test_a_drain_refuses_new_conversations_and_lets_a_live_one_finish_to_closed(
    gw: Gateway,
) -> None:
    gw.agent_login("agent-1")
    gw.agent_ready("agent-1")
    ref = gw.start_session("cust-1", "WEB", "visitor-1")
    gw.customer_message(ref.channel_session_id, "I want an agent")

    assert gw.drain_engine() == {"draining": True, "live": 1}
    with pytest.raises(UnavailableError, match="draining"):
        gw.start_session("cust-2", "WEB", "visitor-2")

    gw.agent_message("agent-1", ref.conversation_id, "How can I help?")
    gw.customer_message(ref.channel_session_id, "Thanks, all done")
    gw.end_conversation(ref.conversation_id)
    assert gw.conversation(ref.conversation_id)["state"] == "CLOSED"
    assert gw.drain_status() == {"draining": True, "live": 0}
    names = [e["name"] for e in gw.events(ref.conversation_id)]
    assert names.count("AGENT_MESSAGE") == 1 and names.count("CUSTOMER_MESSAGE") == 2


def test_a_drain_still_lets_a_session_join_its_rooms_live_conversation(gw: Gateway) -> None:
    first = gw.start_session("cust-1", "WEB", "visitor-1")
    gw.drain_engine()

    second = gw.start_session("cust-1", "WHATSAPP", "+3161234", room_id=first.room_id)

    assert second.conversation_id == first.conversation_id


def test_an_engine_not_draining_says_so(gw: Gateway) -> None:
    gw.start_session("cust-1", "WEB", "visitor-1")

    assert gw.drain_status() == {"draining": False, "live": 1}


def test_the_network_gateway_offers_the_drain_and_refuses_new_conversations_unavailable(
    make_gateway: MakeGateway,
) -> None:
    server = serve(lambda: make_gateway(seed=1), "127.0.0.1:0", TOKEN, MAX_FRAME)
    client = RawClient(server.port)
    try:
        client.authenticate()
        client.call("start_session", customer_id="c1", channel="WEB", identifier="c1-web")

        assert client.call("drain_engine") == {"draining": True, "live": 1}
        error = client.refused(
            "start_session", {"customer_id": "c2", "channel": "WEB", "identifier": "c2-web"}
        )
        assert error["type"] == "unavailable" and "draining" in error["message"]
        assert client.call("drain_status") == {"draining": True, "live": 1}
    finally:
        client.close()
        server.close()
