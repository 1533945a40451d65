"""Deployment settings: relative paths anchored at the configuration file, and every key
settable from the environment (``CX_SECTION__KEY``), typed by the schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.config import ConfigError, load_config
from infra.config.environment import variable_of


def _file(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_relative_paths_in_a_file_resolve_against_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _file(
        tmp_path / "etc",
        "storage:\n  archive: data/a.sqlite3\n  journal: data/journal\nlogging:\n  file: cx.log\n",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    settings = load_config("../etc/config.yaml", environ={})
    assert settings.storage.archive == config.parent / "data" / "a.sqlite3"
    assert settings.storage.journal == config.parent / "data" / "journal"
    assert settings.logging.file == config.parent / "cx.log"


def test_the_default_paths_resolve_against_the_files_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _file(tmp_path / "etc", "bot:\n  enabled: true\n")
    monkeypatch.chdir(tmp_path)
    settings = load_config(config, environ={})
    assert settings.storage.journal == config.parent / "data" / "journal"


def test_a_variable_sets_its_key_typed_by_the_schema(tmp_path: Path) -> None:
    settings = load_config(
        _file(tmp_path, ""),
        environ={"CX_SYSTEM__ADMIN_PORT": "1901", "CX_TIMERS__WRAP_UP__ENABLED": "true"},
    )
    assert settings.system.admin_port == 1901
    assert settings.timers.wrap_up_enabled is True


def test_a_nested_key_is_named_by_every_part_of_its_path(tmp_path: Path) -> None:
    settings = load_config(
        _file(tmp_path, ""), environ={variable_of("timers.agent_sla.seconds"): "90"}
    )
    assert settings.timers.agent_sla_seconds == 90


def test_the_environment_overrides_the_file(tmp_path: Path) -> None:
    config = _file(tmp_path, "system:\n  admin_port: 1950\nbot:\n  enabled: false\n")
    settings = load_config(config, environ={"CX_SYSTEM__ADMIN_PORT": "1960"})
    assert (settings.system.admin_port, settings.bot.enabled) == (1960, False)


def test_a_text_key_takes_the_variable_as_written(tmp_path: Path) -> None:
    settings = load_config(_file(tmp_path, ""), environ={"CX_BOT__WELCOME": "yes"})
    assert settings.bot.welcome == "yes"


def test_a_list_key_reads_a_yaml_flow_value(tmp_path: Path) -> None:
    settings = load_config(
        _file(tmp_path, ""), environ={"CX_BOT__AGENT_KEYWORDS": "[person, operator]"}
    )
    assert settings.bot.agent_keywords == ("person", "operator")


def test_a_relative_path_from_the_environment_resolves_against_the_files_directory(
    tmp_path: Path,
) -> None:
    config = _file(tmp_path / "etc", "")
    settings = load_config(config, environ={"CX_STORAGE__JOURNAL": "j"})
    assert settings.storage.journal == config.parent / "j"


def test_a_variable_naming_no_key_is_refused_with_its_name_and_a_suggestion(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(_file(tmp_path, ""), environ={"CX_SYSTEM__ADMIN_PROT": "1901"})
    assert (raised.value.source, raised.value.key) == ("environment", "CX_SYSTEM__ADMIN_PROT")
    assert "did you mean CX_SYSTEM__ADMIN_PORT?" in raised.value.problem


def test_a_bad_value_is_refused_naming_the_variable_and_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(_file(tmp_path, ""), environ={"CX_SYSTEM__ADMIN_PORT": "many"})
    assert raised.value.key == "CX_SYSTEM__ADMIN_PORT"
    assert raised.value.problem.startswith("system.admin_port: expected an integer")


def test_a_variable_naming_a_section_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(_file(tmp_path, ""), environ={"CX_TIMERS__HOLD": "5"})
    assert "is a section" in raised.value.problem


def test_variables_without_a_double_underscore_are_not_keys(tmp_path: Path) -> None:
    environ = {"CX_GATEWAY_TOKEN": "x", "CX_FAILPOINTS": "y", "CX_TEST_POSTGRES": "z"}
    assert load_config(_file(tmp_path, ""), environ=environ) == load_config(
        _file(tmp_path, ""), environ={}
    )


def test_a_mapping_is_complete_without_the_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CX_SYSTEM__ADMIN_PORT", "1999")
    assert load_config({"bot": {"enabled": True}}).system.admin_port == 1900


def test_the_defaults_alone_take_the_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CX_SYSTEM__ADMIN_PORT", "1999")
    assert load_config().system.admin_port == 1999
