"""Fuzzing the edges: the network gateway's frame decoder, the journal reader, the config loader.

Each edge has an *oracle* here, a function that feeds it one input and checks that it only ever
returns a value or raises its documented error, within a time bound:

- ``check_frame_body(body)``: ``codec.decode``, then ``parse_request`` and ``check_args`` (what
  the server does with a frame's body); only ``ProtocolError`` of the documented types, with a
  bounded message; what is accepted is plain data of the types the op table names.
- ``check_segment(data)``: ``journal.read_segment`` and ``read_directory`` on a file holding
  ``data``: records (maps with a string ``c``) and damage strings, each followed by a record
  (reading resumed at the next valid frame) or ending the segment; ``read_directory`` raises
  ``JournalDamagedError`` exactly when damage is followed by a record (not a torn tail), and
  with ``salvage`` reads what ``read_segment`` reads; or ``JournalError`` (not a journal,
  another version).
- ``check_config_text(data)`` / ``check_config_mapping(value)``: ``config.load_config`` on a
  YAML file or a mapping: ``Settings`` or ``ConfigError`` naming the source.

The Hypothesis properties in ``tests/test_fuzz_*.py`` drive these oracles with a few hundred
examples each in CI. The long run is this module::

    python -m bench.fuzz                                  # atheris, 300 s per target
    python -m bench.fuzz --engine atheris --seconds 600 --targets codec,journal
    python -m bench.fuzz --engine hypothesis --examples 20000

``--engine atheris`` runs each target in a child process under libFuzzer (coverage-guided;
``pip install atheris``) and reports its executions; ``--engine hypothesis`` runs the test
suite's strategies with many examples. Every run prints one line per target (inputs tried, how
they ended, failures) and a verdict; ``--json FILE`` keeps the figures. Exit code 0 when no
oracle failed.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ipaddress
import itertools
import json
import math
import os
import re
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import msgpack
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as with_seed
from hypothesis import strategies as st

from infra.config import DEFAULTS, ConfigError, Settings, load_config
from infra.journal_read import JournalDamagedError, JournalRead, read_directory
from infra.journal_records import RecordKind
from infra.journal_segment import HEADER, JournalError, encode_frame, read_segment
from runtime.netgateway.codec import ProtocolError, decode, parse_request
from runtime.netgateway.ops import OPS, Kind, check_args

__all__ = [
    "TIME_LIMIT_S",
    "Hung",
    "Violation",
    "check_config_mapping",
    "check_config_text",
    "check_frame_body",
    "check_segment",
    "time_limit",
]

#: The most one input may take (a hang is a failure).
TIME_LIMIT_S = 5.0
#: The longest error message an edge may produce (it must not echo its input).
MAX_MESSAGE_CHARS = 600
TARGETS = ("codec", "journal", "config_text", "config_mapping")


#: Failures already found and reported (docs/RELIABILITY.md), by a pattern of their message: the
#: long run counts them and goes on, so that it can find others. Anything else stops the run.
KNOWN_FINDINGS: dict[str, str] = {
    "config-bad-escape": (
        r"load_config raised (ValueError: chr\(\) arg not in range"
        r"|OverflowError: Python int too large to convert to C int)"
    ),
    "config-deep-nesting": r"load_config raised RecursionError",
    "config-alias-bomb": r"^Hung: .*load_config",
}


def known_finding(error: BaseException) -> str | None:
    """The name of a known finding ``error`` is an instance of, else None."""
    text = f"{type(error).__name__}: {error}"
    for name, pattern in KNOWN_FINDINGS.items():
        if re.search(pattern, text):
            return name
    return None


class Hung(Exception):
    """One input took longer than its time limit."""


class Violation(AssertionError):
    """An edge did something other than return a value or raise its documented error."""


@contextlib.contextmanager
def time_limit(
    seconds: float = TIME_LIMIT_S,
    what: str = "one input",
    *,
    error: Callable[[str], BaseException] = Hung,
) -> Iterator[None]:
    """Raise ``error`` (:class:`Hung`, or one no ``except Exception`` on the way catches) in
    the main thread if the block runs longer than ``seconds``."""

    def fire(signum: int, frame: object) -> None:
        raise error(f"{what} took more than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ------------------------------------------------------------------------------ frame decoder


def _plain(value: Any) -> bool:
    """msgpack's plain data as the decoder returns it (no ext types, string or binary keys)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if item is None or isinstance(item, bool | int | float | str | bytes):
            continue
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            if not all(isinstance(key, str | bytes) for key in item):
                return False
            stack.extend(item.values())
        else:
            return False
    return True


