"""One error tree: every exception the engine defines derives from ``CxError`` and knows its
``ErrorKind``; a kind maps to one exception class and back; the wire spells each kind as
docs/PROTOCOL.md documents it; a domain refusal reaches the caller as its class, kind intact."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import domain.errors
from domain.errors import (
    ERROR_CLASSES,
    WIRE_KINDS,
    BadArgumentError,
    CxError,
    ErrorKind,
    GatewayError,
    IllegalTransition,
    IllegalTransitionError,
    InvalidArgument,
    Refused,
    UnknownIdError,
    UnknownParticipant,
    error_for,
)
from runtime.gateway import Gateway
from runtime.netgateway import ERROR_TYPES
from runtime.netgateway.codec import decode, failure
from tests.conftest import MakeGateway
from tests.test_gateway_scenarios import active_with, ready

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("domain", "infra", "actors", "runtime")
_DRAWN = re.compile(
    r"^(?:[│ ]   )*(?:[├└]── )?(?P<name>\w+) \[(?P<kind>[^\]]+)\](?: \((?P<module>[\w.]+))?"
)


def _defined_exceptions() -> Iterator[type[BaseException]]:
    """Every exception class defined at the top level of a module of the engine's packages."""
    for package in PACKAGES:
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, f"{package}."):
            module = importlib.import_module(info.name)
            for value in vars(module).values():
                if (
                    inspect.isclass(value)
                    and issubclass(value, BaseException)
                    and value.__module__ == module.__name__
                ):
                    yield value


def _drawn_tree() -> dict[str, tuple[str | None, str, str]]:
    """The tree of the ``domain.errors`` docstring: name -> (parent, kind, module)."""
    assert domain.errors.__doc__ is not None
    drawn: dict[str, tuple[str | None, str, str]] = {}
    parents: list[str] = []
    for line in domain.errors.__doc__.splitlines():
        if not line.startswith("    "):
            continue
        match = _DRAWN.match(line[4:])
        if match is None:
            continue
        depth = match.start("name") // 4
        del parents[depth:]
        parent = parents[-1] if parents else None
        module = match.group("module") or "domain.errors"
        drawn[match.group("name")] = (parent, match.group("kind"), module)
        parents.append(match.group("name"))
    return drawn


def test_every_exception_the_engine_defines_derives_from_cx_error() -> None:
    defined = list(_defined_exceptions())
    assert len(defined) > 30  # the walk found the packages' modules
    outside = [
        f"{cls.__module__}.{cls.__qualname__}" for cls in defined if not issubclass(cls, CxError)
    ]
    assert outside == []


def test_the_tree_drawn_in_the_module_docstring_is_the_tree_defined() -> None:
    drawn = _drawn_tree()
    defined = {cls.__name__: cls for cls in _defined_exceptions()}
    assert set(drawn) == set(defined)
    for name, cls in defined.items():
        parent, kind, module = drawn[name]
        bases = [base.__name__ for base in cls.__bases__ if issubclass(base, CxError)]
        assert parent == (bases[0] if bases else None), name
        assert module == cls.__module__, name
        if kind == "per instance":
            assert "kind" in inspect.signature(cls.__init__).parameters, name
        else:
            assert issubclass(cls, CxError) and kind == cls.kind.value, name


def test_each_kind_maps_to_exactly_one_exception_class_and_back() -> None:
    assert set(ERROR_CLASSES) == set(ErrorKind)
    assert len(set(ERROR_CLASSES.values())) == len(ErrorKind)
    for kind, cls in ERROR_CLASSES.items():
        assert cls.kind is kind
        for spelling in (kind, kind.value):  # the enum, or its spelling read off the wire
            error = error_for(spelling, "what went wrong")
            assert type(error) is cls and error.kind is kind
            assert str(error) == "what went wrong"


def test_a_kind_this_engine_does_not_know_is_an_internal_gateway_error_naming_it() -> None:
    error = error_for("teapot", "short and stout")
    assert type(error) is GatewayError and error.kind is ErrorKind.INTERNAL
    assert "teapot" in str(error) and "short and stout" in str(error)


def _documented_error_types() -> list[str]:
    text = (ROOT / "docs" / "PROTOCOL.md").read_text()
    section = text.split("\n## Errors\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `(\w+)` \|", section, flags=re.MULTILINE)


def test_the_wire_spells_each_kind_as_the_protocol_document_lists_it() -> None:
    documented = _documented_error_types()
    assert documented == [kind.value for kind in WIRE_KINDS]
    assert ERROR_TYPES == WIRE_KINDS
    for kind in WIRE_KINDS:
        frame = decode(failure(7, kind, "m")[4:])
        assert frame == {"id": 7, "ok": False, "error": {"type": kind.value, "message": "m"}}
        assert type(frame["error"]["type"]) is str


def test_kinds_only_between_the_engine_and_its_gateway_are_not_documented_for_the_wire() -> None:
    assert set(ErrorKind) - set(WIRE_KINDS) == {ErrorKind.ID_TAKEN, ErrorKind.NOT_HERE}
    assert not {ErrorKind.ID_TAKEN.value, ErrorKind.NOT_HERE.value} & set(_documented_error_types())


REFUSALS: list[tuple[type[Refused], type[GatewayError], Callable[[Gateway, str], Any]]] = [
    (IllegalTransition, IllegalTransitionError, lambda gw, cid: gw.resume("alice", cid)),
    (UnknownParticipant, UnknownIdError, lambda gw, cid: gw.hold("nobody", cid, 10)),
    (InvalidArgument, BadArgumentError, lambda gw, cid: gw.hold("alice", cid, -5)),
]


@pytest.mark.parametrize(
    ("refusal", "expected", "call"), REFUSALS, ids=[r.__name__ for r, _, _ in REFUSALS]
)
def test_a_domain_refusal_reaches_the_embedded_client_as_the_class_of_its_kind(
    make_gateway: MakeGateway,
    refusal: type[Refused],
    expected: type[GatewayError],
    call: Callable[[Gateway, str], Any],
) -> None:
    with make_gateway() as gw:
        ready(gw, "alice")
        cid = active_with(gw, "alice").conversation_id
        with pytest.raises(GatewayError) as raised:
            call(gw, cid)
        assert type(raised.value) is expected
        assert raised.value.kind is refusal.kind is expected.kind
        # the domain's own message (it names the conversation and its state) arrives unchanged
        assert f"refused on conversation {cid} in state ACTIVE:" in str(raised.value)
