"""Fuzzing the config loader.

``load_config`` on random and malformed YAML files and mappings only ever returns ``Settings`` or
raises ``ConfigError`` naming the source (and the key), within a time bound; what it accepts
is sane (loopback bind unless allowed, finite positive durations). The regression tests at the
end are failures the fuzzing found (F1-F3 in docs/RELIABILITY.md; fixed in config.py since).

The long run is ``python -m bench.fuzz`` (docs/RELIABILITY.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given

from bench.fuzz import (
    check_config_mapping,
    check_config_text,
)
from infra.config import ConfigError, load_config
from tests.fuzz_support import FUZZ, STRATEGIES, held

ROOT = Path(__file__).resolve().parent.parent


@FUZZ
@given(STRATEGIES["config_text"])
def test_a_config_file_loads_or_is_a_config_error(data: bytes) -> None:
    outcome = held(lambda: check_config_text(data))
    assert outcome in ("loaded", "refused") or outcome.startswith("known:")


@FUZZ
@given(STRATEGIES["config_mapping"])
def test_a_config_mapping_loads_or_is_a_config_error(value: dict[Any, Any]) -> None:
    outcome = held(lambda: check_config_mapping(value))
    assert outcome in ("loaded", "refused") or outcome.startswith("known:")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "# only a comment\n",
        "[1, 2]\n",
        "just text\n",
        "system: {bind: 0.0.0.0}\n",
        "timers: {agent_sla: {seconds: .nan}}\n",
        "timers: {agent_sla: {seconds: .inf}}\n",
        "placement: {per_host: 99999999999999999999999999999999999999}\n",
        "a: 1\na: 2\n",
        "bot: !!python/object:os.system {}\n",
        "bot: {welcome: !!binary aGVsbG8=}\n",
        "routing: {queues: {? [a, b] : {}}}\n",
        "storage: {journal: ~nobody-here/x}\n",
        "\t\x00\xff",
    ],
)
def test_hand_picked_files_load_or_are_config_errors(text: str, tmp_path: Path) -> None:
    assert check_config_text(text.encode("utf-8", "surrogateescape"), tmp_path) in (
        "loaded",
        "refused",
    )


# ------------------------------------------------------------------------------ found by fuzzing


@pytest.mark.parametrize(
    "escape", ["\\U00110000", "\\U9003A4F3"], ids=["ValueError", "OverflowError"]
)
def test_an_invalid_unicode_escape_is_a_config_error(tmp_path: Path, escape: str) -> None:
    """Found by the atheris run. PyYAML turns a double-quoted ``\\U`` escape beyond U+10FFFF
    into ``chr()``, which raises ValueError (``chr() arg not in range(0x110000)``) or, past
    2**31, OverflowError; ``_read_file`` catches only YAMLError, so they leave load_config."""
    path = tmp_path / "config.yaml"
    path.write_text(f'bot:\n  welcome: "{escape}"\n')
    with pytest.raises(ConfigError, match=r"config\.yaml: "):
        load_config(path)


def test_deeply_nested_yaml_is_a_config_error(tmp_path: Path) -> None:
    """PyYAML's composer recurses once per nesting level: 2,000 ``[`` (4 KB) raise
    RecursionError out of load_config instead of a ConfigError."""
    path = tmp_path / "config.yaml"
    path.write_text("bot:\n  welcome: " + "[" * 2000 + "]" * 2000 + "\n")
    with pytest.raises(ConfigError, match=r"config\.yaml: "):
        load_config(path)


def test_a_deeply_nested_value_in_a_mapping_is_a_config_error() -> None:
    """``_show`` (the value in the message) calls ``repr`` and catches only ValueError: a
    nested value raises RecursionError out of load_config."""
    value: list[Any] = []
    for _ in range(100_000):
        value = [value]
    with pytest.raises(ConfigError, match=r"bot\.welcome"):
        load_config({"bot": {"welcome": value}})


def test_an_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    """YAML aliases make a 400-byte file a list of 9**8 items (shared, so cheap to build);
    ``_show`` then ``repr``s all of it to cut the text to 60 characters: 6 s and 0.5 GB here,
    nine times more for each further level. Run in a child process with a memory cap."""
    levels = 8
    items = ["&l0 [x,x,x,x,x,x,x,x,x]"] + [
        f"&l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels)
    ]
    path = tmp_path / "config.yaml"
    path.write_text("bot:\n  welcome: [" + ", ".join(items) + "]\n")
    program = textwrap.dedent(
        f"""
        import resource, sys, time
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
        from infra.config import ConfigError, load_config
        started = time.monotonic()
        try:
            load_config({str(path)!r})
        except ConfigError as error:
            print("ConfigError", round(time.monotonic() - started, 2), str(error)[:100])
        """
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", program],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("load_config did not finish within 20 s on a 400-byte file")
    assert done.stdout.startswith("ConfigError"), done.stderr[-500:]
    seconds = float(done.stdout.split()[1])
    assert seconds < 1.0, f"load_config took {seconds} s on a {path.stat().st_size}-byte file"