def check_frame_body(body: bytes) -> str:
    """Decode one frame body as the server does; the outcome (``request`` or an error type)."""

    stage = "decode"
    try:
        with time_limit():
            value = decode(body)
            if not _plain(value):
                raise Violation(f"decode returned non-plain data {type(value).__name__}")
            stage = "parse_request"
            request = parse_request(value)
            if not isinstance(request.op, str) or not isinstance(request.args, dict):
                raise Violation(f"parse_request returned {request!r:.200}")
            if isinstance(request.id, bool) or not isinstance(request.id, int | str):
                raise Violation(f"request id {request.id!r:.80} of type {type(request.id)}")
            spec = OPS.get(request.op)
            if spec is None:
                return "unknown_op"
            stage = "check_args"
            args = check_args(spec, request.args, request.id)
    except ProtocolError as error:
        allowed = {
            "decode": {"bad_msgpack"},
            "parse_request": {"bad_frame", "bad_argument"},
            "check_args": {"bad_argument"},
        }[stage]
        if error.kind not in allowed:
            raise Violation(
                f"{stage} raised ProtocolError({error.kind.value!r}), not {allowed}"
            ) from None
        _bounded(error.message, stage)
        return error.kind.value
    except (Hung, Violation):
        raise
    except Exception as error:
        raise Violation(f"{stage} raised {type(error).__name__}: {error}"[:500]) from error
    for name, value in args.items():
        param = spec.param(name)
        if param is None:
            raise Violation(f"check_args let through an unknown argument {name!r}")
        if value is None:
            if not (param.nullable or param.kind is Kind.SCALAR):
                raise Violation(f"check_args let nil through for {name!r}")
        elif param.kind is Kind.STR and not isinstance(value, str):
            raise Violation(f"check_args let {type(value).__name__} through as a string")
        elif param.kind in (Kind.INT, Kind.NUMBER) and isinstance(value, bool):
            raise Violation(f"check_args let a boolean through as {param.kind.value}")
    missing = [p.name for p in spec.params if p.required and p.name not in args]
    if missing:
        raise Violation(f"check_args accepted {request.op} without {missing}")
    return "request"


def _bounded(message: object, where: str, limit: int = MAX_MESSAGE_CHARS) -> None:
    if not isinstance(message, str) or not message:
        raise Violation(f"{where}: error message {message!r:.80} is not a non-empty string")
    if len(message) > limit:
        raise Violation(f"{where}: error message of {len(message)} characters: {message[:120]!r}")


# ------------------------------------------------------------------------------ journal reader


