"""The `order-machine` command line: one module per command group, registered here.

Each command module exposes `register(subparsers)`; handlers return an exit code. Errors print one
line, never a traceback: 0 ok, 1 failed check or refused action, 2 usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from ..errors import OrderMachineError

COMMAND_MODULES = ("validate", "diagram", "demo", "serve", "orders", "ops", "db")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="order-machine",
        description="Order workflows as explicit, event-sourced state machines.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    import importlib

    for name in COMMAND_MODULES:
        module = importlib.import_module(f".{name}", __name__)
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        result = args.handler(args)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
        return int(result or 0)
    except OrderMachineError as exc:
        print(f"error: {str(exc).splitlines()[0] if not getattr(exc, 'problems', None) else exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
