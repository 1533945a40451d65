"""Each definition is written once.

No two top-level classes of the engine share a name: two classes of one name are either the
same thing written twice or two things a reader (and a traceback, a log line, a pickled
message) cannot tell apart. The command registry (``domain.commands.COMMANDS``) is the one list
of commands: every table kept per command covers exactly it.
"""

from __future__ import annotations

import ast
import dataclasses
from collections import defaultdict
from pathlib import Path

import pytest

import domain.commands
from domain.commands import COMMANDS
from domain.conversation import COMMAND_TYPES
from domain.transitions import ACCEPTED_IN
from infra.codec import CodecError, decode_command
from runtime.netgateway.ops import Kind, Param, op_spec_of

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("domain", "infra", "actors", "runtime", "bench")


def top_level_classes(source: str) -> list[str]:
    return [node.name for node in ast.parse(source).body if isinstance(node, ast.ClassDef)]


def class_definitions() -> dict[str, list[str]]:
    """Every top-level class name of the packages -> the modules that define one."""
    found: dict[str, list[str]] = defaultdict(list)
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = path.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".")
            for name in top_level_classes(path.read_text(encoding="utf-8")):
                found[name].append(module)
    return found


def test_top_level_class_names_are_unique_across_the_packages() -> None:
    shared = {name: modules for name, modules in class_definitions().items() if len(modules) > 1}
    assert not shared, f"classes defined more than once: {shared}"


def test_the_walk_finds_top_level_classes_and_their_modules() -> None:
    source = "class A:\n    class Inner: ...\n\nclass B(A): ...\n"
    assert top_level_classes(source) == ["A", "B"]  # nested classes are not top level
    assert class_definitions()["StartSession"] == ["domain.commands"]


def test_the_command_registry_holds_every_command_class_of_its_module() -> None:
    defined = {
        name
        for name, value in vars(domain.commands).items()
        if isinstance(value, type)
        and dataclasses.is_dataclass(value)
        and value.__module__ == "domain.commands"
    }
    assert set(COMMANDS) == defined
    assert all(cls.__name__ == name for name, cls in COMMANDS.items())


def test_every_per_command_table_covers_exactly_the_registry() -> None:
    registry = set(COMMANDS.values())
    assert set(ACCEPTED_IN) == registry
    assert set(COMMAND_TYPES) == registry


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_journal_reads_each_registered_command_name(name: str) -> None:
    # a known name with a field it lacks is refused for the field, not as an unknown command
    with pytest.raises(CodecError, match=f"^{name} has unknown fields"):
        decode_command([name, {"no_such_field": 1}])


def test_a_network_operation_is_read_off_its_gateway_method() -> None:
    def hold(self: object, agent_id: str, seconds: float, note: str | None = None) -> None: ...

    assert op_spec_of("hold", hold).params == (
        Param("agent_id", Kind.STR),
        Param("seconds", Kind.NUMBER),
        Param("note", Kind.STR, required=False, nullable=True),
    )


def test_a_gateway_parameter_with_no_wire_type_is_named() -> None:
    def op(self: object, when: bytes) -> None: ...

    with pytest.raises(TypeError, match=r"Gateway\.op: parameter 'when' is a 'bytes'"):
        op_spec_of("op", op)
