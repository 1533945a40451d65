"""Tests of infra.config (and the logging set-up it feeds): defaults, merge, strict errors."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.enums import ThresholdAction
from domain.policy import Threshold
from infra.config import (
    DEFAULTS,
    ConfigError,
    LoggingSettings,
    QueueSettings,
    Settings,
    load_config,
)

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "config.yaml"


def error_of(source: Any) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_config(source)
    return caught.value


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- defaults and the shipped file ---------------------------------------------------------


def test_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "bot: {enabled: false}\n")  # ./config.yaml must NOT be read for None
    s = load_config()
    assert s.source == "<defaults>"
    assert s.system.base == "multiprocTCPBase"
    assert s.system.admin_port == 1900
    assert s.system.bind == "127.0.0.1"
    assert s.system.allow_wide_bind is False
    assert s.system.convention_address is None
    assert (s.placement.per_host, s.placement.hosts) == (10000, 1)
    assert s.storage.archive == tmp_path / "data" / "archive.sqlite3"
    assert s.storage.journal == tmp_path / "data" / "journal"
    assert (s.storage.fsync, s.storage.fsync_interval_ms) == ("interval", 50)
    assert s.bot.enabled is True
    assert s.bot.agent_keywords == ("agent", "human")
    assert s.bot.welcome.startswith("Hello!")
    assert s.bot.class_path is None
    assert s.timers.agent_sla_seconds == 60
    assert s.timers.agent_sla_thresholds == ()
    assert s.timers.customer_inactivity_seconds == 300
    assert dict(s.timers.customer_inactivity_channels) == {}
    assert s.timers.customer_inactivity_thresholds == ()
    assert s.timers.wrap_up_enabled is False
    assert s.timers.wrap_up_seconds == 60
    assert s.timers.hold_max_seconds == 600
    assert s.routing.auto_accept is True
    assert (s.routing.accept_timeout_seconds, s.routing.request_ttl_seconds) == (30, 120)
    assert dict(s.routing.queues) == {}
    assert s.routing.default_queue == "default"
    assert s.gateway.listen == "127.0.0.1:7700"
    assert s.gateway.token is None
    assert s.gateway.max_frame_bytes == 1048576
    assert s.logging == LoggingSettings(format="json", level="info", file=None)
    assert not (tmp_path / "data").exists()  # loading creates no directory


def test_settings_are_frozen_and_read_only() -> None:
    s = load_config({"routing": {"queues": {"billing": {"priority": 5}}}})
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.system.admin_port = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        s.routing.queues["other"] = QueueSettings(None, 0)  # type: ignore[index]
    assert not hasattr(s.system, "__dict__")  # slotted


def test_shipped_config_has_every_default() -> None:
    shipped = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    assert shipped == DEFAULTS


def test_shipped_config_loads_equal_to_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    loaded = load_config("config.yaml")
    assert loaded.source == "config.yaml"
    assert dataclasses.replace(loaded, source="<defaults>") == load_config()


def test_shipped_config_has_security_note() -> None:
    text = SHIPPED.read_text(encoding="utf-8")
    assert "pickled" in text
    assert "loopback" in text


def test_defaults_are_not_changed_by_loading() -> None:
    before = copy.deepcopy(DEFAULTS)
    load_config({"timers": {"agent_sla": {"thresholds": [{"percent": 50, "action": "NONE"}]}}})
    assert before == DEFAULTS


def test_empty_file_means_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "# nothing but a comment\n")
    loaded = load_config(path)
    assert loaded.source == str(path)
    monkeypatch.chdir(tmp_path)  # the defaults' relative paths, anchored where the file is
    assert dataclasses.replace(loaded, source="<defaults>") == load_config()


def test_null_section_keeps_its_defaults(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path, "routing:\nbot:\n  enabled: false\n"))
    assert loaded.routing == load_config().routing
    assert loaded.bot.enabled is False


# --- merge ------------------------------------------------------------------------------


def test_dict_merge_keeps_siblings() -> None:
    s = load_config({"timers": {"agent_sla": {"seconds": 90}}, "bot": {"enabled": False}})
    assert s.source == "<dict>"
    assert s.timers.agent_sla_seconds == 90.0
    assert s.timers.agent_sla_thresholds == ()  # sibling of the overridden key
    assert s.timers.customer_inactivity_seconds == 300  # sibling section
    assert s.bot.enabled is False
    assert s.bot.agent_keywords == ("agent", "human")


def test_lists_replace_and_thresholds_sorted() -> None:
    s = load_config(
        {
            "bot": {"agent_keywords": ["operator"]},
            "timers": {
                "customer_inactivity": {
                    "thresholds": [
                        {"percent": 80, "action": "NOTIFY_CUSTOMER"},
                        {"percent": 50, "action": "NONE"},
                    ]
                }
            },
        }
    )
    assert s.bot.agent_keywords == ("operator",)
    assert s.timers.customer_inactivity_thresholds == (
        Threshold(50, ThresholdAction.NONE),
        Threshold(80, ThresholdAction.NOTIFY_CUSTOMER),
    )


def test_yaml_file_merge(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "timers:\n  customer_inactivity:\n    channels: {WHATSAPP: 86400}\n"
        "logging:\n  level: DEBUG\n  format: console\n",
    )
    s = load_config(path)
    assert s.timers.customer_inactivity_channels == {"WHATSAPP": 86400.0}
    assert s.logging.level == "debug"  # case-insensitive input, stored lower case
    assert s.logging.format == "console"


def test_archivists_default_to_two_and_are_read_from_the_file(tmp_path: Path) -> None:
    assert load_config({}).placement.archivists == 2
    assert load_config(write(tmp_path, "placement: {archivists: 5}\n")).placement.archivists == 5


def test_pathlike_source(tmp_path: Path) -> None:
    path = write(tmp_path, "placement: {per_host: 1, hosts: 4}\n")
    s = load_config(path)
    assert (s.placement.per_host, s.placement.hosts) == (1, 4)
    assert s.source == str(path)


# --- lookups ----------------------------------------------------------------------------


def test_queue_lookups() -> None:
    s = load_config(
        {
            "timers": {"agent_sla": {"seconds": 60}},
            "routing": {
                "queues": {
                    "billing": {"agent_sla_seconds": 90, "priority": 5},
                    "sales": {"priority": -1},
                    "support": None,
                }
            },
        }
    )
    assert s.queue_sla_seconds("billing") == 90.0
    assert s.queue_sla_seconds("sales") == 60.0  # queue without its own SLA
    assert s.queue_sla_seconds("unknown") == 60.0
    assert s.queue_priority("billing") == 5
    assert s.queue_priority("sales") == -1
    assert s.queue_priority("unknown") == 0
    assert s.routing.queues["support"] == QueueSettings(agent_sla_seconds=None, priority=0)


def test_inactivity_lookup() -> None:
    s = load_config(
        {"timers": {"customer_inactivity": {"seconds": 120, "channels": {"WHATSAPP": 86400}}}}
    )
    assert s.inactivity_seconds("WHATSAPP") == 86400.0
    assert s.inactivity_seconds("WEB") == 120.0


# --- paths ------------------------------------------------------------------------------


def test_relative_paths_resolve_against_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_config(
        {"storage": {"archive": "a/b.sqlite3", "journal": "j"}, "logging": {"file": "logs/cx.log"}}
    )
    assert s.storage.archive == tmp_path / "a" / "b.sqlite3"
    assert s.storage.journal == tmp_path / "j"
    assert s.logging.file == tmp_path / "logs" / "cx.log"
    assert s.storage.archive.is_absolute()
    assert not (tmp_path / "a").exists()
    assert not (tmp_path / "logs").exists()


def test_absolute_paths_kept(tmp_path: Path) -> None:
    s = load_config({"storage": {"journal": str(tmp_path / "journal")}})
    assert s.storage.journal == tmp_path / "journal"


# --- errors -----------------------------------------------------------------------------


def test_config_error_fields_and_message() -> None:
    error = ConfigError("config.yaml", "system.base", "expected something")
    assert (error.source, error.key, error.problem) == (
        "config.yaml",
        "system.base",
        "expected something",
    )
    assert str(error) == "config.yaml: system.base: expected something"
    copy_ = pickle.loads(pickle.dumps(error))
    assert (copy_.source, copy_.key, copy_.problem) == (error.source, error.key, error.problem)


def test_unknown_key_with_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, "timers:\n  agent_sal:\n    seconds: 30\n")
    error = error_of(path)
    assert error.source == str(path)
    assert error.key == "timers.agent_sal"
    assert "unknown key" in error.problem
    assert "did you mean timers.agent_sla?" in error.problem
    assert str(error).startswith(f"{path}: timers.agent_sal: ")


def test_unknown_key_deep_and_top_level() -> None:
    error = error_of({"routing": {"queues": {"billing": {"prioriti": 3}}}})
    assert error.key == "routing.queues.billing.prioriti"
    assert "did you mean routing.queues.billing.priority?" in error.problem
    error = error_of({"sytem": {}})
    assert (error.key, error.source) == ("sytem", "<dict>")
    assert "did you mean system?" in error.problem
    error = error_of({"zzz": 1})
    assert error.key == "zzz"
    assert "known keys: system, placement" in error.problem


def test_unknown_key_in_threshold_item() -> None:
    thresholds = [{"percent": 50, "action": "NONE"}, {"percnt": 60, "action": "NONE"}]
    error = error_of({"timers": {"agent_sla": {"thresholds": thresholds}}})
    assert error.key == "timers.agent_sla.thresholds[1].percnt"
    assert "did you mean timers.agent_sla.thresholds[1].percent?" in error.problem


def test_unknown_channel_type() -> None:
    error = error_of({"timers": {"customer_inactivity": {"channels": {"WHATSAP": 10}}}})
    assert error.key == "timers.customer_inactivity.channels.WHATSAP"
    assert "WHATSAPP" in error.problem


def test_wrong_type() -> None:
    error = error_of({"timers": {"agent_sla": {"seconds": "sixty"}}})
    assert error.key == "timers.agent_sla.seconds"
    assert "expected a number of seconds" in error.problem
    assert "string 'sixty'" in error.problem
    error = error_of({"bot": {"agent_keywords": "agent"}})
    assert error.key == "bot.agent_keywords"
    assert "list" in error.problem
    error = error_of({"timers": "fast"})
    assert error.key == "timers"
    assert "expected a mapping" in error.problem


def test_wrong_type_in_list_item() -> None:
    error = error_of({"bot": {"agent_keywords": ["agent", 7]}})
    assert error.key == "bot.agent_keywords[1]"
    assert "integer 7" in error.problem


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ({"system": {"admin_port": True}}, "system.admin_port"),
        ({"placement": {"per_host": False}}, "placement.per_host"),
        ({"timers": {"agent_sla": {"seconds": True}}}, "timers.agent_sla.seconds"),
        ({"routing": {"queues": {"q": {"priority": True}}}}, "routing.queues.q.priority"),
    ],
)
def test_bool_is_not_a_number(override: dict[str, Any], key: str) -> None:
    error = error_of(override)
    assert error.key == key
    assert "boolean True" in error.problem or "boolean False" in error.problem


def test_number_is_not_a_bool() -> None:
    error = error_of({"bot": {"enabled": 1}})
    assert error.key == "bot.enabled"
    assert "expected true or false" in error.problem


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ({"system": {"admin_port": 0}}, "system.admin_port"),
        ({"system": {"admin_port": 65536}}, "system.admin_port"),
        ({"placement": {"routers": 1025}}, "placement.routers"),
        ({"placement": {"per_host": 0}}, "placement.per_host"),
        ({"placement": {"hosts": -1}}, "placement.hosts"),
        ({"placement": {"agent_hosts": 0}}, "placement.agent_hosts"),
        ({"placement": {"archivists": 0}}, "placement.archivists"),
        ({"placement": {"archivists": 65}}, "placement.archivists"),
        ({"placement": {"room_desks": 0}}, "placement.room_desks"),
        ({"placement": {"room_desks": 65}}, "placement.room_desks"),
        ({"storage": {"fsync_interval_ms": 0}}, "storage.fsync_interval_ms"),
        ({"timers": {"agent_sla": {"seconds": 0}}}, "timers.agent_sla.seconds"),
        ({"timers": {"hold": {"max_seconds": -5.5}}}, "timers.hold.max_seconds"),
        ({"timers": {"wrap_up": {"seconds": float("inf")}}}, "timers.wrap_up.seconds"),
        ({"routing": {"request_ttl_seconds": float("nan")}}, "routing.request_ttl_seconds"),
        ({"gateway": {"max_frame_bytes": 63}}, "gateway.max_frame_bytes"),
        ({"gateway": {"listen": "127.0.0.1:65536"}}, "gateway.listen"),
        ({"gateway": {"listen": "no-port"}}, "gateway.listen"),
    ],
)
def test_out_of_range(override: dict[str, Any], key: str) -> None:
    error = error_of(override)
    assert error.key == key
    assert "expected" in error.problem


@pytest.mark.parametrize(
    ("override", "key", "suggestion"),
    [
        ({"system": {"base": "multiprocTcpBase"}}, "system.base", "multiprocTCPBase"),
        ({"storage": {"fsync": "alwyas"}}, "storage.fsync", "always"),
        ({"logging": {"format": "text"}}, "logging.format", None),
        ({"logging": {"level": "verbose"}}, "logging.level", None),
        (
            {"timers": {"agent_sla": {"thresholds": [{"percent": 50, "action": "NOTIFY"}]}}},
            "timers.agent_sla.thresholds[0].action",
            None,
        ),
    ],
)
def test_bad_enum(override: dict[str, Any], key: str, suggestion: str | None) -> None:
    error = error_of(override)
    assert error.key == key
    assert "expected one of" in error.problem
    if suggestion is not None:
        assert f"did you mean {suggestion}?" in error.problem


@pytest.mark.parametrize("percent", [100, 0, 50.0, True])
def test_bad_threshold_percent(percent: Any) -> None:
    thresholds = [{"percent": 30, "action": "NONE"}, {"percent": percent, "action": "NONE"}]
    error = error_of({"timers": {"agent_sla": {"thresholds": thresholds}}})
    assert error.key == "timers.agent_sla.thresholds[1].percent"
    assert "1 to 99" in error.problem


def test_threshold_missing_action_and_duplicate_percent() -> None:
    error = error_of({"timers": {"agent_sla": {"thresholds": [{"percent": 50}]}}})
    assert error.key == "timers.agent_sla.thresholds[0].action"
    assert "missing" in error.problem
    twice = [{"percent": 50, "action": "NONE"}, {"percent": 50, "action": "NOTIFY_AGENT"}]
    error = error_of({"timers": {"customer_inactivity": {"thresholds": twice}}})
    assert error.key == "timers.customer_inactivity.thresholds[1].percent"
    assert "duplicate" in error.problem


def test_bad_class_path_and_bind_address() -> None:
    error = error_of({"bot": {"class_path": "not a path"}})
    assert error.key == "bot.class_path"
    assert "package.module:ClassName" in error.problem
    assert load_config({"bot": {"class_path": "my.bots:SmartBot"}}).bot.class_path == (
        "my.bots:SmartBot"
    )
    error = error_of({"system": {"bind": "localhost"}})
    assert error.key == "system.bind"
    assert "IP address" in error.problem


def test_yaml_syntax_error(tmp_path: Path) -> None:
    path = write(tmp_path, "system:\n  base: multiprocTCPBase\n  bind: [127.0.0.1\nbot: {}\n")
    error = error_of(path)
    assert error.source == str(path)
    assert error.key == "<file>"
    assert "line 4" in error.problem


def test_yaml_duplicate_key_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "timers:\n  hold: {max_seconds: 10}\ntimers:\n  wrap_up: {seconds: 5}\n")
    error = error_of(path)
    assert error.key == "<file>"
    assert "duplicate key 'timers'" in error.problem
    assert "line 3" in error.problem


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    error = error_of(path)
    assert (error.source, error.key) == (str(path), "<file>")
    assert "not found" in error.problem


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    error = error_of(tmp_path)
    assert error.key == "<file>"
    assert "cannot read" in error.problem


@pytest.mark.parametrize("text", ["- system\n- bot\n", "just a string\n", "42\n"])
def test_top_level_not_a_mapping(tmp_path: Path, text: str) -> None:
    error = error_of(write(tmp_path, text))
    assert error.key == "<top level>"
    assert "expected a mapping of sections" in error.problem


def test_wide_bind_refused_without_allow_wide_bind(tmp_path: Path) -> None:
    path = write(tmp_path, "system:\n  bind: 0.0.0.0\n")
    error = error_of(path)
    assert (error.source, error.key) == (str(path), "system.bind")
    assert "allow_wide_bind" in error.problem
    assert "pickled" in error.problem
    error = error_of({"system": {"bind": "10.1.2.3"}})
    assert error.key == "system.bind"


def test_wide_bind_accepted_with_allow_wide_bind() -> None:
    s = load_config({"system": {"bind": "10.1.2.3", "allow_wide_bind": True}})
    assert s.system.bind == "10.1.2.3"
    assert s.system.allow_wide_bind is True


@pytest.mark.parametrize("address", ["127.0.0.2", "::1"])
def test_any_loopback_bind_accepted(address: str) -> None:
    assert load_config({"system": {"bind": address}}).system.bind == address


def test_bad_config_reports_first_error_and_builds_nothing() -> None:
    # A valid change alongside a bad one: no Settings is returned at all.
    with pytest.raises(ConfigError) as caught:
        load_config({"bot": {"enabled": False}, "logging": {"level": "loud"}})
    assert caught.value.key == "logging.level"


def test_not_a_source_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        load_config(42)  # type: ignore[arg-type]


# --- property: junk never escapes as anything but ConfigError ------------------------------

_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(
        [
            "system",
            "timers",
            "agent_sla",
            "seconds",
            "thresholds",
            "percent",
            "WHATSAPP",
            "queues",
            "bind",
            "0.0.0.0",
            "127.0.0.1",
            "info",
            "NONE",
        ]
    )
)
_keys = (
    st.sampled_from(
        [
            "system",
            "placement",
            "storage",
            "bot",
            "timers",
            "routing",
            "gateway",
            "logging",
            "agent_sla",
            "customer_inactivity",
            "channels",
            "thresholds",
            "seconds",
            "percent",
            "action",
            "queues",
            "priority",
            "bind",
            "allow_wide_bind",
            "level",
            "file",
            "WEB",
        ]
    )
    | st.text(max_size=8)
    | st.integers()
    | st.none()
)
_junk = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_keys, children, max_size=5),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_keys, _junk, max_size=6))
def test_junk_gives_settings_or_config_error(junk: dict[Any, Any]) -> None:
    try:
        result = load_config(junk)
    except ConfigError as error:
        assert error.source == "<dict>"
        assert error.key
        assert error.problem
    else:
        assert isinstance(result, Settings)
        assert result.source == "<dict>"


@settings(max_examples=100, deadline=None)
@given(_junk)
def test_junk_yaml_file_gives_settings_or_config_error(tmp_path_factory: Any, junk: Any) -> None:
    path = tmp_path_factory.mktemp("junk") / "config.yaml"
    path.write_text(yaml.safe_dump(junk), encoding="utf-8")
    try:
        result = load_config(path)
    except ConfigError as error:
        assert error.source == str(path)
    else:
        assert isinstance(result, Settings)


# --- logging ----------------------------------------------------------------------------


def test_logging_json_to_file_with_level_filter(tmp_path: Path) -> None:
    from infra.logs import configure_logging, get_logger

    log = get_logger("test.config", conversation_id="c1")  # before configuring: lazy
    log_file = tmp_path / "cx.log"
    try:
        configure_logging(LoggingSettings(format="json", level="warning", file=log_file))
        log.info("dropped")
        log.warning("kept", n=3)
        lines = log_file.read_text(encoding="utf-8").splitlines()
        assert len(lines) == 1
        record = json.loads(lines[0])
        assert record["event"] == "kept"
        assert record["level"] == "warning"
        assert record["n"] == 3
        assert record["conversation_id"] == "c1"
        assert record["logger_name"] == "test.config"
        assert record["timestamp"].endswith("Z")
    finally:
        configure_logging(LoggingSettings(format="json", level="info", file=None))


def test_logging_console_reconfigures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from infra.logs import configure_logging, get_logger

    log = get_logger("test.console")
    try:
        configure_logging(LoggingSettings(format="json", level="info", file=None))
        configure_logging(
            LoggingSettings(format="json", level="debug", file=None), force_console=True
        )
        log.debug("readable", k="v")
        err = capsys.readouterr().err
        assert "readable" in err
        assert "k=v" in err
        assert not err.lstrip().startswith("{")
    finally:
        configure_logging(LoggingSettings(format="json", level="info", file=None))


# --- storage.postgres ------------------------------------------------------------------------


def test_postgres_connection_string_is_kept_as_given() -> None:
    settings = load_config({"storage": {"postgres": "host=db1 port=5433 dbname=cx user=cx"}})
    assert settings.storage.postgres == "host=db1 port=5433 dbname=cx user=cx"


def test_postgres_defaults_to_the_files() -> None:
    assert load_config({}).storage.postgres is None


def test_postgres_string_that_libpq_cannot_parse_is_refused() -> None:
    error = error_of({"storage": {"postgres": "host=db1 dbname"}})
    assert error.key == "storage.postgres"
    assert "not a PostgreSQL connection string" in error.problem


def test_postgres_password_in_the_config_is_refused_without_showing_it() -> None:
    error = error_of({"storage": {"postgres": "postgresql://cx:s3cret-pw@db1/cx"}})
    assert error.key == "storage.postgres"
    assert "PGPASSWORD" in error.problem
    assert "s3cret-pw" not in str(error)
