"""The `order-machine` command line: one module per command group, registered here.

Each command module exposes `register(subparsers)`; handlers return an exit code. Errors print one
line, never a traceback. Exit codes: 0 ok; 1 an error, a failed check or a refused action
(`error: ...`); 2 a usage error (`order-machine X: error: ... (see `order-machine X --help`)`);
130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from ..errors import OrderMachineError

COMMAND_MODULES = ("validate", "diagram", "demo", "serve", "orders", "workflows", "migrate", "ops", "projections", "db",
                   "keys")
COMMANDS = ("validate", "diagram", "demo", "serve", "orders", "workflows", "migrate", "rebuild", "check", "projections",
            "db", "keys")


#: where every command finds its definitions when not told (order.default_definitions_dir)
DEFINITIONS_RULE = ("$ORDER_MACHINE_DEFINITIONS, else ./definitions when it holds a *.yaml file, "
                    "else the definitions shipped with order-machine")

EXIT_CODES = """exit codes: 0 ok; 1 an error, a failed check or a refused action (one line, "error: ...");
2 a usage error (one line naming the --help to read); 130 interrupted."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line that says where the help is, not the whole usage block."""

    def error(self, message: str) -> NoReturn:
        text = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {text} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="order-machine",
        description="Order workflows as explicit, event-sourced state machines.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""examples:
  order-machine serve                               the API on ./orders.db at http://127.0.0.1:8000
  order-machine orders create --customer cust-7 --item sku-42:2:19.99
  order-machine orders do ORDER_ID Ship --field tracking_number=1Z999 --field shipping_address='1 Main St'
  order-machine orders list --status Pending --json
  order-machine workflows start payment --field amount=100.50 --field currency=USD --field method=card
  order-machine workflows do payment PAYMENT_ID complete --field transaction_id=txn-9
  order-machine migrate ticket --to 2 --map Open=New --dry-run
  order-machine validate definitions/               check every definition, file:line per problem
  order-machine diagram --check                     exit 1 when diagrams/ is stale
  order-machine rebuild && order-machine check      replay the read models, compare them with the events
  order-machine projections                         checkpoints, lag, quarantined streams (release STREAM)
  order-machine db upgrade --db postgresql://app@db/orders
  order-machine keys create --scope write --name checkout   an API key for `serve --auth keys`

Every command takes --help. Commands that use a database take --db URL (default: $ORDER_MACHINE_DB_URL,
else sqlite:///orders.db). Definitions: $ORDER_MACHINE_DEFINITIONS, else ./definitions when it holds
order.yaml, else the definitions shipped with order-machine.

""" + EXIT_CODES,
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
        parser.error(f"a command is required: {', '.join(COMMANDS)}")
    try:
        result = args.handler(args)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
        return int(result or 0)
    except OrderMachineError as exc:
        from ._session import one_line

        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (`| head`): stop quietly, and keep Python from complaining at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
