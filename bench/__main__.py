"""`python -m bench [NAME ...] [--quick]`: run the benchmarks and print markdown tables.

Each bench module exposes `run(size) -> list[Table]` (and may expose `unavailable() -> str | None`,
e.g. no database server); modules are imported only when selected, so a missing optional peer or
backend affects only its own bench.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
import time
from collections.abc import Sequence

from ._report import SIZES, Size, environment, load_average

# name -> (module, what it measures); http and postgres join when their code exists (issues 5, 6)
BENCHES: dict[str, tuple[str, str]] = {
    "dispatch": ("bench.dispatch", "state machine lifecycle, dispatch and memory vs transitions, python-statemachine"),
    "store": ("bench.store", "SQLite commands, projection rebuild and load vs eventsourcing"),
    "workflow": ("bench.workflow", "a generic workflow's lifecycle vs the order's, in memory and on SQLite"),
    "http": ("bench.http", "POST /orders + confirm through the real server vs a bare FastAPI endpoint"),
    "postgres": ("bench.postgres", "PostgreSQL commands with 1/4/8 clients and projection vs eventsourcing"),
    "projectors": ("bench.projectors", "a user's projector rebuilt (SQLite, memory, PostgreSQL) vs a bare sqlite3 loop"),
    "auth": ("bench.auth", "what API keys add to a request: the same app with auth none and keys, in process"),
}


def available() -> list[str]:
    return [name for name, (module, _) in BENCHES.items() if importlib.util.find_spec(module) is not None]


def build_parser() -> argparse.ArgumentParser:
    have = available()
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmarks of order-machine beside its peers, measured in the same run.",
        epilog="benches: " + "; ".join(f"{n}: {BENCHES[n][1]}" for n in have),
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"benches to run (default: all of {', '.join(have)})")
    parser.add_argument("--quick", action="store_const", const="quick", dest="size", help="small sizes (< 15 s in all)")
    parser.add_argument("--size", choices=SIZES, help="run size: full (default), quick, or smoke (the unit test's)")
    parser.set_defaults(size="full")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    have = available()
    parser = build_parser()
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHES]
    missing = [n for n in args.names if n in BENCHES and n not in have]
    if unknown or missing:
        problem = f"unknown bench {unknown[0]!r}" if unknown else f"bench {missing[0]!r} is not written yet"
        parser.error(f"{problem}; available: {', '.join(have)}")
    size: Size = args.size
    chosen = []
    for name in args.names or have:
        module = importlib.import_module(BENCHES[name][0])
        reason = module.unavailable() if hasattr(module, "unavailable") else None
        if reason is not None and args.names:  # asked for by name: say why it cannot run
            parser.error(f"bench {name!r} {reason}")
        chosen.append((name, module, reason))
    print(f"# order-machine benchmarks ({size})\n\n{environment()}\n")
    for name, module, reason in chosen:
        if reason is not None:
            print(f"_{name}: skipped, {reason}_\n", flush=True)
            continue
        started = time.perf_counter()
        for table in module.run(size):
            print(table.markdown(), end="\n\n")
        print(f"_{name}: {time.perf_counter() - started:.1f} s, load average {load_average()} at the end_\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