def check_segment(data: bytes, directory: Path | None = None) -> str:
    """Read a segment holding ``data``; the outcome (``clean``, ``damaged``, ``refused``)."""

    with contextlib.ExitStack() as stack:
        if directory is None:
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        path = directory / "00000001.seg"
        path.write_bytes(data)
        try:
            with time_limit():
                items = list(read_segment(path))
                read = read_directory(directory, salvage=True)
                try:
                    strict: JournalRead | None = read_directory(directory)
                except JournalDamagedError:
                    strict = None
        except JournalError as error:
            _bounded(str(error), "read_segment")
            if str(path) not in str(error):
                raise Violation(f"JournalError does not name the file: {error}") from None
            return "refused"
        except (Hung, Violation):
            raise
        except Exception as error:
            raise Violation(f"read_segment raised {type(error).__name__}: {error}"[:500]) from error
        finally:
            path.unlink(missing_ok=True)
    damage = [item for item in items if isinstance(item, str)]
    records = [item for item in items if not isinstance(item, str)]
    if any(isinstance(a, str) and isinstance(b, str) for a, b in itertools.pairwise(items)):
        raise Violation(f"reading did not resume at a valid frame after damage: {items!r:.300}")
    mid_log = any(isinstance(item, str) for item in items[:-1])
    if (strict is None) != mid_log:
        raise Violation(f"only damage followed by a valid frame stops the read: {items!r:.300}")
    for record in records:
        if not isinstance(record, dict) or not isinstance(record.get("c"), str):
            raise Violation(f"a record that is not a map with a string c: {record!r:.200}")
    for problem in damage:
        _bounded(problem, "read_segment damage")
    if read.records != records or read.damage != damage:
        raise Violation("read_directory disagrees with read_segment")
    if strict is not None and (strict.records, strict.damage) != (records, damage):
        raise Violation("read_directory of a torn tail disagrees with read_segment")
    return "damaged" if damage else "clean"


# ------------------------------------------------------------------------------ config loader


def check_config_text(data: bytes, directory: Path | None = None) -> str:
    """Load a config file holding ``data``; the outcome (``loaded`` or ``refused``)."""
    with contextlib.ExitStack() as stack:
        if directory is None:
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        path = directory / "config.yaml"
        path.write_bytes(data)
        try:
            return _load(path, str(path))
        finally:
            path.unlink(missing_ok=True)


def check_config_mapping(value: Mapping[Any, Any]) -> str:
    """``load_config(value)``; the outcome (``loaded`` or ``refused``)."""
    return _load(value, "<dict>")


def _load(source: Any, name: str) -> str:

    try:
        with time_limit(what="load_config"):
            settings = load_config(source)
    except ConfigError as error:
        text = str(error)
        if not text.startswith(f"{name}: ") or error.source != name:
            raise Violation(f"ConfigError does not name the source {name}: {text[:200]}") from None
        # A ConfigError names the key path in full (an operator's own file): bounded loosely.
        _bounded(text, "load_config", limit=20 * MAX_MESSAGE_CHARS)
        return "refused"
    except (Hung, Violation):
        raise
    except Exception as error:
        raise Violation(f"load_config raised {type(error).__name__}: {error}"[:500]) from error
    if not isinstance(settings, Settings):
        raise Violation(f"load_config returned {type(settings).__name__}")
    bind = ipaddress.ip_address(settings.system.bind)
    if not settings.system.allow_wide_bind and not bind.is_loopback:
        raise Violation(f"a non-loopback bind {settings.system.bind} was accepted")
    for seconds in (
        settings.timers.agent_sla_seconds,
        settings.timers.customer_inactivity_seconds,
        settings.timers.wrap_up_seconds,
        settings.timers.hold_max_seconds,
        settings.routing.accept_timeout_seconds,
        settings.routing.request_ttl_seconds,
    ):
        if not (isinstance(seconds, float) and math.isfinite(seconds) and seconds > 0):
            raise Violation(f"a duration of {seconds!r} was accepted")
    return "loaded"


# ------------------------------------------------------------------------------ strategies


