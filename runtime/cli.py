"""The ``cx`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from actors.model.transitions import mermaid
from runtime.config import ConfigError
from runtime.demo import run_demo
from runtime.gateway import GatewayError

DIAGRAM_START = "```mermaid\n"
DIAGRAM_END = "```\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cx", description="Contact-center conversation engine.")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser(
        "demo",
        help="walk conversations through their lifecycle on the embedded engine and print them",
    )
    demo.add_argument("--config", help="config.yaml to use instead of the built-in defaults")

    diagram = commands.add_parser(
        "diagram", help="print the state diagram (Mermaid) from the transition table"
    )
    diagram.add_argument(
        "--update", metavar="README", help="rewrite the diagram block of this Markdown file"
    )

    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            return run_demo(args.config)
        return _diagram(args.update)
    except (ConfigError, GatewayError) as error:
        print(f"cx {args.command}: {error}", file=sys.stderr)
        return 2


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
