"""Checks of values read from YAML, and how errors about them show values and keys.

A check takes the raw value and its dotted key path and returns the clean value or raises
:class:`InvalidValue`; the reader of the document (``config.yaml`` here, scenario files in
``runtime.simulation``) turns that into its own error naming the file.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import reprlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path, PurePath
from typing import Any, TypeAlias

from psycopg.conninfo import conninfo_to_dict

from domain.errors import CxError, ErrorKind


class InvalidValue(CxError):
    """A check failed; ``load_config`` turns it into a ConfigError that names the source."""

    kind = ErrorKind.BAD_ARGUMENT

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(key, problem)
        self.key = key
        self.problem = problem


Check: TypeAlias = Callable[[Any, str], Any]


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxstring, _SHORT.maxother = 3, 4, 4, 50, 50


# What errors about a YAML file say of its values and keys.


def show_value(value: object) -> str:
    """A short ``repr``: bounded in depth and width before it is built, so that a huge or
    deeply nested value (YAML aliases make both cheap to write) costs nothing to show."""
    try:
        text = _SHORT.repr(value)
    except (ValueError, RecursionError):  # an int too long to print, a pathological object
        return f"<{type(value).__name__} too large to show>"
    return text if len(text) <= 60 else text[:57] + "..."


def _plain(key: object) -> str:
    """A key as it reads in a path; numbers, null and empty or padded strings are quoted."""
    if isinstance(key, str) and key != "" and key.strip() == key:
        return key
    return show_value(key)


def key_path(path: str, key: object) -> str:
    """``path.key``, the key shown as it reads (quoted when it is not a plain name)."""
    return f"{path}.{_plain(key)}" if path else _plain(key)


def describe_value(value: Any) -> str:
    """What a value is, for "expected X, got <this>": its kind and a short repr."""
    if value is None:
        return "null"
    names = {bool: "boolean", int: "integer", float: "number", str: "string"}
    name = names.get(type(value))
    if name is None:
        name = "mapping" if isinstance(value, Mapping) else type(value).__name__
    return f"{name} {show_value(value)}"


def expected(path: str, what: str, value: Any) -> InvalidValue:
    return InvalidValue(path, f"expected {what}, got {describe_value(value)}")


def suggest_key(word: object, known: Iterable[str], parent: str = "") -> str:
    """`` (did you mean parent.key?)`` for a near miss of a known name, else ``""``."""
    if not isinstance(word, str):
        return ""
    candidates = list(known)
    folded = {candidate.lower(): candidate for candidate in candidates}
    match = folded.get(word.lower())
    if match is None:
        close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
        match = close[0] if close else None
    return "" if match is None else f" (did you mean {key_path(parent, match)}?)"


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return is_int(value) or (isinstance(value, float) and math.isfinite(value))


def boolean(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise expected(path, "true or false", value)
    return value


def integer(minimum: int | None = None, maximum: int | None = None) -> Check:
    if minimum is not None and maximum is not None:
        what = f"an integer from {minimum} to {maximum}"
    elif minimum is not None:
        what = f"an integer >= {minimum}"
    else:
        what = "an integer"

    def check(value: Any, path: str) -> int:
        if not is_int(value):
            raise expected(path, what, value)
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise expected(path, what, value)
        return int(value)

    return check


MAX_SECONDS = 1_000_000_000  # about 31 years: a bound that keeps arithmetic on durations safe


def duration(value: Any, path: str) -> float:
    if not is_number(value) or not 0 < value <= MAX_SECONDS:
        raise expected(path, f"a number of seconds > 0 (at most {MAX_SECONDS})", value)
    return float(value)


def text(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise expected(path, "a string", value)
    return value


def non_empty(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise expected(path, "a non-empty string", value)
    return value


def conninfo(value: Any, path: str) -> str:
    """A libpq connection string or URI (``host=db1 dbname=cx user=cx`` or
    ``postgresql://cx@db1/cx``), without a password: the password comes from ``PGPASSWORD`` or
    a ``.pgpass`` file, so that it is never in the config file or a log line."""
    if not isinstance(value, str) or not value.strip():
        raise expected(path, "a PostgreSQL connection string such as 'host=db1 dbname=cx'", value)
    try:
        parts = conninfo_to_dict(value)
    except Exception as error:  # psycopg.ProgrammingError: libpq's own words follow
        raise InvalidValue(path, f"not a PostgreSQL connection string: {error}") from None
    if "password" in parts:
        raise InvalidValue(
            path, "holds a password: give it in PGPASSWORD or a .pgpass file instead"
        )
    return value


def optional(check: Check) -> Check:
    def optional(value: Any, path: str) -> Any:
        return None if value is None else check(value, path)

    return optional


def choice(options: tuple[str, ...], *, fold_case: bool = False) -> Check:
    def check(value: Any, path: str) -> str:
        given = value.lower() if fold_case and isinstance(value, str) else value
        if given not in options:
            hint = suggest_key(value, options)
            problem = f"expected one of: {', '.join(options)}; got {describe_value(value)}{hint}"
            raise InvalidValue(path, problem)
        return str(given)

    return check


def file_path(value: Any, path: str) -> Path:
    if not isinstance(value, str | PurePath) or not str(value):
        raise expected(path, "a file system path", value)
    try:
        location = Path(value).expanduser()
    except RuntimeError as error:  # "~someone" without such a user
        raise InvalidValue(path, f"cannot expand {str(value)!r}: {error}") from None
    # A relative path is anchored by the loader (against the configuration file's directory).
    return location


def ip_address(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise expected(path, "an IP address such as 127.0.0.1", value)
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise expected(path, "an IP address such as 127.0.0.1", value) from None


def host_port(value: Any, path: str) -> str:
    """``host:port`` with a port from 0 to 65535 (IPv6 hosts in brackets: ``[::1]:7700``)."""
    what = 'an address "host:port" with a port from 0 to 65535'
    if not isinstance(value, str):
        raise expected(path, what, value)
    host, _, port = value.rpartition(":")
    bare_host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if (
        not bare_host
        or (":" in bare_host and bare_host == host)
        or not (port.isascii() and port.isdigit() and len(port) <= 5)
        or int(port) > 65535
    ):
        raise expected(path, what, value)
    return value


def class_path(value: Any, path: str) -> str:
    what = 'a class path "package.module:ClassName"'
    if not isinstance(value, str):
        raise expected(path, what, value)
    module, _, name = value.partition(":")
    if not name.isidentifier() or not all(part.isidentifier() for part in module.split(".")):
        raise expected(path, what, value)
    return value


def sequence(value: Any, path: str, what: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise expected(path, what, value)
    return list(value)


def as_mapping(value: Any, path: str, what: str = "a mapping") -> Mapping[Any, Any]:
    if not isinstance(value, Mapping):
        raise expected(path, what, value)
    return value


def refuse_unknown(mapping: Mapping[Any, Any], known: Iterable[str], path: str) -> None:
    names = list(known)
    for key in mapping:
        if key not in names:
            hint = suggest_key(key, names, path) or f" (known keys: {', '.join(names)})"
            raise InvalidValue(key_path(path, key), "unknown key" + hint)


def exact_keys(value: Any, path: str, known: Mapping[str, Any], what: str) -> Mapping[Any, Any]:
    """``value`` as a mapping that has every key of ``known`` and no other."""
    mapping = as_mapping(value, path, what)
    refuse_unknown(mapping, known, path)
    for key in known:
        if key not in mapping:
            raise InvalidValue(key_path(path, key), "missing")
    return mapping


def record(value: Any, path: str, fields: Mapping[str, Check]) -> dict[str, Any]:
    """A mapping with exactly the keys of ``fields``, each checked."""
    mapping = exact_keys(value, path, fields, f"a mapping with keys {', '.join(fields)}")
    return {key: check(mapping[key], key_path(path, key)) for key, check in fields.items()}