def strategies() -> dict[str, Any]:
    """The Hypothesis strategies of each target (imported lazily: hypothesis is a test extra)."""

    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**64 - 1),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=24),
        st.binary(max_size=24),
    )
    values = st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=5)
            | st.dictionaries(st.text(max_size=12) | st.binary(max_size=4), inner, max_size=5)
        ),
        max_leaves=24,
    )

    def params_of(op: str) -> list[str]:
        spec = OPS.get(op)
        return [p.name for p in spec.params] if spec else ["token", "x"]

    op_names = st.sampled_from(sorted(OPS)) | st.text(max_size=12)

    @st.composite
    def requests(draw: Any) -> Any:
        op = draw(op_names)
        names = params_of(op)
        if names and draw(st.integers(0, 3)):
            keys = st.sampled_from(names)  # mostly the op's own argument names
        else:
            keys = st.sampled_from(names or ["x"]) | st.text(max_size=8) | st.integers(0, 9)
        plausible = (
            st.text(max_size=12)
            | st.integers(-5, 10**6)
            | st.lists(st.text(max_size=5), max_size=3)
        )
        args = draw(
            st.dictionaries(
                keys, plausible if draw(st.booleans()) else values, max_size=len(names) + 1
            )
        )
        request: dict[Any, Any] = {}
        request["op"] = op if draw(st.integers(0, 9)) else draw(values)
        if draw(st.integers(0, 9)):
            request["id"] = draw(
                st.integers(-(2**63), 2**64 - 1)
                | st.text(min_size=1, max_size=130)
                | (values if not draw(st.integers(0, 3)) else st.integers(0, 9))
            )
        if draw(st.integers(0, 5)):
            request["args"] = args if draw(st.integers(0, 9)) else draw(values)
        if not draw(st.integers(0, 9)):
            request[draw(st.text(max_size=6) | st.binary(max_size=3))] = draw(values)
        return request

    kinds = {
        Kind.STR: st.text(max_size=16),
        Kind.INT: st.integers(-(2**63), 2**63),
        Kind.NUMBER: st.integers(-5, 10**9) | st.floats(allow_nan=True),
        Kind.MAP: st.dictionaries(st.text(max_size=6), values, max_size=3),
        Kind.STR_LIST: st.lists(st.text(max_size=6), max_size=3),
        Kind.SCALAR: st.none()
        | st.booleans()
        | st.integers(-9, 9)
        | st.floats()
        | st.text(max_size=6),
    }

    @st.composite
    def well_formed(draw: Any) -> Any:
        spec = OPS[draw(st.sampled_from(sorted(OPS)))]
        args = {
            param.name: draw(
                st.none() if param.nullable and not draw(st.integers(0, 3)) else kinds[param.kind]
            )
            for param in spec.params
            if param.required or draw(st.booleans())
        }
        return {
            "op": spec.name,
            "id": draw(st.integers(0, 2**32) | st.text(min_size=1, max_size=8)),
            "args": args,
        }

    def packed(value: Any) -> bytes:
        try:
            body: bytes = msgpack.packb(value, use_bin_type=True)
        except (TypeError, ValueError, OverflowError):
            body = b"\xc0"
        return body

    @st.composite
    def mutated(draw: Any, base: bytes) -> bytes:
        data = bytearray(base)
        for _ in range(draw(st.integers(0, 4))):
            kind = draw(st.sampled_from(["flip", "cut", "insert", "overwrite", "append"]))
            at = draw(st.integers(0, max(len(data), 1)))
            if kind == "flip" and data:
                data[at % len(data)] ^= 1 << draw(st.integers(0, 7))
            elif kind == "cut":
                del data[at:]
            elif kind == "insert":
                data[at:at] = draw(st.binary(min_size=1, max_size=8))
            elif kind == "overwrite" and data:
                chunk = draw(st.binary(min_size=1, max_size=8))
                data[at % len(data) : at % len(data) + len(chunk)] = chunk
            else:
                data += draw(st.binary(max_size=8))
        return bytes(data)

    # msgpack headers that announce much more than the frame holds, ext types, deep nesting.
    tricky_heads = st.sampled_from(
        [
            b"\xdd\xff\xff\xff\xff",  # array32 of 4 G items
            b"\xdf\xff\xff\xff\xff",  # map32 of 4 G pairs
            b"\xdb\xff\xff\xff\xff",  # str32 of 4 GB
            b"\xc6\xff\xff\xff\xff",  # bin32 of 4 GB
            b"\xc9\xff\xff\xff\xff\x05",  # ext32
            b"\xd6\xff\x00\x00\x00\x00",  # fixext4 type -1: a timestamp
            b"\xc7\x00\x05",  # ext8 of length 0
            b"\xc1",  # never used
            b"\xd9\x02\xff\xfe",  # str8 of invalid UTF-8
            b"\x81\x01\x01",  # map with an integer key
            b"\x81\xc0\x01",  # map with a nil key
            b"\x81\x91\x01\x01",  # map with an array key
        ]
    )

    @st.composite
    def nested(draw: Any) -> bytes:
        depth = draw(st.integers(1, 5000))
        opener = draw(st.sampled_from([b"\x91", b"\x81\xa1a"]))
        return opener * depth + draw(st.sampled_from([b"\xc0", b"", b"\x90"]))

    frame_bodies = st.one_of(
        st.binary(max_size=256),
        requests().map(packed),
        well_formed().map(packed),
        (requests() | well_formed()).map(packed).flatmap(mutated),
        values.map(packed),
        st.tuples(tricky_heads, st.binary(max_size=16)).map(b"".join),
        nested(),
    )

    # -------------------------------------------------------------- journal
    record_values = st.recursive(
        st.none() | st.booleans() | st.integers(-(2**31), 2**31) | st.text(max_size=16),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
        ),
        max_leaves=12,
    )
    records = st.fixed_dictionaries(
        {
            "k": st.sampled_from([k.value for k in RecordKind if k is not RecordKind.COMPACTED]),
            "c": st.text(min_size=1, max_size=20),
            "t": st.integers(0, 2**41),
        },
        optional={"cmd": record_values, "ev": st.lists(record_values, max_size=3)},
    )
    segments = st.lists(records, max_size=8).map(
        lambda items: HEADER + b"".join(encode_frame(r) for r in items)
    )
    segment_bytes = st.one_of(
        st.binary(max_size=300),
        st.binary(max_size=300).map(lambda tail: HEADER + tail),
        segments,
        segments.flatmap(mutated),
        st.tuples(st.just(HEADER), st.lists(values.map(packed), max_size=5)).map(
            lambda parts: (
                parts[0] + b"".join(_raw_frame(body) for body in parts[1])
            )  # valid CRC, any payload
        ),
    )

    # -------------------------------------------------------------- config
    leaf_paths = list(_leaf_paths(DEFAULTS))
    good_leaves: dict[tuple[str, ...], Any] = {
        ("system", "bind"): st.sampled_from(["127.0.0.1", "::1", "10.0.0.1", "0.0.0.0", "x"]),
        ("system", "admin_port"): st.integers(-5, 70000),
        ("timers", "agent_sla", "thresholds"): st.lists(
            st.fixed_dictionaries(
                {
                    "percent": st.integers(-1, 101),
                    "action": st.sampled_from(["WARNING", "ALERT", "NOTIFY", "x"]),
                }
            ),
            max_size=3,
        ),
        ("timers", "customer_inactivity", "channels"): st.dictionaries(
            st.sampled_from(["WEB", "SMS", "VOICE", "EMAIL", "WHATSAPP", "FAX"]),
            st.floats(allow_nan=True) | st.integers(-1, 10**10),
            max_size=3,
        ),
        ("routing", "queues"): st.dictionaries(
            st.text(max_size=6) | st.integers(),
            st.none()
            | st.fixed_dictionaries(
                {},
                optional={
                    "agent_sla_seconds": st.none() | st.floats() | st.integers(),
                    "priority": st.integers() | st.booleans(),
                },
            ),
            max_size=3,
        ),
        ("gateway", "listen"): st.sampled_from(
            ["127.0.0.1:7700", "[::1]:0", "a:b", ":1", "h:99999"]
        )
        | st.text(max_size=12),
    }

    @st.composite
    def overrides(draw: Any) -> dict[Any, Any]:
        tree: dict[Any, Any] = {}
        for _ in range(draw(st.integers(0, 6))):
            path = list(draw(st.sampled_from(leaf_paths)))
            choice = draw(st.integers(0, 9))
            if choice == 0:  # a stray key somewhere
                path[draw(st.integers(0, len(path) - 1))] = draw(
                    st.text(max_size=8) | st.integers()
                )
                path = path[: draw(st.integers(1, len(path)))]
            if tuple(path) in good_leaves and choice < 6:
                leaf = draw(good_leaves[tuple(path)])
            elif choice < 4:
                leaf = _default_at(DEFAULTS, path)
            else:
                leaf = draw(values)
            node = tree
            for key in path[:-1]:
                child = node.get(key)
                if not isinstance(child, dict):
                    child = node[key] = {}
                node = child
            node[path[-1]] = leaf
        if not draw(st.integers(0, 19)):
            tree[draw(st.sampled_from(sorted(DEFAULTS)))] = draw(values)  # a section not a mapping
        return tree

    def dumped(value: Any) -> bytes:
        try:
            return yaml.safe_dump(value, allow_unicode=True).encode("utf-8", "surrogatepass")
        except (yaml.YAMLError, ValueError, TypeError):
            return b"{"

    yaml_alphabet = st.sampled_from(list("{}[]:,-&*!|>'\"#%@`?<= \n\t\\") + list("abyz019."))
    config_texts = st.one_of(
        overrides().map(dumped),
        overrides().map(dumped).flatmap(mutated),
        st.text(yaml_alphabet, max_size=80).map(lambda text: text.encode()),
        st.binary(max_size=200),
    )
    return {
        "codec": frame_bodies,
        "journal": segment_bytes,
        "config_text": config_texts,
        "config_mapping": overrides(),
        "values": values,
        "records": records,
    }


