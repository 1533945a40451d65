"""The leader's record of its convention members: node name -> admin address ("host:port").

A small JSON file written atomically (a temporary file renamed over it), read back when the
leader starts so that it can invite every member at once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from infra.archive_errors import StorageError


def read_members(path: Path) -> dict[str, str]:
    """The recorded members ({} if the file does not exist); StorageError naming the file if
    it cannot be read as a mapping of names to addresses."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise StorageError(f"cannot read the members file {path}: {error}") from None
    try:
        members = json.loads(text)
    except ValueError as error:
        raise StorageError(f"the members file {path} is not JSON: {error}") from None
    if not isinstance(members, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in members.items()
    ):
        raise StorageError(f"the members file {path} is not a mapping of names to addresses")
    return members


def write_members(path: Path, members: Mapping[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w", encoding="utf-8") as out:
        json.dump(dict(sorted(members.items())), out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
