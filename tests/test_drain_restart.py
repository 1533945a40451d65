"""A drain outlives the daemon's restart of the engine: a started engine drained, its
TopicMonitor killed and replaced by the daemon, is draining again by the next ``/readyz``
(503) and refuses new conversations."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from infra.config import load_config
from runtime import control, pidfile, procs, testing
from runtime.gateway import Gateway, UnavailableError
from runtime.metrics_server import DRAINING
from tests.multiproc_support import eventually, free_port, system_pids, write_config


def readyz(port: int) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as answer:
            return int(answer.status), json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def replaced(pid_file: Path, old: int) -> bool:
    record = pidfile.read_record(pid_file)
    return record is not None and record.state == "running" and record.pids["monitor"] != old


@pytest.mark.multiproc
def test_a_drained_engine_restarted_by_the_daemon_is_draining_again(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, metrics={"port": port, "ready_timeout_seconds": 2})
    settings = load_config(config)
    control.spawn(str(config), settings)
    try:
        with Gateway.connect(config) as gw:
            gw.drain_engine()
            old = testing.pid_of(gw, testing.addresses(gw).monitor)
        assert readyz(port)[1]["problems"] == {
            "actors": None, "journal": None, "archive": None, "draining": DRAINING
        }  # fmt: skip

        os.kill(old, signal.SIGKILL)
        eventually(lambda: replaced(pidfile.RunFiles.of(settings).pid, old), timeout=20)
        eventually(lambda: readyz(port) == (503, {"ready": False, "problems": {
            "actors": None, "journal": None, "archive": None, "draining": DRAINING
        }}), timeout=20)  # fmt: skip

        with Gateway.connect(config) as gw, pytest.raises(UnavailableError, match="draining"):
            gw.start_session("cust-1", "WEB", "visitor-1")
    finally:
        with contextlib.suppress(control.NotRunningError):
            control.stop(settings)
        left = system_pids(config)
        procs.signal_all(left, signal.SIGKILL)
        assert not left