def _raw_frame(payload: bytes) -> bytes:

    return struct.pack(">II", len(payload), zlib.crc32(payload)) + payload


def _leaf_paths(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for key, value in tree.items():
        if isinstance(value, Mapping) and value and key not in ("channels", "queues"):
            yield from _leaf_paths(value, (*prefix, key))
        else:
            yield (*prefix, key)


def _default_at(tree: Mapping[str, Any], path: list[Any]) -> Any:
    node: Any = tree
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


# ------------------------------------------------------------------------------ the long run

ORACLES: dict[str, Callable[[Any], str]] = {
    "codec": check_frame_body,
    "journal": check_segment,
    "config_text": check_config_text,
    "config_mapping": check_config_mapping,
}


def run_hypothesis(target: str, examples: int, seed: int | None) -> dict[str, Any]:

    strategy = strategies()[target]
    oracle = ORACLES[target]
    outcomes: Counter[str] = Counter()
    scratch = Path(tempfile.mkdtemp(prefix="cx-fuzz-"))

    def one(value: Any) -> None:
        try:
            if target in ("journal", "config_text"):
                outcomes[oracle(value, scratch)] += 1  # type: ignore[call-arg]
            else:
                outcomes[oracle(value)] += 1
        except (Hung, Violation) as error:
            name = known_finding(error)
            if name is None:
                raise
            outcomes[f"known:{name}"] += 1

    test = settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )(given(strategy)(one))
    if seed is not None:
        test = with_seed(seed)(test)
    started = time.monotonic()
    failure = None
    try:
        test()
    except Exception as error:
        failure = f"{type(error).__name__}: {error}"[:2000]
    finally:
        with contextlib.suppress(OSError):
            for leftover in scratch.iterdir():
                leftover.unlink()
            scratch.rmdir()
    return {
        "target": target,
        "engine": "hypothesis",
        "inputs": sum(outcomes.values()),
        "seconds": round(time.monotonic() - started, 1),
        "outcomes": dict(outcomes),
        "failure": failure,
    }


