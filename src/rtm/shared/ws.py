"""WebSocket plumbing both producer and consumer use: close codes, the authentication handshake
and a bounded outbound queue (docs/protocol.md, "3. Authentication", "8. WebSocket close codes").

The handshake accepts either `Authorization: Bearer` on the upgrade request or, for browsers, a
first frame `{"type":"auth","token":...}` within `timeout` seconds. Each connection has an id,
logged as `conn` on every line logged while it is served (`bind_connection_log_context`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from enum import IntEnum
from typing import Any, Protocol, runtime_checkable

import orjson
from starlette.websockets import WebSocketDisconnect

from rtm.shared.errors import RtmError
from rtm.shared.frames import parse_frame
from rtm.shared.logging import bind_log_context, correlation_id
from rtm.shared.tokens import AccessClaims, TokenError, TokenExpired, TokenVerifier

logger = logging.getLogger(__name__)


class CloseCode(IntEnum):
    """WebSocket close codes of docs/protocol.md, "8. WebSocket close codes"."""

    NORMAL = 1000
    GOING_AWAY = 1001
    UNSUPPORTED_DATA = 1003
    INVALID_UTF8 = 1007
    POLICY = 1008
    TOO_BIG = 1009
    INTERNAL = 1011
    RESTARTING = 1012
    SLOW_CONSUMER = 4008
    FLOOD = 4013
    INVALID_TOKEN = 4500
    PROTOCOL_ERRORS = 4501
    AUTH_TIMEOUT = 4502
    SESSION_REVOKED = 4503
    TOO_MANY_CONNECTIONS = 4504
    TOKEN_EXPIRED = 4505


class ServerSocket(Protocol):
    """The part of Starlette's `WebSocket` the endpoints use;
    `rtm.shared.picows_server.PicowsSocket` offers the same over picows."""

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def query_params(self) -> Mapping[str, str]: ...

    @property
    def app(self) -> Any: ...

    async def accept(self) -> None: ...

    async def receive(self) -> Mapping[str, Any]: ...

    async def receive_text(self) -> str: ...

    async def send_text(self, data: str) -> None: ...

    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


@runtime_checkable
class DirectSocket(Protocol):
    """A socket that can write a text frame (its UTF-8 bytes) synchronously and tell how much
    it still buffers."""

    def send_now(self, data: bytes) -> bool: ...

    def buffered_bytes(self) -> int: ...


class HandshakeFailed(Exception):
    """The connection must be closed with `code` before it is authenticated."""

    def __init__(self, code: CloseCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def bind_connection_log_context(websocket: ServerSocket) -> str:
    """Called first in the task that serves a connection (its own context): every line logged
    from then on, by it and by the tasks it starts, carries `conn`, the upgrade request's sane
    `X-Request-Id` or a fresh id; returns it. Bound rather than a `with` block: the context
    ends with the task, and an idle connection does not hold two suspended generators."""
    conn = correlation_id(websocket.headers.get("x-request-id"))
    bind_log_context(conn=conn)
    return conn


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def close_code_for(error: TokenError) -> CloseCode:
    return CloseCode.TOKEN_EXPIRED if isinstance(error, TokenExpired) else CloseCode.INVALID_TOKEN


def origin_allowed(origin: str | None, allowed: list[str]) -> bool:
    """Browsers send Origin; non-browser clients usually do not, and are not refused for it."""
    return origin is None or "*" in allowed or origin in allowed


async def authenticate(
    websocket: ServerSocket,
    verifier: TokenVerifier,
    timeout: float,
    revoked: Callable[[uuid.UUID], bool] = lambda _: False,
) -> AccessClaims:
    """Authenticate an accepted WebSocket; raises `HandshakeFailed` with the close code to use.

    A token of a session in `revoked` is refused with 4503 before any `auth_ok` is sent."""
    token = bearer_token(websocket.headers.get("authorization"))
    if token is not None:
        try:
            return _unless_revoked(await verifier.verify(token), revoked)
        except TokenError as exc:
            raise HandshakeFailed(close_code_for(exc), exc.message) from exc
    try:
        text = await asyncio.wait_for(websocket.receive_text(), timeout)
    except TimeoutError as exc:
        raise HandshakeFailed(CloseCode.AUTH_TIMEOUT, "no auth frame in time") from exc
    except KeyError as exc:  # a binary frame: receive_text finds no "text"
        raise HandshakeFailed(CloseCode.INVALID_TOKEN, "expected an auth frame") from exc
    try:
        kind, frame = parse_frame(text, {"auth"})
    except RtmError as exc:
        raise HandshakeFailed(CloseCode.INVALID_TOKEN, "expected an auth frame") from exc
    token = frame.get("token")
    if kind != "auth" or not isinstance(token, str):
        raise HandshakeFailed(CloseCode.INVALID_TOKEN, "expected an auth frame")
    try:
        claims = _unless_revoked(await verifier.verify(token), revoked)
    except TokenError as exc:
        raise HandshakeFailed(close_code_for(exc), exc.message) from exc
    await websocket.send_text(auth_ok(claims))
    return claims


def _unless_revoked(claims: AccessClaims, revoked: Callable[[uuid.UUID], bool]) -> AccessClaims:
    if revoked(claims.session_id):
        raise HandshakeFailed(CloseCode.SESSION_REVOKED, "session revoked")
    return claims


def auth_ok(claims: AccessClaims) -> str:
    return orjson.dumps({"type": "auth_ok", "exp": int(claims.expires_at.timestamp())}).decode()


_NO_QUEUE: deque[str] = deque(maxlen=0)


class Outbox:
    """A per-connection send queue bounded in bytes, drained by one writer task.

    A slow reader must never slow others: `put` never waits, and returns False once more than
    `limit_bytes` (UTF-8 bytes, as sent) are queued, so the caller closes the connection (4008)
    instead of buffering. A frame's size costs nothing for ASCII text (`str.isascii` reads a
    flag CPython keeps); other text is encoded once more to measure it, except on a
    `DirectSocket`, which is given the bytes measured.

    On a `DirectSocket` (picows) `put` writes at once, with no task switch, and the queue is the
    socket's own write buffer: the limit applies to it.
    """

    __slots__ = (
        "_closed",
        "_direct",
        "_limit",
        "_queue",
        "_queued_bytes",
        "_wakeup",
        "_websocket",
        "overflowed",
    )

    def __init__(self, websocket: ServerSocket, limit_bytes: int) -> None:
        self._websocket = websocket
        self._direct = websocket if isinstance(websocket, DirectSocket) else None
        self._limit = limit_bytes
        # A direct outbox needs neither (and every idle connection would pay for them).
        self._queue: deque[str] = _NO_QUEUE if self._direct is not None else deque()
        self._wakeup: asyncio.Event | None = None
        self._queued_bytes = 0
        self._closed = False
        self.overflowed = False

    @property
    def direct(self) -> bool:
        """Writes go straight to the socket: no writer task is needed."""
        return self._direct is not None

    def put(self, frame: str | bytes) -> bool:
        """Queue a text frame, given as text or as its UTF-8 bytes (a message written to many
        sockets is encoded once, by its caller)."""
        if self._closed:
            return False
        if self._direct is not None:
            data = frame if isinstance(frame, bytes) else frame.encode()
            if self._direct.buffered_bytes() + len(data) > self._limit:
                return self._overflow()
            if not self._direct.send_now(data):
                self.close()
                return False
            return True
        if isinstance(frame, bytes):
            frame = frame.decode()
        size = _utf8_size(frame)
        if self._queued_bytes + size > self._limit:
            return self._overflow()
        self._queue.append(frame)
        self._queued_bytes += size
        self._wake()
        return True

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()

    def _overflow(self) -> bool:
        self.overflowed = True
        self._closed = True
        self._wake()
        return False

    def close(self) -> None:
        self._closed = True
        self._wake()

    async def run(self) -> None:
        """Send queued frames until closed; returns when the socket goes away."""
        wakeup = self._wakeup = asyncio.Event()
        try:
            while True:
                while self._queue and not self.overflowed:
                    frame = self._queue.popleft()
                    self._queued_bytes -= _utf8_size(frame)
                    await self._websocket.send_text(frame)
                if self._closed:
                    return
                wakeup.clear()
                await wakeup.wait()
        except (WebSocketDisconnect, RuntimeError, OSError):
            return


def _utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())


async def close_quietly(websocket: ServerSocket, code: int, reason: str = "") -> None:
    """Close, ignoring a peer that is already gone."""
    with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
        await websocket.close(code=code, reason=reason[:120])
