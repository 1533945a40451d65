"""Reading a YAML file strictly: safe loading only, a key given twice in one mapping refused
(PyYAML would keep the last one silently), and every problem located by line and column."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from domain.errors import CxError, ErrorKind


class YamlProblem(CxError):
    """What is wrong with the file: ``key`` is ``"<file>"``; ``problem`` says what and where."""

    kind = ErrorKind.BAD_ARGUMENT

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.key = "<file>"
        self.problem = problem


class _StrictLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a key given twice in one mapping."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> Iterator[dict[Any, Any]]:
    seen: list[Any] = []
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
            key = loader.construct_object(key_node)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.append(key)
    yield from loader.construct_yaml_map(node)


_StrictLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)


def read_yaml(path: str) -> Any:
    """The document in the file at ``path`` (None for an empty one); raises YamlProblem."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise YamlProblem("file not found") from None
    except (OSError, ValueError) as error:  # a directory, no permission, a NUL in the name
        raise YamlProblem(f"cannot read: {error}") from None
    try:
        return yaml.load(data, Loader=_StrictLoader)  # a SafeLoader
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = error.problem or error.context or "syntax error"
        raise YamlProblem(f"invalid YAML at {where}{problem}") from None
    except yaml.YAMLError as error:
        raise YamlProblem(f"invalid YAML: {error}") from None
    except RecursionError:
        raise YamlProblem("invalid YAML: nested too deeply") from None
    except (ValueError, OverflowError) as error:  # e.g. a "\U" escape beyond U+10FFFF
        raise YamlProblem(f"invalid YAML: {error}") from None
