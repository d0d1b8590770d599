"""`ProducerConnection`: one producer `/v1/ws` connection (docs/protocol.md, "5. Producer", "8.
WebSocket close codes"), from the handshake to the close. The route and picows's protocol for it
are `rtm.producer.entrypoints.ws`.

One `ProducerConnection` per socket, with these tasks:

    reader      parses each frame, applies the limits, dispatches it (never blocks on a send:
                a send goes to the connection's `SendPipeline`, which runs
                `MessageService.send` for it: checked, published to JetStream in order,
                PubAck awaited)
    answerer    writes each send's ack (or error) as the pipeline yields it, in send order
                (`rtm.producer.entrypoints.ws_answerer.SendAnswerer`)
    writer      drains the bounded outbox (a slow reader is closed 4008, never buffered); only
                under a plain ASGI server: on picows the outbox writes at once

and no task of its own for the token's expiry: the server's one `TokenExpiry` timer closes it
4505 then (an `auth` frame pushes that back).

A bad frame gets an error frame and the connection stays open; only the close codes of §8 end
it: 4501 after too many protocol errors, 4013 for a sustained flood, 4503 on revocation, 4505 on
expiry, 1012 on shutdown (after in-flight sends are acked). Frames over the size limit (1009)
and invalid UTF-8 (1007) are closed by the WebSocket layer (picows, or uvicorn's) itself.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from typing import Any

import orjson
from starlette.websockets import WebSocketDisconnect

from rtm.producer.domain.exceptions import TooManyInFlight
from rtm.producer.domain.rules import validate_read_seq
from rtm.producer.entrypoints.deps import ProducerContext
from rtm.producer.entrypoints.metrics import (
    ERRORS,
    FRAMES_IN_BY_TYPE,
    FRAMES_OUT,
    FRAMES_OUT_BY_TYPE,
    FRAMES_REFUSED,
    IN_FLIGHT_REFUSED,
    PER_TURN,
    RATE_LIMITED,
    WS_CLOSES,
    WS_CONNECTIONS,
)
from rtm.producer.entrypoints.schemas import (
    AuthFrame,
    PingFrame,
    ReadFrame,
    SendFrame,
    TypingFrame,
    error_frame,
    read_ok,
    send_command,
)
from rtm.producer.entrypoints.ws_answerer import SendAnswerer
from rtm.producer.services import SendPipeline, internal_error
from rtm.shared.errors import ErrorCode, RtmError
from rtm.shared.frames import PONG, parse_frame, validate_frame
from rtm.shared.tokens import AccessClaims, TokenError
from rtm.shared.ws import (
    CloseCode,
    HandshakeFailed,
    Outbox,
    ServerSocket,
    auth_ok,
    authenticate,
    close_quietly,
    origin_allowed,
)

FRAME_TYPES = frozenset({"send", "typing", "read", "auth", "ping"})
# Errors that say the client speaks the protocol wrong; 10 of them in 60 s close 4501.
PROTOCOL_ERRORS = frozenset(
    {
        ErrorCode.INVALID_JSON,
        ErrorCode.INVALID_MESSAGE,
        ErrorCode.UNKNOWN_TYPE,
        ErrorCode.VALIDATION_FAILED,
    }
)
_FLUSH_TIMEOUT = 2.0


def _ref_of(kind: str, frame: dict[str, Any]) -> str | None:
    """The `ref` of errors about a frame: a send's client_msg_id as the client wrote it."""
    ref = frame.get("client_msg_id") if kind == "send" else None
    return ref[:100] if isinstance(ref, str) else None


