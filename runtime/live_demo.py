"""``cx demo``: start a real system, drive simulated customers and agents through it, stop it.

Without ``--config`` it runs on a temporary configuration (free admin port, storage in a
temporary directory, removed at the end unless something failed); with ``--config`` it uses
that file's system and storage. The engine runs in the background exactly as ``cx start`` runs
it, the customers and agents talk to it through ``Gateway.connect``, and a status line shows
the live conversations, agents and queues as they change. The system is always stopped at the
end, also on Ctrl-C or an error. ``cx demo --embedded`` is the virtual-clock walkthrough
(``runtime.demo``).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from infra.config import Settings, load_config
from runtime import control, pidfile
from runtime.gateway import Gateway, SessionRef, UnavailableError

Printer = Callable[[str], None]
#: Longest wait for one asynchronous outcome (routing, archiving) of the real-time engine.
STEP_TIMEOUT_S = 15.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def demo_config(directory: Path) -> Path:
    """A config for the demo: a free admin port, storage and logs under ``directory``."""
    config = {
        "system": {"admin_port": free_port()},
        "storage": {
            "archive": str(directory / "data" / "archive.sqlite3"),
            "journal": str(directory / "data" / "journal"),
        },
        "logging": {"level": "info"},
    }
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run_live_demo(config: str | None = None, *, out: Printer = print) -> int:
    temporary = None if config is not None else Path(tempfile.mkdtemp(prefix="cx-demo-"))
    path = str(demo_config(temporary)) if temporary is not None else config
    assert path is not None
    settings = load_config(path)
    files = pidfile.RunFiles.of(settings)
    ok = False
    try:
        with _running(path, settings, out) as started:
            out(f"engine running: pid {started.pid}, admin {started.admin}, log {started.log}")
            with Gateway.connect(path) as gw:
                _scenario(gw, out)
        ok = True
    except KeyboardInterrupt:
        ok = True  # stopped on request: nothing to look into
        raise
    finally:
        if temporary is not None:
            if ok:
                shutil.rmtree(temporary, ignore_errors=True)
            else:
                out(f"the demo's configuration and logs are kept in {temporary}")
    out(f"engine stopped; no process left (pid file {files.pid} removed)")
    return 0


@contextmanager
def _running(path: str, settings: Settings, out: Printer) -> Iterator[pidfile.Record]:
    """The engine running in the background for the block; stopped after it whatever happens
    (Ctrl-C during the stop is ignored: it would leave processes behind)."""
    out(
        f"starting the engine ({settings.system.base}, admin "
        f"{settings.system.bind}:{settings.system.admin_port}, storage "
        f"{settings.storage.journal.parent})"
    )
    process = control.launch(path, settings)
    try:
        yield control.wait_ready(process, path, settings)
    finally:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            out("stopping the engine")
            _stop(process, settings)
        finally:
            signal.signal(signal.SIGINT, previous)


def _stop(process: subprocess.Popen[bytes], settings: Settings) -> None:
    # NotRunningError: it had not written its pid file yet, or it has exited already.
    with contextlib.suppress(control.NotRunningError):
        control.stop(settings)
    if process.poll() is None:  # still starting: on SIGTERM it stops what it has started
        process.terminate()
        try:
            process.wait(control.DAEMON_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        with contextlib.suppress(control.NotRunningError):
            control.stop(settings)  # whatever it left


# ------------------------------------------------------------------------------ the scenario


class _Status:
    """Prints a status line whenever the engine's status has changed."""

    def __init__(self, gw: Gateway, out: Printer) -> None:
        self.gw = gw
        self.out = out
        self.started = time.monotonic()
        self.last = ""

    def show(self, force: bool = False) -> dict[str, dict[str, int]]:
        status = self.gw.status()
        line = _status_line(status)
        if force or line != self.last:
            self.out(f"  [{time.monotonic() - self.started:5.2f}s] {line}")
            self.last = line
        return status

    def until(self, what: str, check: Callable[[dict[str, dict[str, int]]], bool]) -> None:
        """Show the status as it changes until ``check`` holds (bounded)."""
        deadline = time.monotonic() + STEP_TIMEOUT_S
        while not check(self.show()):
            if time.monotonic() > deadline:
                raise UnavailableError(
                    f"the engine did not reach '{what}' within {STEP_TIMEOUT_S:g} s"
                )
            time.sleep(0.02)
        self.show()  # (the check may have looked further than the status it was given)


