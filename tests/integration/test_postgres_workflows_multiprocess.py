"""Several real `order-machine serve` processes on one PostgreSQL schema acting on the same workflow instances
of a YAML-only definition, over 127.0.0.1 (the helpers of test_postgres_multiprocess.py).

Concurrent actions on the same instances through all of them lose no update and write no event twice; the
same Idempotency-Key through two processes at once acts once; of two racing terminal actions exactly one
wins; a read after an action shows it whichever process answers; the workflows view equals the events
(checker) and a rebuild.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from integration.pg_support import pg_url, postgres_store
from integration.test_postgres_multiprocess import Cluster, Server, caught_up, cluster, events_of, http  # noqa: F401 (fixtures)

from order_machine.projections import ConsistencyChecker, ProjectionRunner
from order_machine.projections.postgres import PostgresReadModels

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

BOARD = """\
name: board
version: 1
description: A discussion many people post to at once, until someone closes it.
initial: Open
data:
  title: {type: str, required: true}
states:
  - {name: Open}
  - {name: Closed, terminal: true}
actions:
  - name: Post
    fields:
      text: {type: str, required: true, into: posts, append: true}
    increments: [post_count]
  - name: Close
    fields:
      reason: {type: str, required: true}
transitions:
  - {action: Post, from: Open, to: Open}
  - {action: Close, from: Open, to: Closed}
"""


async def read(schema: str, query: str) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(pg_url()) as conn:
        cur = await conn.execute(query.replace("{s}", f'"{schema}"'))
        return await cur.fetchall()


async def test_concurrent_actions_on_the_same_instances_through_three_serve_processes_lose_nothing_and_apply_once(
        cluster: Cluster, http: httpx.AsyncClient, tmp_path: Path) -> None:
    definitions = tmp_path / "definitions"
    definitions.mkdir()
    (definitions / "board.yaml").write_text(BOARD)
    first = cluster.start(definitions=definitions)
    await first.up(http)
    second = cluster.start(workers=2, definitions=definitions)  # `serve --workers 2`: three processes in all
    await second.up(http)
    servers = [first, second]
    boards = ["b-1", "b-2", "b-3"]
    for n, board in enumerate(boards):
        answer = await http.post(f"{servers[n % 2].url}/workflows/board", json={"id": board,
                                                                               "data": {"title": f"board {n}"}})
        assert answer.status_code == 201, answer.text

    accepted: dict[str, set[str]] = {b: set() for b in boards}
    stale_reads: list[str] = []
    replayed: list[str] = []
    outcomes: list[tuple[str, int, str]] = []
    gate = asyncio.Semaphore(12)
    b3_busy = asyncio.Event()  # set once b-3 has taken some posts: the closes race the rest of them

    async def post(k: int, board: str, through: Server, key: str) -> None:
        text = f"post-{k}"
        async with gate:
            answer = await http.post(f"{through.url}/workflows/board/{board}/actions/post", json={"text": text},
                                     headers={"Idempotency-Key": key})
            outcomes.append((board, answer.status_code, answer.json().get("error", "")))
            if answer.status_code != 200:
                return
            accepted[board].add(text)
            if len(accepted["b-3"]) >= 8:
                b3_busy.set()
            if answer.headers.get("Idempotent-Replayed") == "true":
                replayed.append(key)
            for reader in (through, servers[(servers.index(through) + 1) % len(servers)]):
                shown = (await http.get(f"{reader.url}/workflows/board/{board}")).json()
                if text not in shown["data"]["posts"]:
                    stale_reads.append(f"{text} missing from {board} read on {reader.url} after 200 from "
                                       f"{through.url}")

    async def close(board: str, through: Server) -> None:
        await b3_busy.wait()
        answer = await http.post(f"{through.url}/workflows/board/{board}/actions/close", json={"reason": "race"})
        outcomes.append((board, answer.status_code, answer.json().get("error", "close")))
        assert answer.status_code in (200, 409), answer.text

    tasks = []
    for k in range(90):
        board, through = boards[k % 3], servers[(k // 3) % 2]
        tasks.append(post(k, board, through, f"post-{k}"))
        if k % 10 == 0:  # the same request, same key, at the same time through the other process
            tasks.append(post(k, board, servers[(k // 3 + 1) % 2], f"post-{k}"))
    # two closes race each other (and the posts) on b-3: one wins, the other is refused
    tasks += [close("b-3", first), close("b-3", second)]
    async with asyncio.timeout(30):
        await asyncio.gather(*tasks)

    assert stale_reads == [], cluster.logs()
    # a conflict that outlasts the retries is an honest 409; on b-3, posts after the close are refused
    assert {(status, error) for b, status, error in outcomes if b != "b-3"} <= {(200, ""), (409, "version_conflict")}
    assert {(status, error) for b, status, error in outcomes if b == "b-3"} <= {
        (200, ""), (200, "close"), (409, "transition_not_allowed"), (409, "version_conflict")}
    assert len(set(replayed)) == len(replayed), replayed  # the same key twice: at most one replay each
    assert [o for o in outcomes if o[1:] == (200, "close")] == [("b-3", 200, "close")], "exactly one close wins"
    assert min(len(accepted["b-1"]), len(accepted["b-2"])) >= 24, outcomes  # retries absorb nearly every race

    streams = await events_of(cluster.schema)
    for board in boards:
        events = streams[f"board/{board}"]
        assert [e[0] for e in events] == list(range(1, len(events) + 1)), f"{board}: versions not dense"
        posted = [e[2]["data"]["text"] for e in events if e[1] == "WorkflowTransitioned" and e[2]["action"] == "Post"]
        assert len(posted) == len(set(posted)), f"{board}: a post was written twice"
        assert set(posted) == accepted[board], f"{board}: a 200 without its event, or an event without a 200"
        command_ids = [e[3]["command_id"] for e in events if e[3].get("command_id")]
        assert len(command_ids) == len(set(command_ids)), f"{board}: one command id wrote twice"
    actions = [e[2].get("action") for e in streams["board/b-3"]]
    assert actions.count("Close") == 1 and actions[-1] == "Close", actions

    await caught_up(first, http)
    for board in boards:
        shown = (await http.get(f"{second.url}/workflows/board/{board}")).json()
        events = streams[f"board/{board}"]
        in_order = [e[2]["data"]["text"] for e in events if e[2].get("action") == "Post"]
        assert (shown["version"], shown["data"]["posts"], shown["data"]["post_count"]) == (
            len(events), in_order, len(in_order))
    assert (await http.get(f"{first.url}/workflows/board/b-3")).json()["state"] == "Closed"

    for server in servers:
        assert server.stop() == 0, cluster.logs()
    assert "Traceback" not in cluster.logs(), cluster.logs()
    async with postgres_store(schema=cluster.schema) as store:
        models = PostgresReadModels(store)
        runner = ProjectionRunner(store, models)
        # the last event's position, not the store's last_position(): that stays behind while any transaction
        # on the server (another test's) is in flight, and a wait for it would end too early
        last = (await read(cluster.schema, "SELECT max(position) FROM {s}.events"))[0][0]
        assert await runner.wait_for(last, timeout=30)
        projected = await read(cluster.schema, "SELECT * FROM {s}.read_workflows ORDER BY stream_id")
        assert [row[0] for row in projected] == [f"board/{b}" for b in boards]
        report = await ConsistencyChecker(store, models).check_all()
        assert (report.checked, report.workflows, report.mismatched) == (3, 3, ())
        await runner.rebuild()
        assert await runner.wait_for(last, timeout=30)
    assert await read(cluster.schema, "SELECT * FROM {s}.read_workflows ORDER BY stream_id") == projected
