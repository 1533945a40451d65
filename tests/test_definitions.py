"""Each definition is written once: no two top-level classes of the engine share a name.

Two classes of one name are either the same thing written twice or two things a reader (and
a traceback, a log line, a pickled message) cannot tell apart.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

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
