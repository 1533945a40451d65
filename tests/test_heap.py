"""An actor process freezes the heap it inherited from the process it was forked from."""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
from multiprocessing.connection import Connection

from infra.heap import adopt_inherited_heap, collector_paused


def _child(answers: Connection) -> None:
    first, again = adopt_inherited_heap(), adopt_inherited_heap()
    answers.send((first, again, gc.get_freeze_count()))
    answers.close()


def test_a_process_not_forked_by_multiprocessing_freezes_nothing() -> None:
    before = gc.get_freeze_count()
    assert adopt_inherited_heap() is False
    assert gc.get_freeze_count() == before


def test_a_forked_process_freezes_what_it_inherited_once() -> None:
    inherited = [[n] for n in range(10_000)]  # objects the child gets with the fork
    receiving, sending = multiprocessing.Pipe(duplex=False)
    child = multiprocessing.get_context("fork").Process(target=_child, args=(sending,))
    child.start()
    try:
        assert receiving.poll(10), "the child did not answer"
        first, again, frozen = receiving.recv()
    finally:
        child.join(5)
        if child.is_alive():
            child.kill()
            child.join(5)
    assert (first, again) == (True, False)
    assert frozen >= len(inherited)


def test_the_collector_is_off_inside_a_paused_block_and_back_after() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_paused_block_leaves_a_collector_that_was_off_off() -> None:
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_paused_block_that_raises_turns_the_collector_back_on() -> None:
    with contextlib.suppress(RuntimeError), collector_paused():
        raise RuntimeError("in the block")
    assert gc.isenabled()
