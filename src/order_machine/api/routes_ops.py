"""Operations routes: `GET /health` (database, projection lag) and `GET /metrics` (Prometheus text).

The Prometheus exposition format is written here by hand (no client library). Imports the api
package's modules only; reads the Runtime's own counters.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from pydantic import ConfigDict, Field

from .deps import RuntimeDep
from .errors import public_message
from .schemas import HealthResponse, ok

logger = logging.getLogger(__name__)
router = APIRouter(tags=["operations"])

PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
HEALTH_TIMEOUT = 5.0  # seconds: a database that does not answer by then counts as down


class DatabaseHealthResponse(HealthResponse):
    """HealthResponse with the database: reachable, schema version; on PostgreSQL the oldest transaction's age."""

    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [{
        "status": "ok", "store": "ok", "last_position": 42,
        "database": {"reachable": True, "database": "postgresql", "server_version": "16.4", "schema": "order_machine",
                     "schema_version": 3, "latest_schema_version": 3, "oldest_transaction_seconds": 0.004},
        "projections": {"orders": {"position": 42, "lag": 0, "failed": None, "quarantined": [], "running": True,
                                   "lease_held_here": True}}}]})

    database: dict[str, Any] = Field(default_factory=dict)


@router.get("/health", response_model=DatabaseHealthResponse, name="health",
            summary="Database reachable (schema version, oldest transaction) and projection lag; 503 when it is down",
            responses={**ok(DatabaseHealthResponse),
                       503: {"description": "the database cannot be reached", "content": {"application/json": {
                           "schema": {"$ref": "#/components/schemas/DatabaseHealthResponse"}, "example": {"status": "unavailable", "store": "unreachable", "projections": {},
                                       "database": {"reachable": False},
                                       "message": "the database cannot be reached: StoreError (the server log has the details)"}}}}})
async def health(rt: RuntimeDep) -> Response:
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT):
            database = await rt.database()
            last = await rt.store.last_position()
            statuses = await rt.projection_status()
    except Exception as exc:  # a health check reports any failure to reach the store; it must not raise
        logger.warning("health check: database unreachable: %s", exc)
        # /health answers anyone: the database's address and the driver's words stay in the log
        message = (f"no answer within {HEALTH_TIMEOUT:g}s" if isinstance(exc, TimeoutError)
                   else f"the database cannot be reached: {public_message(exc)}")
        body = DatabaseHealthResponse(status="unavailable", store="unreachable", message=message,
                                      database={"reachable": False})
        return JSONResponse(body.model_dump(mode="json"), status_code=503)
    running = rt.projections.running
    # quarantined streams are listed without their error text (it may quote the event's data): the CLI has it
    projections = {s.name: {"position": s.checkpoint, "lag": s.lag,
                            "failed": public_message(s.error) if s.error is not None else None,
                            "quarantined": [{"stream": q.stream_id, "position": q.position, "event_type": q.event_type,
                                             "since": q.since.isoformat()} for q in s.quarantined],
                            "running": running} for s in statuses}
    if rt.worker is not None:  # PostgreSQL: does this process hold the projection's lease (project it)?
        for name, projection in projections.items():
            projection["lease_held_here"] = name in rt.worker.owned
    degraded = any(p["failed"] or p["quarantined"] for p in projections.values())
    body = DatabaseHealthResponse(status="degraded" if degraded else "ok", store="ok", last_position=last,
                                  projections=projections, database={"reachable": True, **database})
    return JSONResponse(body.model_dump(mode="json"))


_METRICS_EXAMPLE = """\
# HELP order_machine_commands_total Commands handled, by outcome.
# TYPE order_machine_commands_total counter
order_machine_commands_total{outcome="accepted"} 12
order_machine_commands_total{outcome="refused"} 1
# HELP order_machine_projection_lag_events Events in the store a projection has not applied yet.
# TYPE order_machine_projection_lag_events gauge
order_machine_projection_lag_events{projection="orders"} 0
"""


