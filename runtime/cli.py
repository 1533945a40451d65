"""The ``cx`` command line: its parser, its exit codes, ``cx start``, ``cx stop`` and ``cx diagram``.

The commands that talk to a running engine live beside it: ``cx send`` in
:mod:`runtime.cli_send`, ``cx status`` and ``cx history`` in :mod:`runtime.cli_status`,
``cx drain`` and ``cx reload`` in :mod:`runtime.cli_operations`, ``cx gateway`` in
:mod:`runtime.netgateway.command`, ``cx web`` and ``cx token`` in :mod:`runtime.web.command`,
``cx simulate`` in :mod:`runtime.simulation.command`.

Exit codes (docs/OPERATIONS.md): 0 success; 1 the system is not in the state the command needs
(not running, already running); 2 something to fix: the command line, the configuration
(file, key, port) or a request the engine refused; 3 ``cx start`` or ``cx stop`` failed; 4 ``cx
status``: the engine is recovering (a supervised process is down) or did not answer in time.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from domain.transitions import mermaid
from infra.archive_errors import StorageError
from infra.config import ConfigError, load_config
from runtime import cli_logs, control, daemon, export, pidfile
from runtime.cli_inventory import add_commands as add_inventory_commands
from runtime.cli_operations import add_commands, drain_command, reload_command
from runtime.cli_send import OPS, UsageError, ops_help, send_command
from runtime.cli_status import EXIT_DEGRADED, DegradedError, history_command, status_command
from runtime.demo import run_demo
from runtime.export import forget_command
from runtime.gateway import GatewayError
from runtime.live_demo import run_live_demo
from runtime.netgateway import run_gateway
from runtime.simulation import command as simulation
from runtime.system import salvaging
from runtime.web import run_web, token_command
from runtime.web.demo import run_web_demo

DIAGRAM_START = "```mermaid\n"
DIAGRAM_END = "```\n"
DEFAULT_CONFIG = "config.yaml"
#: The distribution whose metadata gives ``cx --version``.
PACKAGE = "cx-engine"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cx", description="Contact-center conversation engine.")
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {importlib.metadata.version(PACKAGE)}"
    )
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
    add_commands(commands, with_config)  # drain, reload
    log_level = with_config(
        commands.add_parser("log-level", help="change the log level of the running engine")
    )
    log_level.add_argument(
        "level", choices=cli_logs.CHOICES, metavar="LEVEL", help="debug, info, warning or error"
    )
    log_level.add_argument("--logger", metavar="NAME", help="only this logger (and those under it)")
    status = with_config(
        commands.add_parser("status", help="live conversations by state, agents, queue lengths")
    )
    status.add_argument("--json", action="store_true", help="print JSON")
    send = with_config(
        commands.add_parser(
            "send",
            help="one gateway operation, e.g. cx send customer_message CS_ID hello",
            formatter_class=argparse.RawDescriptionHelpFormatter,
            epilog=ops_help(),
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
    with_config(
        commands.add_parser(
            "web", help="serve the gateway operations over HTTP and WebSockets (web.listen; docs/WEB.md)"
        )
    )
    token = with_config(commands.add_parser("token", help="print a signed access token for cx web"))
    token.add_argument("--role", required=True, help="connector, agent, supervisor or operator")
    token.add_argument("--subject", required=True, help="agent id, connector or operator name")
    token.add_argument("--channels", default="", help="a connector's channels, e.g. WEB,SMS")
    token.add_argument("--ttl", type=int, help="seconds it is valid (default web.token_ttl_seconds)")
    history = with_config(
        commands.add_parser("history", help="a room's archived conversations with their events")
    )
    history.add_argument("room", metavar="ROOM", help="the room id")
    history.add_argument("--json", action="store_true", help="print JSON")
    forget = with_config(
        commands.add_parser(
            "forget", help="delete everything the archive holds of a customer (none live)"
        )
    )
    forget.add_argument("customer", metavar="CUSTOMER_ID", help="the customer id")
    export.add_arguments(
        with_config(
            commands.add_parser("export", help="archived conversations created in a time range")
        )
    )

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
    demo.add_argument(
        "--web", action="store_true",
        help="serve the customer web chat and the agent desk on an engine of their own (docs/WEB.md)",
    )  # fmt: skip

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

    add_inventory_commands(commands, with_config)

    args = parser.parse_args(argv)
    try:
        if getattr(args, "run", None) is not None:  # commands that name their own function
            return int(args.run(args))
        if args.command == "start":
            return _start(args.config, foreground=args.foreground, salvage=args.salvage_journal)
        if args.command == "stop":
            return _stop(args.config)
        if args.command == "drain":
            return drain_command(args.config, wait=args.wait, timeout=args.timeout)
        if args.command == "reload":
            return reload_command(args.config)
        if args.command == "status":
            return status_command(args.config, as_json=args.json)
        if args.command == "log-level":
            return cli_logs.log_level_command(args.config, args.level, args.logger)
        if args.command == "send":
            return send_command(args.config, args.op, args.args, args.json_args)
        if args.command == "gateway":
            return run_gateway(args.config, connect=control.connect)
        if args.command == "web":
            return run_web(args.config, connect=control.connect)
        if args.command == "token":
            channels = [c for c in args.channels.split(",") if c]
            return token_command(
                args.config, args.role, args.subject, channels=channels, ttl_s=args.ttl
            )
        if args.command == "history":
            return history_command(args.config, args.room, as_json=args.json)
        if args.command == "forget":
            return forget_command(args.config, args.customer)
        if args.command == "export":
            return export.export_command(
                args.config, args.start, args.end, fmt=args.format, out=args.out,
                include_agent_only=args.include_agent_only,
            )
        if args.command == "demo":
            if args.web:
                return run_web_demo()
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
    except control.NotRunningError as error:
        print(f"cx {args.command}: {error}", file=sys.stderr)
        return 1
    except (ConfigError, GatewayError, UsageError) as error:
        print(f"cx {args.command}: {error}", file=sys.stderr)
        return 2
    except (control.StartError, control.StopError, StorageError) as error:
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
    except Exception as error:  # never a traceback: one line saying what failed
        print(f"cx {args.command}: failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 3


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
    record = control.spawn(config, settings)
    files = pidfile.RunFiles.of(settings)
    print(
        f"cx start: engine running (pid {record.pid}, admin {record.admin}); "
        f"log {record.log}, pid file {files.pid}"
    )
    return 0


def _stop(config: str) -> int:
    stopped = control.stop(load_config(config))
    killed = f"; killed leftover processes {sorted(stopped.killed)}" if stopped.killed else ""
    print(f"cx stop: stopped (admin {stopped.record.admin}){killed}")
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
