"""Cheaper pickling for slotted dataclasses: what crosses between actor processes.

``dataclass(slots=True)`` gives a class ``__getstate__``/``__setstate__`` that call
``dataclasses.fields()`` for every object pickled and unpickled; between processes every
message, command and event is pickled, and that call was 12-31 % of a host's CPU in the
throughput profiles (docs/PERFORMANCE.md). These do the same with the field names computed
once per class. The pickled form is the same: the list of field values in declaration order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any


def _state_functions(
    cls: type,
) -> tuple[Callable[[Any], list[Any]], Callable[[Any, list[Any]], None]]:
    names = tuple(f.name for f in dataclasses.fields(cls))
    assign = object.__setattr__  # frozen classes refuse plain assignment

    def getstate(self: Any) -> list[Any]:
        return [getattr(self, name) for name in names]

    def setstate(self: Any, state: list[Any]) -> None:
        for name, value in zip(names, state, strict=True):
            assign(self, name, value)

    return getstate, setstate


def pickle_by_field_names(namespace: Mapping[str, Any]) -> None:
    """Give every slotted dataclass defined in ``namespace`` (a module's ``globals()``) the
    cheaper ``__getstate__``/``__setstate__``."""
    module = namespace["__name__"]
    for value in list(namespace.values()):
        if (
            isinstance(value, type)
            and dataclasses.is_dataclass(value)
            and value.__module__ == module
            and "__slots__" in vars(value)
        ):
            getstate, setstate = _state_functions(value)
            setattr(value, "__getstate__", getstate)  # noqa: B010 (a class attribute, on purpose)
            setattr(value, "__setstate__", setstate)  # noqa: B010