@router.get("/metrics", name="metrics", response_class=Response,
            summary="Prometheus metrics: commands, events, projections, bus",
            responses=ok(None, example=_METRICS_EXAMPLE, media_type=PROMETHEUS_TYPE, description="Prometheus text"))
async def metrics(rt: RuntimeDep) -> Response:
    return Response(prometheus_text(await rt.metrics()), media_type=PROMETHEUS_TYPE)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _family(name: str, kind: str, help_text: str, samples: Iterable[tuple[Mapping[str, str], float]]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        tags = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
        lines.append(f"{name}{{{tags}}} {_number(value)}" if tags else f"{name} {_number(value)}")
    return lines


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def prometheus_text(m: Mapping[str, Any]) -> str:
    """The Runtime's metrics() as Prometheus exposition text (version 0.0.4)."""
    p = "order_machine"
    projections: Mapping[str, Mapping[str, Any]] = m.get("projections", {})
    bus: Mapping[str, Any] = m.get("bus", {})

    def per_projection(key: str) -> list[tuple[dict[str, str], float]]:
        return [({"projection": name}, float(v[key])) for name, v in sorted(projections.items())]

    lines = [
        *_family(f"{p}_commands_total", "counter", "Commands handled, by outcome.",
                 [({"outcome": k}, v) for k, v in sorted(m.get("commands", {}).items())]),
        *_family(f"{p}_events_appended_total", "counter", "Events appended to the store by this process.",
                 [({}, m.get("events_appended", 0))]),
        *_family(f"{p}_projection_position", "gauge", "Store position each projection has applied up to.",
                 per_projection("checkpoint")),
        *_family(f"{p}_store_position", "gauge", "Highest store position a reader can see.",
                 [({}, max((float(v["last_position"]) for v in projections.values()), default=0.0))]),
        *_family(f"{p}_projection_lag_events", "gauge", "Events in the store a projection has not applied yet.",
                 per_projection("lag")),
        *_family(f"{p}_projection_failed", "gauge", "1 when a projection stopped: its storage fails.",
                 [({"projection": n}, 1.0 if v["failed"] else 0.0) for n, v in sorted(projections.items())]),
        *_family(f"{p}_projection_quarantined_streams", "gauge",
                 "Streams a projection set aside because it cannot apply one of their events.",
                 [({"projection": n}, float(v.get("quarantined", 0))) for n, v in sorted(projections.items())]),
        *_family(f"{p}_bus_published_total", "counter", "Events published on the in-process bus.",
                 [({}, bus.get("published", 0))]),
        *_family(f"{p}_bus_processed_total", "counter", "Bus deliveries handled.", [({}, bus.get("processed", 0))]),
        *_family(f"{p}_bus_failed_total", "counter", "Bus deliveries whose handler raised.",
                 [({}, bus.get("failed", 0))]),
        *_family(f"{p}_bus_queue_size", "gauge", "Events waiting on the bus.", [({}, bus.get("queue_size", 0))]),
        *_family(f"{p}_bus_processing_seconds_total", "counter", "Time spent in bus handlers.",
                 [({}, bus.get("processing_seconds", 0.0))]),
    ]
    store: Mapping[str, Any] = m.get("store", {})
    for key, what in (("commits", "Write transactions the store committed (each a batch of appends)."),
                      ("fsyncs", "fsyncs of the write-ahead log (each covers every commit before it)."),
                      ("checkpoints", "Checkpoints of the write-ahead log into the database file.")):
        if key in store:  # SQLite
            lines += _family(f"{p}_store_{key}_total", "counter", what, [({}, store[key])])
    if "fsync_process" in store:
        lines += _family(f"{p}_store_fsync_process", "gauge", "1 while a helper process fsyncs the write-ahead log; "
                         "0 when a thread of this process does (durability fast, or the helper failed: see the log).",
                         [({}, store["fsync_process"])])
    if "oldest_transaction_seconds" in m:  # PostgreSQL
        lines += _family(f"{p}_db_oldest_transaction_seconds", "gauge",
                         "Age of the oldest in-flight transaction holding an id (projections wait for it).",
                         [({}, float(m["oldest_transaction_seconds"]))])
    return "\n".join(lines) + "\n"
