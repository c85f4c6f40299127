"""How much a request may send, and how slowly: `RequestLimits`, an ASGI middleware reading each body first.

- Headers longer than `Settings.max_header_bytes` in all answer 431 `headers_too_large`: uvicorn's h11
  limit of the same size bounds only a head that arrives in pieces, not one sent in one packet.
- A body larger than `Settings.max_body_bytes` answers 413 `too_large`, at once when its Content-Length
  says so, else as soon as the bytes read pass the limit.
- A body still incomplete `Settings.body_timeout_seconds` after the request reached the app answers 408
  `body_timeout`: uvicorn's timeouts cover idle keep-alive connections, not a client trickling a body.
Both body answers close the connection, so the rest of the body is never read; otherwise the app gets
the body whole. Starlette's own `max_body_size` answers some 413s in plain text; this keeps the API's
error body. Imports Starlette only.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, body: dict[str, Any]) -> None:
    # the unread rest of the body would otherwise be taken for the next request on the connection
    await JSONResponse(body, status_code=status, headers={"Connection": "close"})(scope, receive, send)


def _declared(scope: Scope) -> tuple[int | None, bool]:
    """(Content-Length, whether the request has a body at all) from the headers."""
    length: int | None = None
    has_body = False
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:  # h11 refuses these before us; an ASGI test client may not
                length = None
            has_body = has_body or length != 0
        elif name == b"transfer-encoding":
            has_body = True
    return length, has_body


class RequestLimits:
    """Refuse long headers; read each request body whole, within `max_bytes` and `timeout` seconds,
    before the app sees it."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float, max_header_bytes: int) -> None:
        self.app, self.max_bytes, self.timeout, self.max_header_bytes = app, max_bytes, timeout, max_header_bytes

    def _too_large(self) -> dict[str, Any]:
        return {"error": "too_large", "max_bytes": self.max_bytes,
                "message": f"the request body is larger than {self.max_bytes} bytes, the most this server takes"}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        head = len(scope.get("raw_path") or b"") + len(scope.get("query_string", b""))
        head += sum(len(name) + len(value) + 4 for name, value in scope.get("headers", ()))  # ": " and CRLF
        if head > self.max_header_bytes:
            await _refuse(scope, receive, send, 431, {
                "error": "headers_too_large", "max_bytes": self.max_header_bytes,
                "message": f"the request's target and headers take {head} bytes; this server takes at most "
                           f"{self.max_header_bytes}"})
            return
        length, has_body = _declared(scope)
        if not has_body:
            await self.app(scope, receive, send)
            return
        if length is not None and length > self.max_bytes:
            await _refuse(scope, receive, send, 413, self._too_large())
            return
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return  # the client left: nobody to answer
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.max_bytes:
                        break
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            await _refuse(scope, receive, send, 408, {
                "error": "body_timeout", "received_bytes": size,
                "message": f"the request body did not arrive within {self.timeout:g}s (it has {size} bytes so far)"})
            return
        if size > self.max_bytes:
            await _refuse(scope, receive, send, 413, self._too_large())
            return
        await self.app(scope, _replay(b"".join(chunks), receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands out the body read, then waits on the connection (for its disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
