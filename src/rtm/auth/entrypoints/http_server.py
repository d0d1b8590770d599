"""Serving the HTTP front: uvicorn inside auth's own event loop, next to the gRPC server.

We bind the socket ourselves: a port in use is then an `OSError` at start, not uvicorn's
`sys.exit(1)` from inside a task, and port 0 (tests) tells us the port it got. Signals are the
process's business (`rtm.auth.__main__`), not uvicorn's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator

import uvicorn
from fastapi import FastAPI

from rtm.auth.settings import AuthSettings
from rtm.shared.serving import uvicorn_edge_options

logger = logging.getLogger(__name__)


class _EmbeddedUvicorn(uvicorn.Server):
    """uvicorn inside our event loop: signals are the process's business, not uvicorn's."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class HttpServer:
    """The HTTP app on `settings.host:settings.http_port` (0: any free port, see `port`).

    Args:
        app: the ASGI app (its lifespan is not run: the composition root starts the rest).
        settings: address, proxies and the edge limits.
    """

    def __init__(self, app: FastAPI, settings: AuthSettings) -> None:
        self._app = app
        self._settings = settings
        self._server: _EmbeddedUvicorn | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    async def start(self) -> None:
        """Listen; returns once uvicorn accepts connections (or raises why it cannot)."""
        settings = self._settings
        family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
        # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on sockets that say TCP, and
        # without it every response waits ~40 ms for the client's delayed ACK (Nagle).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((settings.host, settings.http_port))
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            lifespan="off",
            log_config=None,
            access_log=False,
            proxy_headers=bool(settings.trusted_proxies),
            forwarded_allow_ips=settings.trusted_proxies or None,
            timeout_graceful_shutdown=5,
            **uvicorn_edge_options(settings),
        )
        server = self._server = _EmbeddedUvicorn(config)
        task = self._task = asyncio.create_task(server.serve(sockets=[sock]), name="auth-http")
        # uvicorn offers a flag, not an event, for "listening": poll it briefly.
        while not server.started and not task.done():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        if task.done():
            task.result()  # re-raises why it could not start
        logger.info("HTTP listening on %s:%s", settings.host, self.port)

    def begin_shutdown(self) -> None:
        """Stop accepting; in-flight requests go on (up to uvicorn's graceful timeout)."""
        if self._server is not None:
            self._server.should_exit = True

    async def wait_closed(self, timeout: float = 6.0) -> None:
        """Until in-flight requests are answered, or `timeout`; then the server is gone."""
        if self._task is None:
            return
        await asyncio.wait([self._task], timeout=timeout)
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
