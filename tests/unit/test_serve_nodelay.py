"""`serve --workers N` sets TCP_NODELAY on each connection itself: uvicorn's own listening socket for
several workers has no protocol number, so asyncio leaves Nagle's algorithm on (40 ms per response)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from contextlib import closing, contextmanager

from order_machine.cli._uvicorn import set_nodelay


class Transport(asyncio.BaseTransport):
    """A transport as uvicorn's connections have them: its socket among its extra information."""

    def __init__(self, sock: socket.socket | None) -> None:
        super().__init__({"socket": sock})


@contextmanager
def accepted_as_uvicorn_workers_accept() -> Iterator[socket.socket]:
    """A connection accepted on a listener made like uvicorn's for several workers: socket(family)."""
    with closing(socket.socket(socket.AF_INET)) as listener:
        assert listener.proto == 0
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with closing(socket.create_connection(listener.getsockname())):
            accepted, _ = listener.accept()
            with closing(accepted):
                yield accepted


def test_a_connection_accepted_on_a_worker_socket_gets_tcp_nodelay() -> None:
    with accepted_as_uvicorn_workers_accept() as accepted:
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0  # what asyncio would leave
        set_nodelay(Transport(accepted))
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_a_transport_without_a_socket_is_left_alone() -> None:
    set_nodelay(Transport(None))  # an in-memory or already closed transport


def test_a_connection_on_a_listener_passed_as_a_file_descriptor_gets_tcp_nodelay() -> None:
    """`serve --workers N` hands uvicorn its socket as --fd, which uvicorn labels AF_UNIX."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with closing(socket.fromfd(listener.fileno(), socket.AF_UNIX, socket.SOCK_STREAM)) as labelled:
            with closing(socket.create_connection(listener.getsockname())):
                accepted, _ = labelled.accept()
                with closing(accepted):
                    assert accepted.family == socket.AF_UNIX  # what asyncio looks at, and skips
                    set_nodelay(Transport(accepted))
                    assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
