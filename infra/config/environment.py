"""Settings from the environment: ``CX_SECTION__KEY=value`` for every key of the schema.

A variable's name is ``CX_``, then the dotted key path of ``config.yaml`` in capitals with
``__`` between its parts: ``CX_SYSTEM__ADMIN_PORT=1901`` sets ``system.admin_port``,
``CX_TIMERS__AGENT_SLA__SECONDS=90`` sets ``timers.agent_sla.seconds``. The value is typed by
the key's check in the schema: read as a YAML scalar or flow value first (``1901``, ``true``,
``null``, ``[agent, human]``, ``{sales: {}}``), and as the plain string when the key wants a
string (``CX_BOT__WELCOME=yes`` is the text "yes"). Variables starting ``CX_`` without a ``__``
(``CX_GATEWAY_TOKEN``, ``CX_FAILPOINTS``) are not keys and are left alone; a name with ``__``
that is no key of the schema is an error naming the variable.

The environment overrides the file, which overrides the built-in defaults.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

import yaml

from domain.errors import CxError, ErrorKind
from infra.config.checks import InvalidValue
from infra.config.schema import SCHEMA

#: Where every variable of the engine's settings starts, and what separates its key parts.
PREFIX = "CX_"
SEPARATOR = "__"
#: The source an error from the environment names.
SOURCE = "environment"


class EnvironmentProblem(CxError):
    """A variable that names no key, or whose value the key refuses (``load_config`` turns it
    into a ConfigError naming the variable)."""

    kind = ErrorKind.BAD_ARGUMENT

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


def variable_of(key: str) -> str:
    """The variable that sets the dotted ``key``: ``system.admin_port`` -> ``CX_SYSTEM__ADMIN_PORT``."""
    return PREFIX + SEPARATOR.join(part.upper() for part in key.split("."))


def _parse(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _typed(variable: str, key: str, check: Any, text: str) -> Any:
    """The value of ``text`` the key's check accepts: its YAML reading, else the plain string."""
    parsed = _parse(text)
    try:
        check(parsed, key)
        return parsed
    except InvalidValue as invalid:
        if isinstance(parsed, str):
            raise EnvironmentProblem(variable, f"{key}: {invalid.problem}") from None
        try:
            check(text, key)
        except InvalidValue:
            raise EnvironmentProblem(variable, f"{key}: {invalid.problem}") from None
        return text


def _put(tree: dict[str, Any], parts: list[str], value: Any) -> None:
    for part in parts[:-1]:
        tree = tree.setdefault(part, {})
    tree[parts[-1]] = value


def overrides_from(environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings ``environ`` gives, shaped like ``config.yaml`` (raises EnvironmentProblem)."""
    overrides: dict[str, Any] = {}
    for variable in sorted(environ):
        if not variable.startswith(PREFIX) or SEPARATOR not in variable:
            continue
        parts = variable[len(PREFIX) :].lower().split(SEPARATOR)
        node: Any = SCHEMA
        for index, part in enumerate(parts):
            if not isinstance(node, Mapping) or part not in node:
                options = list(node) if isinstance(node, Mapping) else []
                close = difflib.get_close_matches(part, options, n=1, cutoff=0.6)
                hint = (
                    f" (did you mean {variable_of('.'.join([*parts[:index], close[0]]))}?)"
                    if close
                    else ""
                )
                raise EnvironmentProblem(
                    variable, f"names no key of the configuration ({'.'.join(parts)}){hint}"
                )
            node = node[part]
        if isinstance(node, Mapping):
            raise EnvironmentProblem(
                variable, f"{'.'.join(parts)} is a section: set one of its keys"
            )
        _put(overrides, parts, _typed(variable, ".".join(parts), node.check, environ[variable]))
    return overrides
