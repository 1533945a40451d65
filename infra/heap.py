"""The cyclic garbage collector in the engine's actor processes.

Thespian starts each actor in a process forked from its parent actor's process, at whatever
moment the parent creates it: the new process inherits every object of its parent (a
TopicMonitor that creates a host while it rebuilds a dead node's conversations hands it every
journal record it has read). None of them is the new actor's, yet Python's collector would
walk all of them at every full collection, and writing its bookkeeping into them copies their
memory pages, shared until then. :func:`adopt_inherited_heap`, called once when an actor
starts in a process of its own, moves them to the collector's permanent generation
(``gc.freeze``, as Python's documentation advises after a fork): they are never walked again,
and what the actor allocates itself is collected as usual.

:func:`collector_paused` runs a burst of allocation without the collector (the TopicMonitor
reading a dead writer's journal: 100,000 records for 10,000 conversations): as the heap grows
by a quarter, Python runs a full collection over all of it, several times over in one burst,
and none of them finds garbage there.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
from collections.abc import Iterator
from contextlib import contextmanager

_ADOPTED: set[int] = set()  # the processes whose inherited heap was frozen


def adopt_inherited_heap() -> bool:
    """Freeze what this process inherited from the process it was forked from, once per
    process; nothing in a process that was not forked by :mod:`multiprocessing` (an engine
    embedded in a program, a simulation). Whether it froze now."""
    pid = os.getpid()
    if pid in _ADOPTED or multiprocessing.parent_process() is None:
        return False
    _ADOPTED.add(pid)
    gc.freeze()
    return True


@contextmanager
def collector_paused() -> Iterator[None]:
    """The block runs with the cyclic collector off (as it was, after): for a burst that
    allocates many objects and no garbage cycles. What it allocated is collected once the
    collector is back, by its young generations first, as anything new is."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