def _atheris_child(target: str, seconds: int, corpus: Path | None) -> None:
    """Run one target under libFuzzer (this process is exited by it)."""
    import atheris  # noqa: PLC0415 (optional: only the long run needs it)

    atheris.instrument_all()  # every Python function loaded so far: the edges and their helpers
    scratch = Path(tempfile.mkdtemp(prefix="cx-atheris-"))
    outcomes: Counter[str] = Counter()
    report = scratch / "outcomes.json"

    def one_input(data: bytes) -> None:
        try:
            outcome = _one_input(data)
        except (Hung, Violation) as error:
            name = known_finding(error)
            if name is None:
                report.write_text(json.dumps(outcomes))
                raise
            outcome = f"known:{name}"
        outcomes[outcome] += 1
        if sum(outcomes.values()) % 500 == 0:
            report.write_text(json.dumps(outcomes))

    def _one_input(data: bytes) -> str:
        if target == "codec":
            outcome = check_frame_body(data)
        elif target == "journal":
            # Most inputs get the header, so that the frames behind it are explored.
            body = data[1:]

            outcome = check_segment(body if data[:1] == b"\x00" else HEADER + body, scratch)
        elif target == "config_text":
            outcome = check_config_text(data, scratch)
        else:
            outcome = check_config_mapping(_mapping_from(data))
        return outcome

    atexit.register(lambda: report.write_text(json.dumps(outcomes)))
    print(f"OUTCOMES-FILE {report}", file=sys.stderr, flush=True)
    argv = [
        sys.argv[0],
        f"-max_total_time={seconds}",
        f"-timeout={int(TIME_LIMIT_S) + 1}",
        "-rss_limit_mb=4096",
    ]
    if corpus is not None:
        corpus.mkdir(parents=True, exist_ok=True)
        argv.append(str(corpus))
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


