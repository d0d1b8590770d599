"""The consumer WebSocket `/v1/ws`: live events and `resume` (PROTOCOL.md §6)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid

import orjson
from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from rtm.consumer.domain.exceptions import ConversationNotVisible
from rtm.consumer.entrypoints import metrics
from rtm.consumer.entrypoints.hub import Hub, LiveConnection
from rtm.consumer.entrypoints.schemas import (
    AuthFrame,
    PingFrame,
    ResumeFrame,
    error_frame,
    presence_frame,
    ready_frame,
    resumed_entry,
    resumed_frame,
)
from rtm.consumer.services import ReadService
from rtm.consumer.settings import ConsumerSettings
from rtm.shared.clock import utcnow
from rtm.shared.errors import ErrorCode, RtmError
from rtm.shared.frames import PONG, parse_frame, validate_frame
from rtm.shared.tokens import AccessClaims, TokenError, TokenVerifier
from rtm.shared.ws import (
    CloseCode,
    HandshakeFailed,
    Outbox,
    auth_ok,
    authenticate,
    close_code_for,
    close_quietly,
    connection_log_context,
    origin_allowed,
)

logger = logging.getLogger(__name__)
router = APIRouter()

FRAME_TYPES = {"auth", "ping", "resume"}
PROTOCOL_ERROR_LIMIT = 10
PROTOCOL_ERROR_WINDOW_S = 60.0


class ConsumerSession:
    """One connection's lifetime after the handshake."""

    def __init__(
        self,
        websocket: WebSocket,
        claims: AccessClaims,
        hub: Hub,
        reads: ReadService,
        verifier: TokenVerifier,
        settings: ConsumerSettings,
    ) -> None:
        self.websocket = websocket
        self.claims = claims
        self.hub = hub
        self.reads = reads
        self.verifier = verifier
        self.settings = settings
        self.outbox = Outbox(websocket, settings.send_queue_bytes)
        self.closing: tuple[int, str] | None = None
        self.closed = asyncio.Event()
        self.errors: list[float] = []
        self.connection = LiveConnection(
            claims.user_id, claims.session_id, self.outbox, reads, self.request_close
        )
        if settings.resume_grace_s <= 0:
            self.connection.end_hold()

    def request_close(self, code: int, reason: str) -> None:
        """Close from anywhere (hub, overflow, revocation) without awaiting."""
        if self.closing is None:
            metrics.WS_CLOSES.labels(str(code)).inc()
            self.closing = (code, reason)
            self.outbox.close()
            self.closed.set()

    async def run(self) -> None:
        metrics.WS_CONNECTIONS.inc()
        self.hub.add(self.connection)
        writer = asyncio.create_task(self.outbox.run())
        reader = asyncio.create_task(self._read_loop())
        expiry = asyncio.create_task(self._expire())
        hold = asyncio.create_task(self._end_hold_after(self.settings.resume_grace_s))
        try:
            self.connection.push(
                orjson.dumps(ready_frame(self.claims.user_id, utcnow())).decode(), "ready"
            )
            presence = asyncio.create_task(self._send_presence())
            closer = asyncio.create_task(self.closed.wait())
            await asyncio.wait({reader, writer, closer}, return_when=asyncio.FIRST_COMPLETED)
            closer.cancel()
        finally:
            metrics.WS_CONNECTIONS.dec()
            self.hub.remove(self.connection)
            self.connection.cancel()
            for task in (reader, expiry, presence, hold):
                task.cancel()
            if self.closing is not None:
                if not self.outbox.overflowed:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(writer, 1.0)
                await close_quietly(self.websocket, *self.closing)
            writer.cancel()

    async def _send_presence(self) -> None:
        """Tell a new connection which of its contacts are online right now."""
        events = self.websocket.app.state.events
        if events is None:
            return
        for contact in await events.online_contacts(self.claims.user_id):
            self.connection.push(
                orjson.dumps(presence_frame(contact, "online")).decode(), "presence"
            )

    async def _end_hold_after(self, grace: float) -> None:
        """Live messages wait for the client's first `resume`, but no longer than `grace`."""
        await asyncio.sleep(grace)
        self.connection.end_hold()

    async def _expire(self) -> None:
        while True:
            delay = self.claims.expires_at.timestamp() - time.time()
            if delay <= 0:
                self.request_close(CloseCode.TOKEN_EXPIRED, "token expired: refresh and reconnect")
                return
            await asyncio.sleep(min(delay, 60.0))

    async def _read_loop(self) -> None:
        while True:
            try:
                message = await self.websocket.receive()
            except (WebSocketDisconnect, RuntimeError):
                return
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                self._protocol_error(
                    RtmError(
                        ErrorCode.INVALID_MESSAGE, "binary frames are not supported; send JSON text"
                    )
                )
                continue
            try:
                await self._handle(text)
            except RtmError as error:
                self._protocol_error(error)

    def _protocol_error(self, error: RtmError, ref: str | None = None) -> None:
        now = time.monotonic()
        self.errors = [t for t in self.errors if now - t < PROTOCOL_ERROR_WINDOW_S] + [now]
        metrics.ERRORS.labels(error.code.value).inc()
        self.connection.push(error_frame(error, ref), "error")
        if len(self.errors) >= PROTOCOL_ERROR_LIMIT:
            self.request_close(CloseCode.PROTOCOL_ERRORS, "too many protocol errors")

    async def _handle(self, text: str) -> None:
        kind, obj = parse_frame(text, FRAME_TYPES)
        metrics.FRAMES_IN.labels(kind).inc()
        if kind == "ping":
            validate_frame(PingFrame, obj)
            self.connection.push(PONG, "pong")
        elif kind == "auth":
            frame = validate_frame(AuthFrame, obj)
            try:
                claims = await self.verifier.verify(frame.token)
            except TokenError as exc:
                self.request_close(close_code_for(exc), exc.message)
                return
            if claims.user_id != self.claims.user_id:
                self.request_close(CloseCode.INVALID_TOKEN, "token is for another user")
                return
            if self.websocket.app.state.revoked.is_revoked(claims.session_id):
                self.request_close(CloseCode.SESSION_REVOKED, "session revoked")
                return
            self.claims = claims
            self.connection.push(auth_ok(claims), "auth_ok")
        else:
            await self._resume(validate_frame(ResumeFrame, obj))

    async def _resume(self, frame: ResumeFrame) -> None:
        report: dict[str, dict[str, object]] = {}
        recovered: list[tuple[uuid.UUID, bool]] = []
        for conversation_id, cursor in frame.cursors.items():
            if cursor < 0:
                raise RtmError(
                    ErrorCode.VALIDATION_FAILED,
                    "cursors must be >= 0",
                    field=f"cursors.{conversation_id}",
                )
            try:
                recovery = await self.connection.catch_up(conversation_id, cursor)
            except ConversationNotVisible:
                report[str(conversation_id)] = resumed_entry(
                    cursor, False, error=ErrorCode.FORBIDDEN
                )
                continue
            recovered.append((conversation_id, recovery.recovered))
        # `last_seq`: what the connection has been sent by now, as live messages of the
        # conversations resumed first kept flowing while the later ones were read.
        for conversation_id, done in recovered:
            last = max(self.connection.last_sent(conversation_id), frame.cursors[conversation_id])
            report[str(conversation_id)] = resumed_entry(last, done)
        self.connection.push(orjson.dumps(resumed_frame(report)).decode(), "resumed")
        self.connection.end_hold()


