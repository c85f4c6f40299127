"""`order-machine serve`: the HTTP API with the projections beside it, on uvicorn.

Bootstraps once before listening, so a bad --db or definitions folder fails with one line.
Imports the api package, `config` and the shared CLI helpers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import ipaddress
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from ..bootstrap import Runtime
from ..config import Settings
from ._session import Failed, add_store_options, running, settings_from, shown_url

EPILOG = """\
examples:
  order-machine serve                                  # SQLite file orders.db here, http://127.0.0.1:8000
  order-machine serve --db sqlite:///var/orders.db --host 0.0.0.0 --port 8080 --auth keys
  order-machine serve --db postgresql://app@db/orders --workers 4   # run as many as you like, on any hosts
  order-machine serve --db memory://                   # throwaway: everything is lost at exit

then open http://127.0.0.1:8000/docs, or:
  curl -s -X POST localhost:8000/orders -H 'content-type: application/json' \\
       -d '{"customer_id": "c-1", "items": [{"product_id": "sku-1", "quantity": 1, "unit_price": "9.99"}]}'
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve", help="run the HTTP API (and the projection runner) on uvicorn",
        description="Serve the order API over HTTP. Projections run in the same process, so reads "
                    "follow writes. On PostgreSQL, every serve process and worker on the database shares the "
                    "projection work (leases), and reads still follow each process's own writes. Stop with Ctrl-C.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_store_options(parser)
    parser.add_argument("--host", help="interface to listen on (default: 127.0.0.1); any but a loopback address "
                                       "needs --auth")
    parser.add_argument("--auth", choices=["keys", "none"],
                        help="keys: every route but /health needs `Authorization: Bearer KEY` (order-machine keys "
                             "create); none: anyone may call (default: $ORDER_MACHINE_AUTH, else none on loopback)")
    parser.add_argument("--port", type=int, help="TCP port (default: 8000)")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="worker processes (default: 1); more than one needs a database they share "
                             "(a SQLite file, or PostgreSQL, which also scales across hosts)")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    parser.set_defaults(handler=run, parser=parser)


def run(args: argparse.Namespace) -> int:
    if args.port is not None and not 0 <= args.port <= 65535:
        args.parser.error(f"--port must be from 0 to 65535, got {args.port}")
    if args.workers < 1:
        args.parser.error(f"--workers must be 1 or more, got {args.workers}")
    settings = settings_from(args, host=args.host, port=args.port, auth=args.auth)
    if settings.auth is None and not is_loopback(settings.host):
        args.parser.error(f"--host {settings.host or repr('')} is reachable from other machines: choose --auth keys "
                          "(with a key from `order-machine keys create`) or say --auth none")
    if settings.auth == "keys" and settings.db_url.lower().startswith("memory:"):
        args.parser.error("--auth keys needs the keys in a database (sqlite:///... or postgresql://...): "
                          "memory:// starts with none, so every request would be refused")
    if args.workers > 1:
        if settings.db_url.lower().startswith("memory:"):
            raise Failed("--workers above 1 needs a database the workers share (sqlite:///file.db or "
                         "postgresql://...); memory:// lives inside one process")
        asyncio.run(_check(settings))
        return _serve_workers(settings, args.workers, args.log_level)
    return asyncio.run(_serve(settings, args.log_level))


async def _check(settings: Settings) -> None:
    async with running(settings, start=False) as runtime:
        await _warn_without_keys(settings, runtime)


async def _warn_without_keys(settings: Settings, runtime: Runtime) -> None:
    """With --auth keys and no live key, every request but /health will be refused: say so, and how to fix it."""
    if settings.auth == "keys" and all(k.revoked for k in await runtime.keys.list()):
        print(f"order-machine: warning: no API key on {shown_url(settings.db_url)} yet, so every request but "
              "/health answers 401: order-machine keys create --scope admin --db ...", file=sys.stderr, flush=True)


async def _serve(settings: Settings, log_level: str) -> int:
    import uvicorn

    from ..api import create_app
    from ..bootstrap import tune_gc

    async with running(settings) as runtime:
        await _warn_without_keys(settings, runtime)
        listener = listen(settings.host, settings.port)
        from ._uvicorn import NoDelayH11Protocol

        config = uvicorn.Config(create_app(settings, runtime=runtime), host=settings.host, port=settings.port,
                                log_level=log_level, lifespan="on", server_header=False, http=NoDelayH11Protocol,
                                h11_max_incomplete_event_size=settings.max_header_bytes)
        server = _server_class(lambda: _announce(settings, listener))(config)
        tune_gc(settings.gc_threshold)
        try:
            await server.serve(sockets=[listener])
        except SystemExit:  # uvicorn exits when the app cannot start: it logged why
            raise Failed(f"the server on {settings.host}:{settings.port} could not start "
                         "(see the message above)") from None
        finally:
            listener.close()
    return 0


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port, or Failed with the reason in one line (before any banner)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise Failed(f"cannot listen on {_shown_host(host)}:{port}: {_why_not(exc, host, port)}") from None
    sock.set_inheritable(True)  # the workers of --workers N serve on it
    return sock


def _why_not(exc: OSError, host: str, port: int) -> str:
    if isinstance(exc, socket.gaierror):
        return f"unknown host {host!r}"
    if exc.errno == errno.EADDRINUSE:
        return "the port is already in use (another server?); choose another with --port"
    if exc.errno == errno.EACCES:
        return "permission denied (ports below 1024 need privileges); choose another with --port" \
            if port < 1024 else "permission denied"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"this machine has no address {host}"
    return exc.strerror or str(exc)


def _server_class(announce: Callable[[], None]) -> type[Any]:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, but a stop signal ends serve() normally so the Runtime is stopped in order
        (uvicorn re-raises the signal after shutdown, which would kill the process before that), and the
        banner is printed once the app has started on the listening socket."""

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                announce()

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return Server


def _serve_workers(settings: Settings, workers: int, log_level: str) -> int:
    import uvicorn

    # each worker process builds its own app from the environment (uvicorn --factory)
    os.environ["ORDER_MACHINE_DB_URL"] = settings.db_url
    os.environ["ORDER_MACHINE_DEFINITIONS_DIR"] = str(settings.definitions_dir)
    if settings.auth is not None:
        os.environ["ORDER_MACHINE_AUTH"] = settings.auth
    from ._uvicorn import NoDelayH11Protocol

    listener = listen(settings.host, settings.port)
    # connections queue on the listening socket from here; each worker accepts once its app has started
    _announce(settings, listener, workers)
    try:
        uvicorn.run("order_machine.api.app:app_from_environment", factory=True, fd=listener.fileno(),
                    workers=workers, log_level=log_level, server_header=False, http=NoDelayH11Protocol,
                    h11_max_incomplete_event_size=settings.max_header_bytes)
    finally:
        listener.close()
    return 0


def is_loopback(host: str) -> bool:
    """Whether every address `host` names is a loopback one (a name that does not resolve counts as
    loopback here: listen() then says it is unknown)."""
    if not host.strip():
        return False  # binds every interface
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError):
        return True
    return all(ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in found)


def _shown_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _announce(settings: Settings, listener: socket.socket, workers: int = 1) -> None:
    port = listener.getsockname()[1]  # the one the system chose for --port 0
    extra = f", {workers} workers" if workers > 1 else ""
    extra += ", API keys required" if settings.auth == "keys" else ""
    print(f"order-machine: serving {shown_url(settings.db_url)} on http://{_shown_host(settings.host)}:{port} "
          f"(API docs at /docs{extra}); Ctrl-C stops", file=sys.stderr, flush=True)
