"""``python -m bench.web`` at its smallest, so that its code cannot rot (no timing asserted):
an engine, ``cx web`` and the bare reference endpoint each in a process of its own, every
request answered, every socket's events in order, every process gone afterwards."""

from __future__ import annotations

import json

import pytest

from bench import web


@pytest.mark.multiproc
def test_web_benchmark_smallest_case_answers_everything_and_cleans_up(capsys: object) -> None:
    argv = ["--conversations", "4", "--requests", "40", "--connections", "2", "--sockets", "4"]
    assert web.main([*argv, "--json"]) == 0  # 1: processes were left behind and killed
    results = json.loads(capsys.readouterr().out)  # type: ignore[attr-defined]
    assert [results[k]["ok"] for k in ("bare", "ping", "customer_message")] == [40, 40, 40]
    assert results["websockets"]["sockets"] == 4
    assert results["websockets"]["out_of_order"] == 0