@router.websocket("/v1/ws")
async def consumer_socket(websocket: WebSocket) -> None:
    """Live events and `resume` (PROTOCOL.md §6)."""
    with connection_log_context(websocket):
        await _serve(websocket)


async def _serve(websocket: WebSocket) -> None:
    state = websocket.app.state
    settings: ConsumerSettings = state.settings
    hub: Hub = state.hub
    await websocket.accept()
    if not origin_allowed(websocket.headers.get("origin"), settings.allowed_origins):
        # accepted first so the browser sees close code 1008, not a bare HTTP 403
        await close_quietly(websocket, CloseCode.POLICY, "origin not allowed")
        return
    try:
        claims = await authenticate(
            websocket, state.verifier, settings.auth_timeout_s, revoked=state.revoked.is_revoked
        )
    except HandshakeFailed as failed:
        await close_quietly(websocket, failed.code, failed.reason)
        return
    except (WebSocketDisconnect, RuntimeError):
        return
    except RtmError as error:  # JWKS unavailable
        await close_quietly(websocket, CloseCode.INTERNAL, error.message)
        return
    if hub.count_for(claims.user_id) >= settings.max_connections_per_user:
        await close_quietly(websocket, CloseCode.TOO_MANY_CONNECTIONS, "too many connections")
        return
    session = ConsumerSession(websocket, claims, hub, state.reads, state.verifier, settings)
    await session.run()
