"""What-if experiments: proposed engine changes applied as patches inside the benchmark's own
processes, to measure what they would gain before anyone edits the engine.

    python -m bench --quick --only throughput --whatif repr,pickle,codec,replies

The engine's actor processes are forked from the process that starts the system, so patches
applied here before ``runtime.system.start`` are in every actor; gateway worker processes
(spawned) apply them again from ``CX_BENCH_WHATIF``. Nothing on disk changes. The patches:

- ``repr``: a short ``repr`` for :class:`~actors.messages.Batch`. Thespian builds
  ``str(message)`` for its DEBUG log lines on every send and receive (``TransmitIntent.
  identify``, ``ReceiveEnvelope.identify``) whether or not DEBUG is on, and a dataclass's
  repr walks every item of the batch.
- ``pickle``: ``__getstate__``/``__setstate__`` with the field names computed once per class,
  for every slotted dataclass of ``actors.messages``, ``actors.model.commands`` and
  ``actors.model.records``. The ones ``dataclass(slots=True)`` generates call
  ``dataclasses.fields()`` for every object pickled or unpickled.
- ``codec``: ``runtime.codec.encode_command`` with field names computed once per class (it
  calls ``dataclasses.fields()`` for every journaled command).
- ``replies``: ``EngineActor.flush`` sends the replies for one caller as one message (a
  ``Batch`` of ``Deliver("", reply)``) instead of one message each, and the gateway accepts
  them. A batch of N calls costs one answer message instead of N. (The patched ``flush`` is a
  copy of the engine's as of 2026-11-21 with that one change: re-check it if ``flush``
  changes.)
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

VARIABLE = "CX_BENCH_WHATIF"
PATCHES = ("repr", "pickle", "codec", "replies")
_applied: set[str] = set()


def apply(names: list[str] | tuple[str, ...]) -> None:
    """Apply the named patches in this process (and export them to processes it spawns)."""
    unknown = set(names) - set(PATCHES)
    if unknown:
        raise ValueError(f"unknown what-if patches: {', '.join(sorted(unknown))}")
    for name in names:
        if name not in _applied:
            _PATCHERS[name]()
            _applied.add(name)
    if names:
        os.environ[VARIABLE] = ",".join(sorted(_applied))


def apply_from_env() -> None:
    names = [n for n in os.environ.get(VARIABLE, "").split(",") if n]
    if names:
        apply(names)


def _short_repr() -> None:
    from actors.messages import Batch  # noqa: PLC0415

    def batch_repr(self: Any) -> str:
        return f"Batch({len(self.items)} items)"

    Batch.__repr__ = batch_repr  # type: ignore[method-assign]


def _fast_pickle() -> None:
    import actors.messages  # noqa: PLC0415
    import actors.model.commands  # noqa: PLC0415
    import actors.model.records  # noqa: PLC0415

    for module in (actors.messages, actors.model.commands, actors.model.records):
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and dataclasses.is_dataclass(value)
                and value.__module__ == module.__name__
                and "__slots__" in vars(value)
            ):
                _speed_up(value)


def _speed_up(cls: type) -> None:
    names = tuple(f.name for f in dataclasses.fields(cls))
    setattr_ = object.__setattr__

    def getstate(self: Any) -> list[Any]:
        return [getattr(self, name) for name in names]

    def setstate(self: Any, state: list[Any]) -> None:
        for name, value in zip(names, state, strict=True):
            setattr_(self, name, value)

    cls.__getstate__ = getstate  # type: ignore[attr-defined]
    cls.__setstate__ = setstate  # type: ignore[attr-defined]


def _cached_codec() -> None:
    import actors.restore  # noqa: PLC0415
    import runtime.codec  # noqa: PLC0415

    names: dict[type, tuple[str, ...]] = {}
    commands, plain, error = runtime.codec._COMMANDS, runtime.codec._plain, runtime.codec.CodecError

    def encode_command(command: Any) -> list[Any]:
        cls = type(command)
        if cls.__name__ not in commands:
            raise error(f"cannot encode {cls.__name__}")
        fields = names.get(cls)
        if fields is None:
            fields = names[cls] = tuple(f.name for f in dataclasses.fields(cls))
        return [cls.__name__, {name: plain(getattr(command, name)) for name in fields}]

    runtime.codec.encode_command = encode_command
    actors.restore.encode_command = encode_command  # imported by name there


def _batched_replies() -> None:
    from actors.base import EngineActor  # noqa: PLC0415
    from actors.messages import Batch, Deliver, Failure, Reply  # noqa: PLC0415
    from runtime.gateway import Gateway  # noqa: PLC0415

    def flush(self: Any) -> None:
        self.before_send()
        replies, self._replies = self._replies, []
        grouped: dict[str, tuple[Any, list[Deliver]]] = {}
        for address, answer in replies:
            grouped.setdefault(str(address), (address, []))[1].append(Deliver("", answer))
        now = self.now()
        for address, items in grouped.values():
            if len(items) == 1:
                self.send(address, items[0].payload)
            else:
                self.send(address, Batch(now, tuple(items)))
        if not self._outbox:
            return
        outbox, self._outbox = self._outbox, {}
        for address, delivered in outbox.values():
            self.send(address, Batch(now, tuple(delivered)))

    EngineActor.flush = flush  # type: ignore[method-assign]
    original_intake = Gateway._intake

    def intake(self: Any, message: Any) -> None:
        if isinstance(message, Batch):
            for item in message.items:
                if isinstance(item.payload, Reply | Failure):
                    self._stray[item.payload.call_id] = item.payload
        original_intake(self, message)

    Gateway._intake = intake  # type: ignore[method-assign]


_PATCHERS = {
    "repr": _short_repr,
    "pickle": _fast_pickle,
    "codec": _cached_codec,
    "replies": _batched_replies,
}
