"""Tests and benchmarks use the engine and Thespian through their public API only.

What a test or benchmark may not do (every ``.py`` file under ``tests/`` and ``bench/`` is
parsed, nothing is imported):

- read, write or patch an attribute whose name starts with one underscore (``gw._system``,
  ``Archive._write``, ``getattr(x, "_y")``, ``monkeypatch.setattr(X, "_y", ...)``) on anything
  but ``self`` or ``cls``; dunders (``__dict__``, ``__name__``) are Python's, not private;
- import a name that starts with one underscore (``from infra.journal import FRAME``);
- import from Thespian anything but its documented API: ``thespian`` itself (its version) and
  ``thespian.actors``, ``thespian.troupe``, ``thespian.initmsgs``, ``thespian.transient``,
  ``thespian.runcommand``. ``thespian.system.*`` is Thespian's implementation.

What a test needs to see behind a Gateway (where a conversation lives, its pid, the actor
objects of an embedded engine, raw messages) is in :mod:`runtime.testing`; what a benchmark
needs to batch is :meth:`runtime.gateway.Gateway.pipeline`.

:data:`KNOWN` names the few reaches that remain into internals of other modules (white-box
checks of the journal's framing, the conversation machine's handlers and the network
gateway's connections). Each is found where it is named (the list only shrinks: an entry that
no longer occurs fails the test), and nothing else is.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("tests", "bench")
THESPIAN_PUBLIC = frozenset(
    {
        "thespian",
        "thespian.actors",
        "thespian.troupe",
        "thespian.initmsgs",
        "thespian.transient",
        "thespian.runcommand",
    }
)
#: (file, what) for the reaches into other modules' internals still allowed.
KNOWN = frozenset(
    {
    }
)
_PATCHERS = frozenset({"getattr", "setattr", "delattr", "hasattr"})


@dataclass(frozen=True, slots=True)
class Reach:
    file: str
    line: int
    what: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.file, self.what)


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _named_private(node: ast.expr | None) -> str | None:
    """A string literal naming a private attribute (the last part of a dotted one)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        last = node.value.rsplit(".", 1)[-1]
        if _private(last):
            return node.value
    return None


def reaches(source: str, file: str) -> list[Reach]:
    """Every private access and non-public Thespian import in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            owner = node.value
            if not (isinstance(owner, ast.Name) and owner.id in ("self", "cls")):
                found.append(Reach(file, node.lineno, ast.unparse(node)))
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else None
            method = func.attr if isinstance(func, ast.Attribute) else None
            if name in _PATCHERS and len(node.args) >= 2:
                named = _named_private(node.args[1])
            elif method in ("setattr", "delattr", "setitem") and node.args:
                named = _named_private(node.args[1] if len(node.args) >= 2 else node.args[0])
                named = named or _named_private(node.args[0])
            else:
                named = None
            if named is not None:
                found.append(Reach(file, node.lineno, f"{ast.unparse(func)} {named}"))
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            for alias in node.names:
                if _private(alias.name):
                    found.append(
                        Reach(file, node.lineno, f"import {alias.name} from {node.module}")
                    )
            if node.module.startswith("thespian") and node.module not in THESPIAN_PUBLIC:
                found.append(Reach(file, node.lineno, f"import from {node.module}"))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("thespian") and alias.name not in THESPIAN_PUBLIC:
                    found.append(Reach(file, node.lineno, f"import {alias.name}"))
    return found


def scanned() -> list[Reach]:
    found = []
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            found += reaches(path.read_text(), path.relative_to(ROOT).as_posix())
    return found


def test_no_test_or_benchmark_reaches_a_private_attribute_or_thespians_internals() -> None:
    unknown = [f"{r.file}:{r.line}: {r.what}" for r in scanned() if r.key not in KNOWN]
    assert unknown == [], "use runtime.testing or the public API instead:\n" + "\n".join(unknown)


def test_every_known_reach_still_occurs() -> None:
    """An entry of KNOWN that is gone is removed from it, so that it cannot come back."""
    assert KNOWN - {r.key for r in scanned()} == set()


def test_the_check_finds_each_kind_of_reach() -> None:
    source = "\n".join(
        [
            "from infra.journal import _FRAME",
            "from thespian.system.transport.IPBase import TCPv4ActorAddress",
            "import thespian.system.simpleSystemBase",
            "gw._system.tell(x, y)",
            "getattr(gw, '_actors')",
            "monkeypatch.setattr(Archive, '_write', counting)",
            "monkeypatch.setattr('infra.archive.Archive._write', counting)",
        ]
    )
    found = {r.what for r in reaches(source, "t.py")}
    assert found == {
        "import _FRAME from infra.journal",
        "import from thespian.system.transport.IPBase",
        "import thespian.system.simpleSystemBase",
        "gw._system",
        "getattr _actors",
        "monkeypatch.setattr _write",
        "monkeypatch.setattr infra.archive.Archive._write",
    }


def test_the_check_lets_public_and_own_attributes_through() -> None:
    source = "\n".join(
        [
            "from thespian.actors import ActorSystem",
            "import thespian",
            "self._pids[key] = 1",
            "cls._cache.clear()",
            "x.__dict__, type(x).__name__",
            "from runtime import testing",
            "testing.host_of(gw, cid)",
        ]
    )
    assert reaches(source, "t.py") == []
