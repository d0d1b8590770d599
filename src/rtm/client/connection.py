"""One WebSocket kept open, the way docs/protocol.md asks a client to.

It authenticates with a first `auth` frame, is usable once the server's ready frame comes
(`auth_ok` on the producer, `ready` on the consumer), reconnects with full-jitter backoff as the
close code allows (`rtm.client.closecodes`), refreshes the token first when the server says it
expired, rotates through the instances it was given, and replaces a silent socket (no frame
within `pong_timeout_s` after a ping) instead of waiting minutes for TCP to notice. The client
reacts to `on_open` / `on_down` (resends, resumes). Mirrors clients/js/src/connection.ts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from rtm.client.backoff import Backoff
from rtm.client.closecodes import ABNORMAL_CLOSURE, FLOOD_PAUSE_S, CloseAction, close_action
from rtm.client.errors import RtmError
from rtm.client.events import ConnectionState
from rtm.client.protocol import Frame, auth_frame, ping_frame

logger = logging.getLogger(__name__)

#: Largest frame accepted from a server (a resume of many messages comes one frame each).
MAX_FRAME_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Timing:
    """Keepalive and handshake limits, in seconds.

    Attributes:
        ping_interval_s: ping a socket silent for this long...
        pong_timeout_s: ...and replace it when nothing comes back within this.
        handshake_timeout_s: replace a socket not open and authenticated within this (a frozen
            server accepts nothing and refuses nothing).
    """

    ping_interval_s: float = 15.0
    pong_timeout_s: float = 10.0
    handshake_timeout_s: float = 10.0


class Connection:
    """A named socket (`producer` or `consumer`) over one or more instances' URLs."""

    def __init__(
        self,
        name: str,
        urls: Sequence[str],
        *,
        ready_type: str,
        token: Callable[[], Awaitable[str]],
        refresh: Callable[[], Awaitable[object]],
        on_frame: Callable[[dict[str, Any]], None],
        on_open: Callable[[], Awaitable[None]],
        on_down: Callable[[], None],
        on_state: Callable[[ConnectionState, int | None, str | None], None],
        prepare_url: Callable[[str], str] = lambda url: url,
        backoff: Backoff | None = None,
        timing: Timing | None = None,
    ) -> None:
        if not urls:
            raise ValueError(f"no URL for the {name} socket")
        self.name = name
        self._urls = list(urls)
        self._ready_type = ready_type
        self._token, self._refresh = token, refresh
        self._on_frame, self._on_open, self._on_down = on_frame, on_open, on_down
        self._on_state, self._prepare_url = on_state, prepare_url
        self._backoff = backoff or Backoff()
        self._timing = timing or Timing()
        self._state = ConnectionState.IDLE
        self._socket: ClientConnection | None = None
        self._ready = False
        self._url_index = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def is_open(self) -> bool:
        return self._ready and self._socket is not None

    @property
    def url(self) -> str:
        """The instance the current (or next) socket goes to."""
        return self._urls[self._url_index % len(self._urls)]

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"rtm-client-{self.name}")

    async def send(self, frame: Frame) -> bool:
        """Write a frame if the socket is usable; False otherwise (the caller keeps it)."""
        socket = self._socket
        if not self._ready or socket is None:
            return False
        try:
            await socket.send(json.dumps(frame))
        except ConnectionClosed:
            return False
        return True

    async def reauthenticate(self, token: str) -> None:
        """Give the open socket a refreshed token in-band (no reconnect)."""
        socket = self._socket
        if socket is not None:
            with contextlib.suppress(ConnectionClosed):
                await socket.send(json.dumps(auth_frame(token)))

    async def close(self) -> None:
        """Close for good (code 1000); no reconnect."""
        self._set_state(ConnectionState.CLOSED, None, None)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _closed(self) -> bool:
        return self._state is ConnectionState.CLOSED

    def _set_state(self, state: ConnectionState, code: int | None, reason: str | None) -> None:
        if self._state == state:
            return
        self._state = state
        self._on_state(state, code, reason)

    async def _run(self) -> None:
        attempt = 0
        #: A refresh was made since a socket was last usable: a 4505 now answered a fresh token.
        refreshed = False
        first = True
        while self._state not in (ConnectionState.CLOSED, ConnectionState.FAILED):
            if first:
                self._set_state(ConnectionState.CONNECTING, None, None)
            first = False
            try:
                token = await self._token()
            except RtmError as exc:
                self._set_state(ConnectionState.FAILED, None, f"the session has ended: {exc}")
                return
            try:
                code, reason, was_ready = await self._session(self._prepare_url(self.url), token)
            except Exception:
                # The task's last resort: a bug must not end the connection silently for good.
                # What it was handed can no longer be vouched for: a new socket resumes.
                logger.exception("%s socket: unexpected error; reconnecting", self.name)
                code, reason, was_ready = 1011, "client error", False
            self._url_index += 1
            if was_ready:
                attempt = 0
                refreshed = False
            if self._closed():
                return
            action = close_action(code)
            logger.info("%s socket closed %s %s: %s", self.name, code, reason, action)
            if action is CloseAction.STOP:
                self._set_state(ConnectionState.FAILED, code, reason)
                return
            self._set_state(ConnectionState.RECONNECTING, code, reason)
            if action is CloseAction.REFRESH:
                try:
                    await self._refresh()
                except RtmError as exc:
                    self._set_state(ConnectionState.FAILED, code, f"the session has ended: {exc}")
                    return
                if not refreshed:
                    refreshed = True
                    continue  # the token had expired: reconnect with the new one at once
                # The refreshed token was called expired too (clocks apart, keys rotating): back
                # off as for any failed attempt rather than refresh and connect in a tight loop.
            delay = self._backoff.delay(attempt)
            attempt += 1
            await asyncio.sleep(delay + (FLOOD_PAUSE_S if action is CloseAction.PAUSE else 0))

    async def _session(self, url: str, token: str) -> tuple[int, str, bool]:
        """One socket from opening to closing: its close code and reason, and whether it was
        ever usable."""
        try:
            async with asyncio.timeout(self._timing.handshake_timeout_s):
                socket = await connect(
                    url,
                    open_timeout=None,
                    ping_interval=None,  # the SDK pings itself (below), on every server
                    close_timeout=1,
                    max_size=MAX_FRAME_BYTES,
                    compression=None,
                )
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            return ABNORMAL_CLOSURE, f"could not connect: {exc!r}", False
        self._socket = socket
        try:
            return await self._serve(socket, token)
        except ConnectionClosed as exc:
            closed = exc.rcvd
            was_ready = self._ready
            if closed is None:
                return ABNORMAL_CLOSURE, "no close frame", was_ready
            return closed.code, closed.reason, was_ready
        except TimeoutError:
            return ABNORMAL_CLOSURE, "no answer in time", self._ready
        finally:
            if self._ready:
                self._ready = False
                self._on_down()
            self._socket = None
            socket.transport.abort()  # it may be dead: do not wait for a close handshake

    def _handle(self, frame: dict[str, Any]) -> None:
        """Hand a frame on; one that lacks a field the protocol promises is logged and
        skipped (the servers send well-formed frames; this guards against a newer one)."""
        try:
            self._on_frame(frame)
        except (KeyError, TypeError, ValueError) as exc:
            logger.warning(
                "%s socket: skipped a malformed %r frame: %r", self.name, frame.get("type"), exc
            )

    async def _serve(self, socket: ClientConnection, token: str) -> tuple[int, str, bool]:
        await socket.send(json.dumps(auth_frame(token)))
        async with asyncio.timeout(self._timing.handshake_timeout_s):
            while True:
                frame = _parse(await socket.recv())
                if frame is None:
                    continue
                self._handle(frame)
                if frame.get("type") == self._ready_type:
                    break
        self._ready = True
        self._set_state(ConnectionState.OPEN, None, None)
        await self._on_open()
        timing = self._timing
        while True:
            try:
                raw = await asyncio.wait_for(socket.recv(), timing.ping_interval_s)
            except TimeoutError:
                await socket.send(json.dumps(ping_frame()))
                raw = await asyncio.wait_for(socket.recv(), timing.pong_timeout_s)
            frame = _parse(raw)
            if frame is not None:
                self._handle(frame)


def _parse(raw: str | bytes) -> dict[str, Any] | None:
    """A frame from the server (JSON objects only; anything else is ignored)."""
    try:
        frame = json.loads(raw)
    except ValueError:
        return None
    return frame if isinstance(frame, dict) else None