def _status_line(status: dict[str, dict[str, int]]) -> str:
    def part(counts: dict[str, int]) -> str:
        shown = [f"{key} {value}" for key, value in counts.items() if value]
        return ", ".join(shown) or "-"

    return (
        f"conversations: {part(status['conversations'])} | agents: {part(status['agents'])}"
        f" | waiting: {part(status['queues'])}"
    )


def _agent_of(gw: Gateway, conversation_id: str) -> str | None:
    for participant in gw.conversation(conversation_id)["participants"]:
        if participant["type"] == "AGENT" and participant["state"] == "SUBSCRIBED":
            return str(participant["id"])
    return None


def _state(gw: Gateway, conversation_id: str) -> str:
    return str(gw.conversation(conversation_id)["state"])


def _scenario(gw: Gateway, out: Printer) -> None:
    status = _Status(gw, out)
    status.show(force=True)

    out("\n== Two agents log in; each takes one conversation at a time")
    for agent_id in ("alice", "bob"):
        gw.agent_login(agent_id, max_conversations=1)
        gw.agent_ready(agent_id)
    status.show()

    out("\n== Four customers write in, on four channels; the bot answers each")
    customers: dict[str, SessionRef] = {}
    for name, channel, identifier, text in (
        ("ada", "WEB", "ada@example.com", "Hi, where is my order?"),
        ("ben", "WHATSAPP", "+44 7700 900123", "Hello, my card was charged twice"),
        ("cleo", "SMS", "+1 555 0100", "Can I change my address?"),
        ("dan", "EMAIL", "dan@example.com", "What are your opening hours?"),
    ):
        ref = gw.start_session(f"cust-{name}", channel, identifier)
        gw.customer_message(ref.channel_session_id, text)
        customers[name] = ref
        out(f"  {name:<5} {channel:<9} {ref.conversation_id}")
    status.until("4 conversations", lambda s: sum(s["conversations"].values()) == 4)
    for event in gw.events(customers["dan"].conversation_id):
        if event["name"] == "BOT_MESSAGE":
            out(f"  bot to dan: {event['data'].get('text')!r}")

    out("\n== Ada, Ben and Cleo ask for an agent: two are routed at once, one waits")
    for name in ("ada", "ben", "cleo"):
        gw.customer_message(customers[name].channel_session_id, "I want to talk to an agent")
    status.until(
        "2 active, 1 waiting",
        lambda s: s["conversations"].get("ACTIVE") == 2 and s["queues"].get("default") == 1,
    )
    served = {
        name: who
        for name in ("ada", "ben", "cleo")
        if (who := _agent_of(gw, customers[name].conversation_id)) is not None
    }
    for name, agent in served.items():
        out(f"  {agent} is with {name}")
        gw.agent_message(agent, customers[name].conversation_id, f"Hello {name}, I am {agent}.")

    first = next(iter(served))
    agent = served[first]
    conversation = customers[first].conversation_id
    out(f"\n== {first.title()} is done and leaves, {agent} leaves: archived; {agent} takes Cleo")
    gw.end_session(customers[first].channel_session_id)
    gw.agent_leave(agent, conversation)
    status.until(
        "cleo served",
        lambda s: (
            _state(gw, conversation) == "CLOSED"
            and _agent_of(gw, customers["cleo"].conversation_id) is not None
        ),
    )
    cleo_agent = _agent_of(gw, customers["cleo"].conversation_id)
    assert cleo_agent is not None
    gw.agent_message(cleo_agent, customers["cleo"].conversation_id, "Hi Cleo, sorry for the wait!")

    out("\n== Dan's question was answered by the bot; an operator ends his conversation")
    gw.end_conversation(customers["dan"].conversation_id)

    out("\n== Everyone else leaves; every conversation is archived")
    for name, ref in customers.items():
        if name not in (first, "dan"):
            gw.end_session(ref.channel_session_id)
            who = _agent_of(gw, ref.conversation_id)
            if who is not None:
                gw.agent_leave(who, ref.conversation_id)
    status.until("all closed", lambda s: not any(s["conversations"].values()))
    for agent_id in ("alice", "bob"):
        gw.agent_logout(agent_id)
    status.show()

    out("\n== History: the archived conversations of each customer's room")
    for name, ref in customers.items():
        for archived in gw.history(ref.room_id):
            agents = sorted({p["id"] for p in archived["participants"] if p["type"] == "AGENT"})
            channels = ", ".join(s["channel"] for s in archived["channel_sessions"])
            out(
                f"  {name:<5} {archived['id']} {archived['state']}: {len(archived['events'])} "
                f"events, channel {channels}, agents {', '.join(agents) or '-'}"
            )
