"""uvicorn's HTTP/1.1 protocol with TCP_NODELAY on every connection, for `serve --workers N`.

With several workers, uvicorn binds the listening socket itself as `socket.socket(family)`, whose
protocol number is 0, and asyncio only sets TCP_NODELAY on sockets whose protocol is TCP. Responses
then sat in Nagle's buffer until the client's delayed ACK, about 40 ms: measured here, a bare FastAPI
app did 363 requests/s with `--workers 2` against 4,887 with one worker. `serve` now hands uvicorn its own
listening socket as a file descriptor, which uvicorn labels AF_UNIX: asyncio skips TCP_NODELAY on that too.
Imported only when serving.
"""

from __future__ import annotations

import asyncio
import socket

from uvicorn.protocols.http.h11_impl import H11Protocol


class NoDelayH11Protocol(H11Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        set_nodelay(transport)
        super().connection_made(transport)


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    """TCP_NODELAY on the transport's socket when it is a TCP socket (a no-op otherwise)."""
    sock = transport.get_extra_info("socket")
    # not sock.family: the listener handed to uvicorn as --fd is labelled AF_UNIX whatever it really is
    if sock is not None and sock.type == socket.SOCK_STREAM:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # a Unix socket, or the connection is already gone: uvicorn will notice
            pass
