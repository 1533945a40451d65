"""AsyncGateway over a real multiprocTCPBase system: many calls at once, refusals, pushed
events. Bounded, always shut down."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from runtime.aio import AsyncGateway
from runtime.gateway import Gateway, UnknownIdError
from tests.multiproc_support import running_system, write_config

pytestmark = pytest.mark.multiproc

LIMIT_S = 60.0


def test_many_calls_at_once_through_a_running_engine(tmp_path: Path) -> None:
    config = write_config(tmp_path, placement={"per_host": 1000})

    async def main() -> None:
        async with await AsyncGateway.open(lambda: Gateway.connect(config)) as gw:
            refs = await asyncio.gather(
                *(gw.start_session(f"cust-{n}", "WEB", f"b-{n}") for n in range(50))
            )
            await gw.subscribe_session(refs[0].channel_session_id)
            await asyncio.gather(
                *(gw.customer_message(r.channel_session_id, f"m{k}") for r in refs for k in range(4))
            )
            with pytest.raises(UnknownIdError):
                await gw.customer_message("cs-nobody", "hello")
            counts = [
                [e["name"] for e in await gw.events(r.conversation_id)].count("CUSTOMER_MESSAGE")
                for r in refs
            ]
            assert counts == [4] * 50
            names: list[str] = []
            seqs: list[int] = []
            while names.count("CUSTOMER_MESSAGE") < 4:
                batch = await gw.pushed(timeout=5.0)
                assert batch, "no pushed event within 5 s"
                names += [p.event["name"] for p in batch]
                seqs += [p.event["seq"] for p in batch]
            assert seqs == list(range(1, len(seqs) + 1))

    with running_system(config):
        asyncio.run(asyncio.wait_for(main(), LIMIT_S))
