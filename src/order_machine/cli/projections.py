"""`order-machine projections [--json]` and `order-machine projections release STREAM [--projector NAME]`.

Lists each projection's checkpoint, lag and the streams it quarantined (with the error and since when);
release rebuilds a repaired stream's rows from its events and lifts the quarantine. Imports the CLI
helpers and `projections` (the quarantine policy).
"""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import ReleaseError
from ..projections.custom import CustomProjection
from ..projections import ProjectionStatus, release_quarantined
from ._session import DB_HELP, Failed, add_store_options, print_json, require_existing_database, running, settings_from
from ._session import table

EPILOG = """\
examples:
  order-machine projections                          # checkpoint, lag and quarantined streams of each projection
  order-machine projections --json --db sqlite:///var/orders.db
  order-machine projections release ord-17           # its events apply again: rebuild its rows, lift the quarantine
  order-machine projections release ord-17 --projector orders

A projection that keeps failing on an event (after its retries) quarantines that event's stream: it skips
the stream's events from there on and goes on with every other stream. Reads of that order or workflow
answer 503 stream_quarantined; /health says degraded, /metrics counts them, `check` exits 1. Repair the
cause (a fixed projector, or the event's data), then release the stream: it is rebuilt from its events, and
if they still fail it stays quarantined. A running server needs no restart.
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "projections", help="the projections: checkpoint, lag and quarantined streams; release a repaired stream",
        description="List each projection's checkpoint, lag and the streams it quarantined.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--json", action="store_true", help="print the projections as JSON")
    add_store_options(p)
    p.set_defaults(handler=show)
    actions = p.add_subparsers(dest="projections_action", metavar="ACTION")
    r = actions.add_parser(
        "release", help="rebuild a repaired stream's rows from its events and lift its quarantine",
        description="Re-apply every event of STREAM (up to the projection's checkpoint) for each projection that "
                    "quarantined it, or only --projector NAME, and lift the quarantine; exit 1 if they still fail.",
    )
    r.add_argument("stream", metavar="STREAM", help="the stream id: an order id, or <definition>/<id> for a workflow")
    r.add_argument("--projector", metavar="NAME", help="only this projection (default: every one that holds it)")
    # SUPPRESS: given before `release`, the parent's --db stays (a default here would overwrite it)
    r.add_argument("--db", metavar="URL", help=DB_HELP, default=argparse.SUPPRESS)
    r.add_argument("--definitions", metavar="DIR", help="definitions folder", default=argparse.SUPPRESS)
    r.set_defaults(handler=release)


def _status(s: ProjectionStatus) -> dict[str, Any]:
    return {"name": s.name, "checkpoint": s.checkpoint, "last_position": s.last_position, "lag": s.lag,
            "failed": str(s.error) if s.error is not None else None,
            "quarantined": [{"stream": q.stream_id, "position": q.position, "event_type": q.event_type,
                             "error": q.error, "since": q.since.isoformat()} for q in s.quarantined]}


async def show(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    require_existing_database(settings.db_url)
    async with running(settings, start=False) as rt:
        statuses = await rt.projection_status()
    if args.json:
        print_json({"projections": [_status(s) for s in statuses]})
        return 0
    print(table([(s.name, s.checkpoint, s.lag, len(s.quarantined)) for s in statuses],
                ("PROJECTION", "CHECKPOINT", "LAG", "QUARANTINED")))
    for s in statuses:
        if s.error is not None:
            print(f"\n{s.name} stopped: {s.error}")
    held = [q for s in statuses for q in s.quarantined]
    if held:
        print("\nquarantined streams (release each once repaired: order-machine projections release STREAM):")
        print(table([(q.projector, q.stream_id, q.position, q.event_type, q.since.isoformat(timespec="seconds"),
                      q.error) for q in held], ("PROJECTION", "STREAM", "POSITION", "EVENT", "SINCE", "ERROR")))
    return 0


async def release(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    require_existing_database(settings.db_url)
    async with running(settings, start=False) as rt:
        try:
            # only the built-in projections quarantine (a user projector's tables commit apart: it stops)
            builtin = [p for p in rt.runner.projectors if not isinstance(p, CustomProjection)]
            done = await release_quarantined(rt.store, rt.read_models, builtin, args.stream, args.projector)
        except ReleaseError as exc:
            raise Failed(str(exc)) from None
    for name, events in done.items():
        print(f"released {args.stream} from {name}: {events} events re-applied")
    return 0
