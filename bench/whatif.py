"""What-if experiments: proposed engine changes applied as patches inside the benchmark's own
processes, to measure what they would gain before anyone edits the engine.

    python -m bench --quick --only throughput --whatif replies

The engine's actor processes are forked from the process that starts the system, so patches
applied here before ``runtime.system.start`` are in every actor; gateway worker processes
(spawned) apply them again from ``CX_BENCH_WHATIF``. Nothing on disk changes. Three earlier
experiments (a short ``Batch`` repr, pickling with field names computed once, the journal's
``encode_command`` likewise) measured well and are now in the engine. What is left:

- ``replies``: ``EngineActor.flush`` sends the replies for one caller as one message (a
  ``Batch`` of ``Deliver("", reply)``) instead of one message each, and the gateway accepts
  them. A batch of N calls costs one answer message instead of N. (The patched ``flush`` is a
  copy of the engine's as of 2026-11-21 with that one change: re-check it if ``flush``
  changes.)
"""

from __future__ import annotations

import os
from typing import Any

VARIABLE = "CX_BENCH_WHATIF"
PATCHES = ("replies",)
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


_PATCHERS = {"replies": _batched_replies}
