"""uvicorn's HTTP/1.1 protocol with TCP_NODELAY on every connection, for `serve --workers N`.

With several workers, uvicorn binds the listening socket itself as `socket.socket(family)`, whose
protocol number is 0, and asyncio only sets TCP_NODELAY on sockets whose protocol is TCP. Responses
then sat in Nagle's buffer until the client's delayed ACK, about 40 ms: measured here, a bare FastAPI
app did 363 requests/s with `--workers 2` against 4,887 with one worker. `serve` now hands uvicorn its own
listening socket as a file descriptor, which uvicorn labels AF_UNIX: asyncio skips TCP_NODELAY on that too.

It also gives each request's head (request line and headers) a deadline, `Settings.header_timeout_seconds`
from the moment the connection opens or the head's first byte arrives: uvicorn times out only a
connection idle after a response, and its timer stops at the first byte, so a client sending nothing, or
its headers a byte at a time, held a connection (and a file descriptor) for as long as it liked. A late
head cannot be answered (h11 has no request to answer yet): the connection is closed.
Imported only when serving.
"""

from __future__ import annotations

import asyncio
import functools
import socket

from uvicorn.protocols.http.h11_impl import H11Protocol


@functools.cache
def head_timeout() -> float:
    """Settings.header_timeout_seconds of this process (each worker of --workers N reads its environment)."""
    from ..config import Settings

    return Settings().header_timeout_seconds


class NoDelayH11Protocol(H11Protocol):
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        set_nodelay(transport)
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        if self._head_timer is None and self._awaiting_head():
            self._arm_head_timer()  # the first byte of the next request on a kept-alive connection
        super().data_received(data)
        if not self._awaiting_head():
            self._disarm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def _awaiting_head(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self.loop.call_later(head_timeout(), self._head_too_slow)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._awaiting_head() and not self.transport.is_closing():
            self.transport.close()


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    """TCP_NODELAY on the transport's socket when it is a TCP socket (a no-op otherwise)."""
    sock = transport.get_extra_info("socket")
    # not sock.family: the listener handed to uvicorn as --fd is labelled AF_UNIX whatever it really is
    if sock is not None and sock.type == socket.SOCK_STREAM:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # a Unix socket, or the connection is already gone: uvicorn will notice
            pass
