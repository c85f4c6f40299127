"""`order-machine rebuild [PROJECTION ...]` and `order-machine check [--repair]`: operate the read side.

rebuild replays the store into fresh read models (progress on stderr, events/s at the end); check
compares every order's read model and workflow instance's row with its events (--repair rewrites them); both
exit 1 on a mismatch or a quarantined stream. Imports the CLI helpers and `projections` (the consistency checker).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from typing import Any, TextIO

from ..bootstrap import Runtime
from ..projections import ConsistencyChecker, RebuildReport
from ._session import Failed, add_store_options, print_json, require_existing_database, running, settings_from

REBUILD_EPILOG = """\
examples:
  order-machine rebuild                      # every projection, in one pass over the store
  order-machine rebuild orders               # only the orders view (details, summaries, lists)
  order-machine rebuild --db sqlite:///var/orders.db order_history

Stop the server (or accept a short stale window) while rebuilding: reads see empty views until it ends.
"""

CHECK_EPILOG = """\
examples:
  order-machine check                        # exit 1 and list the orders and workflows whose read model is wrong,
                                             # and the streams a projection quarantined (`order-machine projections`)
  order-machine check --repair               # also rewrite those read models from their events
  order-machine check --json --db sqlite:///var/orders.db
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "rebuild", help="rebuild read models from the event store",
        description="Clear the named projections (default: all) and replay every event into them.",
        epilog=REBUILD_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("projections", nargs="*", metavar="PROJECTION", help="orders, order_history, workflows, or one of $ORDER_MACHINE_PROJECTORS (default: all)")
    add_store_options(p)
    p.set_defaults(handler=rebuild)

    p = subparsers.add_parser(
        "check", help="check every order's and workflow's read model against its events (exit 1 on a mismatch)",
        description="Rebuild each order's read model (and each workflow instance's row) from its events and "
                    "compare it with the stored one.",
        epilog=CHECK_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--repair", action="store_true", help="rewrite the orders and workflows that differ from their events")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    add_store_options(p)
    p.set_defaults(handler=check)


# --------------------------------------------------------------------------- rebuild


async def rebuild(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    require_existing_database(settings.db_url)
    async with running(settings, start=False) as rt:
        known = [p.name for p in rt.runner.projectors]
        unknown = [n for n in args.projections if n not in known]
        if unknown:
            raise Failed(f"unknown projection {unknown[0]!r}; known: {', '.join(known)}")
        chosen = list(dict.fromkeys(args.projections)) or known
        total = await rt.store.last_position()
        started = time.perf_counter()
        events = 0
        # one pass for all of them when none (or all) are named; otherwise one pass per name
        names: list[str | None] = [None] if set(chosen) == set(known) else list(chosen)
        for name in names:
            report = await _with_progress(rt, name, chosen if name is None else [name], total, sys.stderr)
            events += report.events
        failed = {n: e for n, e in rt.runner.failed.items() if n in chosen}
        held = [q for q in await rt.read_models.quarantined() if q.projector in chosen]
    seconds = time.perf_counter() - started
    rate = events / seconds if seconds > 0 else 0.0
    print(f"rebuilt {', '.join(chosen)}: {events} events in {seconds:.2f}s ({rate:,.0f} events/s)")
    for q in held:  # rebuilt without them: their events still fail
        print(f"error: {q.projector} quarantined stream {q.stream_id!r} at position {q.position} ({q.event_type}): "
              f"{q.error} (see `order-machine projections`)", file=sys.stderr)
    for error in failed.values():
        print(f"error: {error}", file=sys.stderr)
    return 1 if failed or held else 0


async def _with_progress(rt: Runtime, name: str | None, watched: list[str], total: int, out: TextIO) -> RebuildReport:
    """Run one rebuild, drawing a progress bar from the checkpoints while it works (on a terminal)."""
    task = asyncio.create_task(rt.runner.rebuild(name))
    draw = out.isatty() and total > 0
    while not task.done():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), 0.2)
        if draw and not task.done():
            reached = await rt.runner.checkpoints()  # the rebuild's own progress, whoever keeps the checkpoint
            done = min([reached[n] for n in watched] or [0])
            _bar(out, min(done, total), total)
    report = task.result()
    if draw:
        _bar(out, total, total)
        out.write("\n")
    return report


def _bar(out: TextIO, done: int, total: int, width: int = 30) -> None:
    filled = int(width * done / total) if total else width
    out.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done * 100 // total if total else 100:3d}% "
              f"{done}/{total} events")
    out.flush()


# --------------------------------------------------------------------------- check


async def check(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    require_existing_database(settings.db_url)
    async with running(settings, start=False) as rt:
        await rt.runner.catch_up()  # check what the store holds now, not a lagging view
        checker = ConsistencyChecker(rt.store, rt.read_models, initial_state=rt.machine.definition.initial)
        report = await checker.check_all(repair=args.repair)
    bad = [c for c in report.mismatched if not c.repaired]
    if args.json:
        print_json({"checked": report.checked, "repaired": report.repaired, "mismatched": [
            {"order_id": c.order_id, "repaired": c.repaired, "error": c.error,
             "differences": [{"field": d.field, "stored": d.stored, "expected": d.expected} for d in c.differences]}
            for c in report.mismatched], "quarantined": [
            {"projection": q.projector, "stream": q.stream_id, "position": q.position, "event_type": q.event_type,
             "error": q.error, "since": q.since.isoformat()} for q in report.quarantined]})
    else:
        for c in report.mismatched:
            what = c.error or "; ".join(f"{d.field}: stored {d.stored!r}, events say {d.expected!r}"
                                        for d in c.differences)
            print(f"{'repaired' if c.repaired else 'MISMATCH'} {c.order_id}: {what}")
        for q in report.quarantined:  # not repaired here: `projections release` rebuilds them once the cause is fixed
            print(f"QUARANTINED {q.stream_id} by {q.projector} at position {q.position} ({q.event_type}) since "
                  f"{q.since.isoformat(timespec='seconds')}: {q.error}")
        orders = report.checked - report.workflows
        checked = f"{orders} orders and {report.workflows} workflows" if report.workflows else f"{orders} orders"
        print(f"checked {checked}: {len(report.mismatched)} mismatched, {report.repaired} repaired"
              + (f", {len(report.quarantined)} quarantined (see `order-machine projections`)"
                 if report.quarantined else ""))
    return 1 if bad or report.quarantined else 0
