"""AsyncGateway: the Gateway's operations as coroutines, batched per window, bounded in flight."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from actors.messages import Batch
from domain.commands import CustomerMessage
from runtime import testing
from runtime.aio import AioLimits, AsyncGateway
from runtime.aio.client import OPERATIONS
from runtime.gateway import (
    BadArgumentError,
    Gateway,
    IllegalTransitionError,
    SessionRef,
    UnavailableError,
    UnknownIdError,
)
from tests.conftest import storage_config

#: Every test's whole run, engine start and shutdown included.
LIMIT_S = 30.0

Body = Callable[[AsyncGateway], Awaitable[None]]


def run(tmp_path: Path, body: Body, limits: AioLimits | None = None,
        built: list[Gateway] | None = None) -> None:  # fmt: skip
    """``body`` with an AsyncGateway over an embedded engine built on its pump thread."""

    def source() -> Gateway:
        gateway = Gateway.embedded(storage_config(tmp_path / "engine"))
        if built is not None:
            built.append(gateway)
        return gateway

    async def main() -> None:
        async with await AsyncGateway.open(source, limits) as gw:
            await body(gw)

    asyncio.run(asyncio.wait_for(main(), LIMIT_S))


def test_operations_answer_as_the_gateway_does(tmp_path: Path) -> None:
    async def body(gw: AsyncGateway) -> None:
        ref = await gw.start_session("cust-1", "WEB", "browser-1")
        assert isinstance(ref, SessionRef)
        await gw.customer_message(ref.channel_session_id, "hello")
        await gw.agent_login("alice")
        await gw.agent_ready("alice")
        await gw.agent_join("alice", ref.conversation_id)
        await gw.agent_message("alice", ref.conversation_id, "hi, how can I help?")
        snapshot = await gw.conversation(ref.conversation_id)
        assert snapshot["state"] == "ACTIVE"
        names = [e["name"] for e in await gw.events(ref.conversation_id)]
        assert names.count("CUSTOMER_MESSAGE") == 1
        assert names.count("AGENT_MESSAGE") == 1
        assert (await gw.status())["conversations"] == {"ACTIVE": 1}

    run(tmp_path, body)


def test_refusals_raise_the_gateway_error_tree(tmp_path: Path) -> None:
    async def body(gw: AsyncGateway) -> None:
        with pytest.raises(UnknownIdError):
            await gw.customer_message("cs-nobody", "hello")
        with pytest.raises(BadArgumentError, match="channel"):
            await gw.start_session("cust-1", "PIGEON", "browser-1")
        ref = await gw.start_session("cust-1", "WEB", "browser-1")
        await gw.end_conversation(ref.conversation_id)
        with pytest.raises(IllegalTransitionError):
            await gw.end_conversation(ref.conversation_id)
        with pytest.raises(BadArgumentError, match="unknown operation"):
            await gw.call("format_disk")

    run(tmp_path, body)


def test_messages_in_one_window_leave_as_one_engine_message_per_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[Gateway] = []
    batches: list[Batch] = []

    async def body(gw: AsyncGateway) -> None:
        opened = (gw.start_session(f"cust-{n}", "WEB", f"b-{n}") for n in range(20))
        refs = await asyncio.gather(*opened)
        system = testing.system(built[0])
        tell = system.tell

        def counted(address: Any, message: Any) -> None:
            if isinstance(message, Batch) and any(
                isinstance(getattr(item.payload, "command", None), CustomerMessage)
                for item in message.items
            ):
                batches.append(message)
            tell(address, message)

        monkeypatch.setattr(system, "tell", counted)
        before = gw.windows
        await asyncio.gather(*(gw.customer_message(r.channel_session_id, "hi") for r in refs))
        assert gw.windows - before == 1
        assert len(batches) == 1  # every conversation on the one host of the default placement
        assert len(batches[0].items) == 20

    # a window stays open until 20 calls have come
    run(tmp_path, body, AioLimits(window_s=5.0, max_batch=20), built)


def test_calls_beyond_the_in_flight_bound_wait_for_a_slot(tmp_path: Path) -> None:
    async def body(gw: AsyncGateway) -> None:
        refs = [await gw.start_session(f"cust-{n}", "WEB", f"b-{n}") for n in range(20)]
        seen: list[int] = []
        before = gw.windows

        async def send(session_id: str) -> None:
            seen.append(gw.in_flight)
            await gw.customer_message(session_id, "hi")

        await asyncio.gather(*(send(r.channel_session_id) for r in refs))
        assert max(seen) <= 4
        assert gw.windows - before >= 5  # 20 calls, at most 4 per window

    # a long window would take all 20 at once if nothing held them back
    run(tmp_path, body, AioLimits(max_in_flight=4, window_s=0.2))


def test_pushed_events_arrive_in_seq_order(tmp_path: Path) -> None:
    async def body(gw: AsyncGateway) -> None:
        ref = await gw.start_session("cust-1", "WEB", "browser-1")
        await gw.subscribe_session(ref.channel_session_id)
        for n in range(3):
            await gw.customer_message(ref.channel_session_id, f"message {n}")
        events = []
        while len([p for p in events if p.event["name"] == "CUSTOMER_MESSAGE"]) < 3:
            events += await gw.pushed(timeout=5.0)
        seqs = [p.event["seq"] for p in events]
        assert seqs == list(range(1, len(seqs) + 1))
        assert {p.subscription for p in events} == {f"session:{ref.channel_session_id}"}

    run(tmp_path, body)


def test_calls_after_close_are_refused_unavailable(tmp_path: Path) -> None:
    async def body(gw: AsyncGateway) -> None:
        await gw.close()
        with pytest.raises(UnavailableError, match="closed"):
            await gw.status()

    run(tmp_path, body)


def test_an_engine_that_cannot_start_raises_from_open() -> None:
    def source() -> Gateway:
        raise UnavailableError("no engine here")

    async def main() -> None:
        with pytest.raises(UnavailableError, match="no engine here"):
            await AsyncGateway.open(source)

    asyncio.run(asyncio.wait_for(main(), LIMIT_S))


def test_calls_waiting_for_a_slot_when_it_closes_are_refused_not_left_waiting(
    tmp_path: Path,
) -> None:
    async def body(gw: AsyncGateway) -> None:
        ref = await gw.start_session("cust-1", "WEB", "browser-1")
        calls = [
            asyncio.ensure_future(gw.customer_message(ref.channel_session_id, f"m{n}"))
            for n in range(3)
        ]
        await asyncio.sleep(0)  # the first takes the one slot; the others wait for it
        await gw.close()
        outcomes = await asyncio.wait_for(
            asyncio.gather(*calls, return_exceptions=True), timeout=LIMIT_S / 2
        )
        refused = [o for o in outcomes if isinstance(o, UnavailableError)]
        assert len(refused) >= 2  # every call that had no slot yet when it closed
        assert all(o is None or isinstance(o, UnavailableError) for o in outcomes)

    run(tmp_path, body, AioLimits(max_in_flight=1))


def test_each_typed_coroutine_takes_the_arguments_of_its_gateway_method() -> None:
    typed = [
        name
        for name, member in vars(AsyncGateway).items()
        if name in OPERATIONS and inspect.iscoroutinefunction(member)
    ]
    assert "customer_message" in typed and "agent_join" in typed
    for name in typed:
        mine = inspect.signature(getattr(AsyncGateway, name)).parameters
        theirs = inspect.signature(getattr(Gateway, name)).parameters
        assert [(p.name, p.kind, p.default) for p in mine.values()] == [
            (p.name, p.kind, p.default) for p in theirs.values()
        ], name


def test_every_gateway_operation_is_reachable_through_call() -> None:
    """Operations without a typed coroutine are called as ``await gw.call(op, **args)``; only
    the Gateway's own life (making, closing, batching, its push queue) is not an operation."""
    public = {
        name
        for name in dir(Gateway)
        if not name.startswith("_") and callable(getattr(Gateway, name))
    }
    not_operations = {"connect", "embedded", "close", "pipeline", "pushed", "drain"}
    assert public - OPERATIONS == not_operations