def _mapping_from(data: bytes) -> Any:
    """Bytes as a config mapping: msgpack if they decode to one, else a structured guess."""

    try:
        value = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception:
        value = None
    if isinstance(value, dict):
        return value

    paths = list(_leaf_paths(DEFAULTS))
    tree: dict[Any, Any] = {}
    for index in range(0, len(data) - 1, 2):
        path = paths[data[index] % len(paths)]
        node = tree
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = _guess(data[index + 1])
    return tree


def _guess(byte: int) -> Any:
    options: list[Any] = [
        None,
        True,
        False,
        0,
        -1,
        1,
        65536,
        1e308,
        float("nan"),
        float("inf"),
        "",
        " ",
        "x",
        "127.0.0.1",
        "0.0.0.0",
        "a:1",
        [],
        {},
        [1],
        {"a": 1},
        2**70,
        "never",
        "always",
        "WARNING",
        [{"percent": 50, "action": "WARNING"}],
    ]
    return options[byte % len(options)]


def _seed_corpus(target: str, directory: Path, count: int = 300) -> None:
    """Start libFuzzer from inputs of the Hypothesis strategies (well-formed and near misses)."""

    directory.mkdir(parents=True, exist_ok=True)
    seeds: list[bytes] = []

    def keep(value: Any) -> None:
        if target == "journal":
            seeds.append(
                b"\x01" + value[len(HEADER) :] if value.startswith(HEADER) else b"\x00" + value
            )
        elif target == "config_mapping":
            with contextlib.suppress(Exception):
                seeds.append(msgpack.packb(value, use_bin_type=True))
        else:
            seeds.append(value)

    settings(
        max_examples=count, database=None, deadline=None, suppress_health_check=list(HealthCheck)
    )(given(strategies()[target])(keep))()
    for index, seed in enumerate(seeds):
        (directory / f"seed-{index:04d}").write_bytes(seed)


