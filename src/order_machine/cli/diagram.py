"""`order-machine diagram`: write, check or draw transition diagrams.

Reads definitions and, with --order, one order's stream; all drawing is done by `order_machine.diagrams`.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import diagrams
from ..definition import Definition, definition_files, load_definition, load_definitions
from ..errors import DiagramError

DEFAULT_OUT = "diagrams"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "diagram",
        help="write transition diagrams (svg, png, dot, mmd), check them, or draw one order's",
        description=(
            "Write diagrams/<name>.<format> for definitions (default: svg, png and mmd for every file in "
            "the definitions folder); --check names the files that no longer match their definition; "
            "--order draws one order's path, current state and allowed actions."
        ),
    )
    parser.add_argument("targets", nargs="*", metavar="NAME_OR_PATH",
                        help="definition names, files or folders (default: every definition)")
    parser.add_argument("--format", "-f", dest="formats", action="append", choices=diagrams.FORMATS,
                        help="repeat for several (default: svg, png and mmd; svg for --order)")
    parser.add_argument("--out", "-o", metavar="DIR", help=f"output folder (default: {DEFAULT_OUT}/; for --order: stdout)")
    parser.add_argument("--definitions", metavar="DIR", help="definitions folder (default: $ORDER_MACHINE_DEFINITIONS, "
                        "else ./definitions, else the packaged ones)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 naming every stale or missing diagram file")
    parser.add_argument("--order", metavar="ORDER_ID", help="draw this order's diagram from its events")
    parser.add_argument("--db", metavar="URL", help="store URL for --order (default: ORDER_MACHINE_DB_URL "
                        "or sqlite:///orders.db)")
    parser.set_defaults(handler=run, parser=parser)


async def run(args: argparse.Namespace) -> int:
    if args.order is not None:
        if args.check or args.targets:
            args.parser.error("--order draws one order: it takes no NAME_OR_PATH and no --check")
        return await _draw_order(args)
    if args.db is not None:
        args.parser.error("--db is only used with --order")
    folder = _definitions_dir(args.definitions)
    chosen = _select(args.targets, folder)
    formats = tuple(dict.fromkeys(args.formats or diagrams.DEFAULT_FORMATS))
    out = Path(args.out or DEFAULT_OUT)
    if args.check:
        return _check(chosen, out, formats, orphans=not args.targets)
    out.mkdir(parents=True, exist_ok=True)
    for name, definition in sorted(chosen.items()):
        for fmt in formats:
            _write(out / f"{name}.{fmt}", diagrams.render_diagram(definition, fmt))
    return 0


def _definitions_dir(given: str | None) -> Path:
    if given is not None:
        return Path(given)
    from ..order import default_definitions_dir

    return default_definitions_dir()


def _select(targets: Sequence[str], folder: Path) -> dict[str, Definition]:
    """The definitions named on the command line (names, files or folders), keyed by name."""
    if not targets:
        return load_definitions(folder)
    chosen: dict[str, Definition] = {}
    known: dict[str, Definition] | None = None
    for target in targets:
        path = Path(target)
        if path.exists():
            for file in definition_files([path]):
                d = load_definition(file)
                chosen[d.name] = d
            continue
        if known is None:
            known = load_definitions(folder)
        if target not in known:
            names = ", ".join(sorted(known)) or "none"
            raise DiagramError(f"no definition named {target!r} and no such file; {folder} holds: {names}")
        chosen[target] = known[target]
    return chosen


def _check(chosen: dict[str, Definition], out: Path, formats: Sequence[str], orphans: bool) -> int:
    stale = diagrams.stale_diagrams(chosen, out, formats, orphans=orphans)
    if not stale:
        print(f"{out}/ is up to date with {len(chosen)} definition(s)")
        return 0
    for file, reason in stale:
        print(f"stale: {file} ({reason})")
    hint = "remove the files without a definition; " if any(r.startswith("no definition") for _, r in stale) else ""
    print(f"{len(stale)} stale diagram file(s): {hint}run `order-machine diagram` to regenerate", file=sys.stderr)
    return 1


def _write(file: Path, data: bytes) -> None:
    if file.is_file() and file.read_bytes() == data:
        return  # unchanged: keep the file's timestamp
    file.write_bytes(data)
    print(f"wrote {file}")


async def _draw_order(args: argparse.Namespace) -> int:
    from ..store import open_store

    formats = tuple(dict.fromkeys(args.formats or ("svg",)))
    if args.out is None and (len(formats) > 1 or (formats == ("png",) and sys.stdout.isatty())):
        args.parser.error("without --out, --order writes one format to stdout (png only into a pipe or file); "
                          "use --out DIR")
    definition = load_definition(_definitions_dir(args.definitions) / "order.yaml")
    url = args.db
    if url is None:
        from ..config import Settings

        url = Settings().db_url
    store = open_store(url)
    try:
        path, current = await diagrams.load_order_path(store, args.order, definition)
    finally:
        await store.close()
    title = diagrams.order_title(args.order, definition)
    for fmt in formats:
        data = diagrams.render_diagram(definition, fmt, path=path, current=current, title=title)
        if args.out is None:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        else:
            Path(args.out).mkdir(parents=True, exist_ok=True)
            _write(Path(args.out) / f"order-{_safe(args.order)}.{fmt}", data)
    return 0


def _safe(order_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", order_id)