class ProducerConnection:
    """One authenticated producer WebSocket (see the module docstring)."""

    def __init__(self, websocket: ServerSocket, context: ProducerContext) -> None:
        self._ws = websocket
        self._ctx = context
        settings = context.settings
        self._limits = settings.inbound_limits(context.monotonic)
        self._outbox = Outbox(websocket, settings.send_queue_bytes)
        self._pipeline = SendPipeline(context.messages, max_in_flight=settings.max_in_flight)
        self._answerer = SendAnswerer(self._pipeline, context, self._emit, self._error)
        self._close: tuple[CloseCode, str] | None = None
        self._closing = asyncio.Event()
        self._side_tasks: set[asyncio.Task[None]] = set()
        self.user_id = uuid.UUID(int=0)
        self.session_id = uuid.UUID(int=0)
        self._claims: AccessClaims | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def serve(self) -> None:
        await self._ws.accept()
        settings = self._ctx.settings
        if not origin_allowed(self._ws.headers.get("origin"), settings.allowed_origins):
            await self._end(CloseCode.POLICY, "origin not allowed")
            return
        try:
            claims = await authenticate(
                self._ws,
                self._ctx.verifier,
                settings.auth_timeout_s,
                revoked=self._ctx.revoked.is_revoked,
            )
        except HandshakeFailed as exc:
            await self._end(exc.code, exc.reason)
            return
        except WebSocketDisconnect:
            return
        except RtmError as exc:  # JWKS unreachable: we cannot tell good tokens from bad now
            await self._end(CloseCode.INTERNAL, exc.message)
            return
        self._adopt(claims)
        registry = self._ctx.connections
        if not registry.add(self):
            if registry.closing:
                await self._end(CloseCode.RESTARTING, "service restarting")
            else:
                await self._end(CloseCode.TOO_MANY_CONNECTIONS, "too many connections")
            return
        WS_CONNECTIONS.inc()
        try:
            await self._run()
        finally:
            registry.remove(self)
            WS_CONNECTIONS.dec()

    async def _end(self, code: CloseCode, reason: str) -> None:
        WS_CLOSES.labels(code=str(int(code))).inc()
        await close_quietly(self._ws, code, reason)

    def request_close(self, code: CloseCode, reason: str) -> None:
        """Ask the connection to close with `code`; the first request wins."""
        if self._close is None:
            self._close = (code, reason)
            self._closing.set()

    def _adopt(self, claims: AccessClaims) -> None:
        self._claims = claims
        self.user_id = claims.user_id
        self.session_id = claims.session_id

    async def _run(self) -> None:
        answerer = asyncio.create_task(self._answerer.run(), name="ws-answerer")
        # A direct (picows) outbox writes from `put`; only the ASGI one needs its writer task.
        writer = (
            None
            if self._outbox.direct
            else asyncio.create_task(self._outbox.run(), name="ws-writer")
        )
        reader = asyncio.create_task(self._read(), name="ws-reader")
        self._ctx.expiry.watch(self)
        closing = asyncio.create_task(self._closing.wait(), name="ws-closing")
        peer_gone = False
        try:
            ends = {reader, closing} if writer is None else {reader, writer, closing}
            await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
            if reader.done() and not reader.cancelled() and reader.exception() is not None:
                error = reader.exception()
                assert error is not None
                internal_error(error, "reading a WebSocket")
                self.request_close(CloseCode.INTERNAL, "internal error")
            if self._outbox.overflowed:
                self.request_close(CloseCode.SLOW_CONSUMER, "slow consumer")
            peer_gone = self._close is None
        finally:
            self._ctx.expiry.forget(self)
            for task in (reader, closing):
                task.cancel()
            await asyncio.gather(reader, closing, return_exceptions=True)
            await self._finish(writer, answerer, peer_gone)

    async def _finish(
        self, writer: asyncio.Task[None] | None, answerer: asyncio.Task[None], peer_gone: bool
    ) -> None:
        code, reason = self._close or (CloseCode.NORMAL, "")
        if code is CloseCode.RESTARTING and not peer_gone:
            # Graceful shutdown: nothing new is read; ack what was already sent to us.
            await self._pipeline.drain(self._ctx.settings.shutdown_timeout_s)
        await self._pipeline.close()
        answerer.cancel()
        await asyncio.gather(answerer, return_exceptions=True)
        for task in list(self._side_tasks):
            task.cancel()
        await asyncio.gather(*self._side_tasks, return_exceptions=True)
        self._outbox.close()
        if writer is not None:
            # What is queued goes out before the close frame (a direct outbox wrote it already:
            # picows sends the close frame behind it, and lingers for the peer to take it).
            if peer_gone or code is CloseCode.SLOW_CONSUMER:
                writer.cancel()
            flushed, _ = await asyncio.wait({writer}, timeout=_FLUSH_TIMEOUT)
            if not flushed:
                writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
        if not peer_gone:
            await self._end(code, reason)

    def token_expires_at(self) -> float:
        """When the connection's token expires (`TokenExpiry`); an `auth` frame pushes it back."""
        assert self._claims is not None  # watched once authenticated
        return self._claims.expires_at.timestamp()

    def token_expired(self) -> None:
        """Called by the server's `TokenExpiry` once `token_expires_at` has passed."""
        self.request_close(CloseCode.TOKEN_EXPIRED, "token expired")

    # -- inbound ---------------------------------------------------------------------------

    async def _read(self) -> None:
        while True:
            try:
                message = await self._ws.receive()
            except WebSocketDisconnect:
                return
            if message["type"] == "websocket.disconnect":
                return
            received = self._ctx.monotonic()
            text = message.get("text")
            if text is None:
                PER_TURN.inc(FRAMES_IN_BY_TYPE["binary"])
                if not self._limited(None):
                    self._protocol_error(
                        RtmError(ErrorCode.INVALID_MESSAGE, "binary frames are not supported"),
                        None,
                    )
                continue
            await self._on_text(text, received)

    async def _on_text(self, text: str, received: float) -> None:
        try:
            kind, frame = parse_frame(text, FRAME_TYPES)
        except RtmError as exc:
            PER_TURN.inc(FRAMES_IN_BY_TYPE["invalid"])
            if not self._limited(None):
                self._protocol_error(exc, None)
            return
        PER_TURN.inc(FRAMES_IN_BY_TYPE[kind])
        ref = _ref_of(kind, frame)
        if self._limited(ref):
            return
        try:
            await self._dispatch(kind, frame, received)
        except RtmError as exc:
            if exc.code in PROTOCOL_ERRORS:
                self._protocol_error(exc, ref)
            else:
                self._error(exc, ref)

    def _limited(self, ref: str | None) -> bool:
        retry_after_ms = self._limits.take()
        if retry_after_ms is None:
            return False
        RATE_LIMITED.labels("ws").inc()
        self._error(
            RtmError(ErrorCode.RATE_LIMITED, "too many frames", retry_after_ms=retry_after_ms),
            ref,
        )
        if self._limits.flooding():
            self.request_close(CloseCode.FLOOD, "sustained flood")
        return True

    async def _dispatch(self, kind: str, frame: dict[str, Any], received: float) -> None:
        if kind == "ping":
            validate_frame(PingFrame, frame)
            self._emit_text(PONG, "pong")
        elif kind == "send":
            send = validate_frame(SendFrame, frame)
            command = self._ctx.messages.validate(send_command(self.user_id, send))
            try:
                self._pipeline.submit(command)
            except TooManyInFlight:
                IN_FLIGHT_REFUSED.inc()
                raise
            self._answerer.submitted(received)
        elif kind == "typing":
            typing = validate_frame(TypingFrame, frame)
            self._spawn(self._ctx.typing_and_reads.typing(self.user_id, typing.conversation_id))
        elif kind == "read":
            read = validate_frame(ReadFrame, frame)
            validate_read_seq(read.seq)
            self._spawn(self._mark_read(read.conversation_id, read.seq))
        elif kind == "auth":
            await self._reauthenticate(validate_frame(AuthFrame, frame).token)

    async def _reauthenticate(self, token: str) -> None:
        """A later `auth` frame replaces the token (refresh without reconnecting)."""
        claims = await self._ctx.verify(token)
        if claims.user_id != self.user_id:
            raise TokenError("the token belongs to another user")
        old_session = self.session_id
        self._adopt(claims)
        self._ctx.expiry.watch(self)  # only does something if it expires earlier now
        if claims.session_id != old_session:
            self._ctx.connections.move_session(self, old_session)
        self._emit_text(auth_ok(claims), "auth_ok")

    async def _mark_read(self, conversation_id: uuid.UUID, seq: int) -> None:
        """Hand the marker on, then answer `read_ok` (a refusal is `_side`'s error frame)."""
        await self._ctx.typing_and_reads.read(self.user_id, conversation_id, seq)
        self._emit(read_ok(conversation_id, seq))

    def _spawn(self, work: Coroutine[Any, Any, object]) -> None:
        task = asyncio.create_task(self._side(work))
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    async def _side(self, work: Coroutine[Any, Any, object]) -> None:
        try:
            await work
        except RtmError as exc:
            self._error(exc, None)
        except Exception as exc:  # last line of defence of a side task: logged, answered
            self._error(internal_error(exc, "handling a frame"), None)

    # -- outbound --------------------------------------------------------------------------

    def _protocol_error(self, error: RtmError, ref: str | None) -> None:
        self._error(error, ref)
        if self._limits.broken():
            self.request_close(CloseCode.PROTOCOL_ERRORS, "too many protocol errors")

    def _error(self, error: RtmError, ref: str | None) -> None:
        FRAMES_REFUSED.labels(error.code.value).inc()
        ERRORS.labels("ws", error.code.value).inc()
        self._emit(error_frame(error, ref))

    def _emit(self, frame: dict[str, object]) -> None:
        self._emit_text(orjson.dumps(frame).decode(), str(frame.get("type")))

    def _emit_text(self, text: str, kind: str) -> None:
        child = FRAMES_OUT_BY_TYPE.get(kind)
        PER_TURN.inc(child if child is not None else FRAMES_OUT.labels(kind))
        if not self._outbox.put(text) and self._outbox.overflowed:
            self.request_close(CloseCode.SLOW_CONSUMER, "slow consumer")