def run_atheris(target: str, seconds: int, corpus_root: Path | None) -> dict[str, Any]:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="cx-atheris-run-") as workdir:
        corpus = (Path(workdir) / "corpus" if corpus_root is None else corpus_root) / target
        if not corpus.exists():
            _seed_corpus(target, corpus)
        process = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.fuzz",
                "--atheris-child",
                target,
                "--seconds",
                str(seconds),
                "--corpus",
                str(corpus),
            ],
            cwd=workdir,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
            capture_output=True,
            text=True,
            timeout=seconds + 300,
            check=False,
        )
        crashes = sorted(
            p.name
            for p in Path(workdir).iterdir()
            if p.name.startswith(("crash-", "timeout-", "oom-"))
        )
        kept = []
        for name in crashes:
            destination = Path.cwd() / f"fuzz-{target}-{name}"
            (Path(workdir) / name).replace(destination)
            kept.append(str(destination))
    log = process.stderr
    runs = re.findall(r"Done (\d+) runs in (\d+) second", log)
    execs = (
        int(runs[-1][0]) if runs else max((int(n) for n in re.findall(r"#(\d+)\s", log)), default=0)
    )
    coverage = re.findall(r"cov: (\d+) ft: (\d+)", log)
    outcomes: dict[str, int] = {}
    found = re.search(r"OUTCOMES-FILE (\S+)", log)
    if found:
        with contextlib.suppress(OSError, ValueError):
            outcomes = json.loads(Path(found.group(1)).read_text())
            Path(found.group(1)).unlink()
            Path(found.group(1)).parent.rmdir()
    failure = None
    if process.returncode != 0:
        tail = "\n".join(log.strip().splitlines()[-40:])
        failure = f"exit code {process.returncode}; inputs kept: {kept}\n{tail}"
    return {
        "target": target,
        "engine": "atheris",
        "inputs": execs,
        "seconds": round(time.monotonic() - started, 1),
        "coverage": {"cov": int(coverage[-1][0]), "ft": int(coverage[-1][1])} if coverage else None,
        "outcomes": outcomes,
        "failure": failure,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fuzz", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--engine", choices=["atheris", "hypothesis"], default="atheris")
    parser.add_argument(
        "--targets", default=",".join(TARGETS), help=f"comma-separated: {', '.join(TARGETS)}"
    )
    parser.add_argument("--seconds", type=int, default=300, help="atheris: time per target")
    parser.add_argument(
        "--examples", type=int, default=20000, help="hypothesis: examples per target"
    )
    parser.add_argument("--seed", type=int, default=None, help="hypothesis: a fixed seed")
    parser.add_argument("--corpus", type=Path, default=None, help="atheris: keep the corpus here")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--atheris-child", default=None, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.atheris_child:
        _atheris_child(options.atheris_child, options.seconds, options.corpus)
        return 0
    targets = [t.strip() for t in options.targets.split(",") if t.strip()]
    unknown = set(targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    results = []
    for target in targets:
        if options.engine == "atheris":
            result = run_atheris(target, options.seconds, options.corpus)
        else:
            result = run_hypothesis(target, options.examples, options.seed)
        results.append(result)
        verdict = "FAILED" if result["failure"] else "held"
        print(
            f"fuzz {result['engine']} {target}: {result['inputs']} inputs in {result['seconds']} s,"
            f" outcomes {result['outcomes']}"
            + (f", coverage {result['coverage']}" if result.get("coverage") else "")
            + f": {verdict}",
            flush=True,
        )
        if result["failure"]:
            print(result["failure"], flush=True)
    failed = [r["target"] for r in results if r["failure"]]
    print(f"verdict: {'FAILED: ' + ', '.join(failed) if failed else 'every target held'}")
    if options.json is not None:
        options.json.write_text(
            json.dumps({"engine": options.engine, "results": results}, indent=2)
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
