"""The ``cx`` command line.

Exit codes (docs/OPERATIONS.md): 0 success; 1 the system is not in the state the command needs
(not running, already running); 2 something to fix: the command line, the configuration
(file, key, port) or a request the engine refused; 3 ``cx start`` or ``cx stop`` failed; 4 ``cx
status``: the engine is recovering (a supervised process is down) or did not answer in time.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from domain.transitions import mermaid
from infra.archive import StorageError
from infra.config import ConfigError, load_config
from runtime import daemon, pidfile
from runtime.bind import restrict
from runtime.demo import run_demo
from runtime.gateway import Gateway, GatewayError
from runtime.live_demo import run_live_demo
from runtime.netgateway import run_gateway
from runtime.netgateway.ops import OPS as NETWORK_OPS
from runtime.netgateway.ops import SERVER_OPS, SUBSCRIPTION_OPS
from runtime.simulation import command as simulation
from runtime.system import salvaging

DIAGRAM_START = "```mermaid\n"
DIAGRAM_END = "```\n"
DEFAULT_CONFIG = "config.yaml"
#: How long ``cx status`` waits for the engine's answer.
STATUS_TIMEOUT_S = 2.0
#: ``cx status``: running but not serving (recovering, or no answer within STATUS_TIMEOUT_S).
EXIT_DEGRADED = 4



class UsageError(Exception):
    """A command line the command cannot use (beyond what argparse checks)."""


class DegradedError(Exception):
    """The engine runs but does not serve now: it is recovering, or it did not answer."""


def _gateway_ops() -> dict[str, inspect.Signature]:
    """``cx send`` operations, with their Gateway method's signatures: the network gateway's
    operations except those the server answers itself and push subscriptions, which belong to
    a connection that stays open (``cx gateway``): a one-shot ``cx send`` would leave the
    engine pushing to an endpoint that is gone."""
    return {
        name: inspect.signature(getattr(Gateway, name))
        for name in sorted(NETWORK_OPS)
        if name not in SERVER_OPS | SUBSCRIPTION_OPS
    }


OPS = _gateway_ops()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cx", description="Contact-center conversation engine.")
    commands = parser.add_subparsers(dest="command", required=True)

    def with_config(command: argparse.ArgumentParser) -> argparse.ArgumentParser:
        command.add_argument(
            "--config", default=DEFAULT_CONFIG, help="configuration file (default: config.yaml)"
        )
        return command

    start = with_config(
        commands.add_parser("start", help="start the long-running system (in the background)")
    )
    start.add_argument(
        "--foreground",
        action="store_true",
        help="run in this terminal with readable logs until Ctrl-C or SIGTERM",
    )
    start.add_argument(
        "--salvage-journal",
        action="store_true",
        help="start past journal damage in the middle of a log: restore every intact record,"
        " report what each conversation lost, move the damaged journal aside (damaged/)",
    )
    with_config(commands.add_parser("stop", help="stop the system and every one of its processes"))
    status = with_config(
        commands.add_parser("status", help="live conversations by state, agents, queue lengths")
    )
    status.add_argument("--json", action="store_true", help="print JSON")
    send = with_config(
        commands.add_parser(
            "send",
            help="one gateway operation, e.g. cx send customer_message CS_ID hello",
            formatter_class=argparse.RawDescriptionHelpFormatter,
            epilog=_ops_help(),
        )
    )
    send.add_argument("op", choices=sorted(OPS), metavar="OP", help="the operation (see below)")
    send.add_argument("args", nargs="*", metavar="ARG", help="its positional arguments")
    send.add_argument(
        "--json-args",
        metavar="JSON",
        help='arguments by name as a JSON object, e.g. \'{"room_id": "room-1"}\'',
    )
    with_config(
        commands.add_parser(
            "gateway",
            help="serve the gateway operations over TCP (gateway.listen; docs/PROTOCOL.md)",
        )
    )
    history = with_config(
        commands.add_parser("history", help="a room's archived conversations with their events")
    )
    history.add_argument("room", metavar="ROOM", help="the room id")
    history.add_argument("--json", action="store_true", help="print JSON")

    demo = commands.add_parser(
        "demo",
        help="start a system, drive simulated customers and agents through it, stop it",
    )
    demo.add_argument(
        "--config",
        help="config.yaml to run on (default: a temporary one: free port, temporary storage)",
    )
    demo.add_argument(
        "--embedded",
        action="store_true",
        help="walk conversations through their lifecycle on the embedded engine with a "
        "virtual clock and print every event",
    )

    simulation.add_arguments(
        commands.add_parser(
            "simulate", help="run a scenario on the embedded engine and summarise it"
        )
    )

    diagram = commands.add_parser(
        "diagram", help="print the state diagram (Mermaid) from the transition table"
    )
    diagram.add_argument(
        "--update", metavar="README", help="rewrite the diagram block of this Markdown file"
    )

    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            return _start(args.config, foreground=args.foreground, salvage=args.salvage_journal)
        if args.command == "stop":
            return _stop(args.config)
        if args.command == "status":
            return _status(args.config, as_json=args.json)
        if args.command == "send":
            return _send(args.config, args.op, args.args, args.json_args)
        if args.command == "gateway":
            return run_gateway(args.config, connect=_connect)
        if args.command == "history":
            return _history(args.config, args.room, as_json=args.json)
        if args.command == "demo":
            if args.embedded:
                return run_demo(args.config)
            return run_live_demo(args.config)
        if args.command == "simulate":
            return simulation.simulate(args)
        return _diagram(args.update)
    except daemon.AlreadyRunningError as error:
        print(
            f"cx {args.command}: already running ({error}); stop it with `cx stop`", file=sys.stderr
        )
        return 1
    except daemon.NotRunningError as error:
        print(f"cx {args.command}: {error}", file=sys.stderr)
        return 1
    except (ConfigError, GatewayError, UsageError) as error:
        print(f"cx {args.command}: {error}", file=sys.stderr)
        return 2
    except (daemon.StartError, daemon.StopError, StorageError) as error:
        print(f"cx {args.command}: {error}", file=sys.stderr)
        return 3
    except DegradedError as error:
        print(f"cx {args.command}: {error}", file=sys.stderr)
        return EXIT_DEGRADED
    except KeyboardInterrupt:
        print(f"cx {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`cx history ROOM --json | head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


# ------------------------------------------------------------------------------ start, stop


def _start(config: str, *, foreground: bool, salvage: bool = False) -> int:
    settings = load_config(config)
    if salvage:
        settings = salvaging(settings)
    if foreground:
        current = pidfile.running_record(settings)
        if current is not None:
            raise daemon.AlreadyRunningError(daemon.describe(current))
        return daemon.serve(settings, config=str(Path(config).resolve()), foreground=True)
    record = daemon.spawn(config, settings)
    files = pidfile.RunFiles.of(settings)
    print(
        f"cx start: engine running (pid {record.pid}, admin {record.admin}); "
        f"log {record.log}, pid file {files.pid}"
    )
    return 0


def _stop(config: str) -> int:
    stopped = daemon.stop(load_config(config))
    killed = f"; killed leftover processes {sorted(stopped.killed)}" if stopped.killed else ""
    print(f"cx stop: stopped (admin {stopped.record.admin}){killed}")
    return 0


# ------------------------------------------------------------------------------ gateway commands


def _connect(config: str) -> Gateway:
    """A gateway to the running system; NotRunningError (one line) if there is none."""
    settings = load_config(config)
    restrict(settings)  # this process's own Thespian endpoint listens on system.bind too
    try:
        return Gateway.connect(config)
    except GatewayError as error:
        raise daemon.NotRunningError(str(error)) from None
    except Exception as error:  # Thespian's own, when the admin port answers but no admin
        raise daemon.NotRunningError(
            f"cannot reach the actor system on {settings.system.bind}:"
            f"{settings.system.admin_port} (system.admin_port in {settings.source}): {error}"
        ) from None


def _status(config: str, *, as_json: bool) -> int:
    """The engine's state from its pid file and processes first (it never waits on an engine
    that is recovering), then the counts from the engine, waited for STATUS_TIMEOUT_S at most."""
    settings = load_config(config)
    record = pidfile.running_record(settings)
    admin = f"{settings.system.bind}:{settings.system.admin_port}"
    down = [] if record is None else record.down_now()
    if record is not None and (record.state != "running" or down):
        return _status_degraded(record, down, admin, as_json=as_json)
    status = _engine_status(config)
    engine = None if record is None else {**_engine_fields(record), "state": "running", "down": []}
    if as_json:
        print(json.dumps({"engine": engine, **status}, indent=2))
        return 0
    if record is None:
        print(f"engine         running, admin {admin} (no pid file: not started by cx start)")
    else:
        print(f"engine         running, pid {record.pid}, admin {admin}, since {record.started_at}")
    failing = status.get("storage", {}).get("failing_journals", 0)
    if failing:
        print(f"storage        FAILING: {failing} conversation host journal(s) refuse writes (see the log)")
    for title, counts in (
        ("conversations", status["conversations"]),
        ("agents", status["agents"]),
        ("queues", status["queues"]),
    ):
        print(f"\n{title:<14} {sum(counts.values()):>5}")
        for key, value in counts.items():
            print(f"  {key:<12} {value:>5}")
        if not counts:
            print("  (none)")
    return 0


def _engine_fields(record: pidfile.Record) -> dict[str, Any]:
    return {
        "pid": record.pid,
        "admin": record.admin,
        "started_at": record.started_at,
        "config": record.config,
        "log": record.log,
    }


def _status_degraded(record: pidfile.Record, down: list[str], admin: str, *, as_json: bool) -> int:
    """The engine runs but does not serve: say so (and what is down) without asking it."""
    state = "recovering" if down else record.state
    if as_json:
        engine = {**_engine_fields(record), "state": state, "down": down}
        print(json.dumps({"engine": engine}, indent=2))
    else:
        what = f": {', '.join(down)} down, the daemon is restarting it" if down else ""
        print(
            f"engine         {state}, pid {record.pid}, admin {admin}, since "
            f"{record.started_at}{what}"
        )
    return EXIT_DEGRADED


def _engine_status(config: str) -> dict[str, Any]:
    """The gateway's ``status()``, or DegradedError if it takes over STATUS_TIMEOUT_S (the
    call is left to a daemon thread: nothing waits for it once this process exits)."""
    outcome: dict[str, Any] = {}

    def ask() -> None:
        try:
            with _connect(config) as gw:
                outcome["status"] = gw.status()
        except BaseException as error:
            outcome["error"] = error

    caller = threading.Thread(target=ask, name="cx-status", daemon=True)
    caller.start()
    caller.join(STATUS_TIMEOUT_S)
    if "error" in outcome:
        raise outcome["error"]
    if "status" not in outcome:
        raise DegradedError(
            f"the engine did not answer within {STATUS_TIMEOUT_S:g} s (it may be overloaded or "
            "recovering); see its log"
        )
    status: dict[str, Any] = outcome["status"]
    return status


def _send(config: str, op: str, raw: list[str], json_args: str | None) -> int:
    call = _bind_op(op, raw, json_args)
    with _connect(config) as gw:
        result = getattr(gw, op)(*call.args[1:], **call.kwargs)
    print(json.dumps(_plain(result), indent=2, ensure_ascii=False))
    return 0


def _bind_op(op: str, raw: list[str], json_args: str | None) -> inspect.BoundArguments:
    """Check the arguments of ``op`` before connecting (the gateway's ``self`` left as None).

    Positional arguments are strings where the parameter is one, else JSON values when they
    parse as JSON (numbers, true, false, null, lists, objects) and strings otherwise.
    """
    signature = OPS[op]
    parameters = [
        parameter
        for parameter in list(signature.parameters.values())[1:]
        if parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    ]
    if len(raw) > len(parameters):
        raise UsageError(f"{op} takes at most {len(parameters)} arguments: {_op_usage(op)}")
    args = [_convert(parameter, text) for parameter, text in zip(parameters, raw, strict=False)]
    kwargs: Any = {}
    if json_args is not None:
        try:
            kwargs = json.loads(json_args)
        except ValueError as error:
            raise UsageError(f"--json-args is not JSON: {error}") from None
        if not isinstance(kwargs, dict):
            raise UsageError("--json-args must be a JSON object of arguments by name")
    try:
        return signature.bind(None, *args, **kwargs)
    except TypeError as error:
        raise UsageError(f"{op}: {error}; usage: {_op_usage(op)}") from None


def _convert(parameter: inspect.Parameter, text: str) -> Any:
    if parameter.annotation in ("str", "str | None"):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def _op_usage(op: str) -> str:
    words = [op]
    for parameter in list(OPS[op].parameters.values())[1:]:
        if parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD:
            name = parameter.name.upper()
            words.append(name if parameter.default is inspect.Parameter.empty else f"[{name}]")
        elif parameter.kind is inspect.Parameter.KEYWORD_ONLY:
            words.append(f"[{parameter.name}]")
    return " ".join(words)


def _ops_help() -> str:
    lines = [
        "operations (arguments in [brackets] are optional; lowercase ones go in --json-args):",
        *(f"  {_op_usage(op)}" for op in sorted(OPS)),
        "",
        "The result is printed as JSON. Examples:",
        "  cx send start_session cust-1 WEB visitor-1",
        '  cx send customer_message CS_ID "hello"',
        "  cx send agent_login alice --json-args '{\"max_conversations\": 2}'",
        "  cx send conversation CONV_ID",
    ]
    return "\n".join(lines)


def _history(config: str, room: str, *, as_json: bool) -> int:
    with _connect(config) as gw:
        conversations = gw.history(room)
    if as_json:
        print(json.dumps(conversations, indent=2, ensure_ascii=False))
        return 0
    print(f"room {room}: {len(conversations)} archived conversation(s)")
    for conversation in conversations:
        channels = ", ".join(s["channel"] for s in conversation["channel_sessions"]) or "-"
        agents = (
            ", ".join(p["id"] for p in conversation["participants"] if p["type"] == "AGENT") or "-"
        )
        print(
            f"  {conversation['id']}  {conversation['state']:<7} "
            f"{conversation['created_at']} -> {conversation['ended_at']}  "
            f"channels {channels}  agents {agents}  {len(conversation['events'])} events"
        )
    return 0


# ------------------------------------------------------------------------------ diagram


def _diagram(update: str | None) -> int:
    block = mermaid() + "\n"
    if update is None:
        print(block, end="")
        return 0
    path = Path(update)
    text = path.read_text()
    start = text.index(DIAGRAM_START) + len(DIAGRAM_START)
    end = text.index(DIAGRAM_END, start)
    path.write_text(text[:start] + block + text[end:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
