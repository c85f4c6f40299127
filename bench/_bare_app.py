"""The framework's ceiling for the HTTP bench: FastAPI routes of the same shape that do nothing.

Served by `python -m bench._bare_app --port N` on uvicorn with the options `order-machine serve` uses.
"""

from __future__ import annotations

import argparse
import itertools

import uvicorn
from fastapi import FastAPI, Response
from pydantic import BaseModel

app = FastAPI()
_ids = itertools.count(1)


class CreateBody(BaseModel):
    customer_id: str
    amount: str | None = None


class Accepted(BaseModel):
    order_id: str
    state: str
    version: int
    events: list[str]


@app.post("/orders", status_code=201, response_model=Accepted)
async def create_order(body: CreateBody, response: Response) -> Accepted:
    order_id = f"ord-{next(_ids)}"
    response.headers["Location"] = f"/orders/{order_id}"
    return Accepted(order_id=order_id, state="Pending", version=1, events=["OrderCreated"])


@app.post("/orders/{order_id}/confirm", response_model=Accepted)
async def confirm_order(order_id: str) -> Accepted:
    return Accepted(order_id=order_id, state="Confirmed", version=2, events=["OrderConfirmed"])


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench._bare_app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", lifespan="on", server_header=False)


if __name__ == "__main__":
    main()
