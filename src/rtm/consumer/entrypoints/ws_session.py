"""`ConsumerSession`: one consumer `/v1/ws` connection after the handshake (docs/protocol.md,
"6. Consumer"): its lifetime, reading and answering its frames, its limits. The route and the
handshake are `rtm.consumer.entrypoints.ws`; a `resume`'s catch-up is `ws_resume.catch_up_all`.

While PostgreSQL cannot answer, a `resume` is answered with an `unavailable` error frame (not a
protocol error: it does not count towards 4501) and the socket stays open; a new socket's list
of online contacts is asked for again until PostgreSQL answers.

Inbound limits are the producer's (`rtm.shared.limits`, the same settings): every frame takes a
token from the connection's bucket, else it is answered `rate_limited` (with `retry_after_ms`)
and not handled; `flood_limit` of those within `flood_window_s` close 4013, and
`protocol_error_limit` protocol errors within `protocol_error_window_s` close 4501. A bad frame
gets an error frame and the connection stays open, whatever it holds. A frame that trips a bug is
answered `internal` (logged with the connection's correlation id) and the connection closed 1011,
never dropped silently: the bug may have left the session's delivery state half-updated (what
it holds for a resume, the last seq sent), and a kept socket would then be sent messages past a
gap; a new connection resumes from the client's cursors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

import orjson
from starlette.websockets import WebSocketDisconnect

from rtm.consumer.domain.exceptions import Unavailable
from rtm.consumer.entrypoints import metrics
from rtm.consumer.entrypoints.deps import ConsumerContext
from rtm.consumer.entrypoints.hub import FeedDown, LiveConnection
from rtm.consumer.entrypoints.schemas import (
    INBOUND,
    NO_OPTIONS,
    AuthFrame,
    ConnectOptions,
    ResumeFrame,
    decode_frame,
    error_frame,
    presence_frame,
    ready_frame,
)
from rtm.consumer.entrypoints.ws_resume import catch_up_all
from rtm.consumer.settings import ConsumerSettings
from rtm.shared.clock import utcnow
from rtm.shared.errors import ErrorCode, RtmError
from rtm.shared.frames import PONG
from rtm.shared.logging import context_field
from rtm.shared.tokens import AccessClaims, TokenError
from rtm.shared.ws import (
    CloseCode,
    Outbox,
    ServerSocket,
    auth_ok,
    close_code_for,
    close_quietly,
)

logger = logging.getLogger(__name__)

FRAME_TYPES = frozenset(INBOUND)  # what `decode_frame` accepts (the AsyncAPI document's list)
# Errors that say the client speaks the protocol wrong: they count towards 4501.
PROTOCOL_ERRORS = frozenset(
    {
        ErrorCode.INVALID_JSON,
        ErrorCode.INVALID_MESSAGE,
        ErrorCode.UNKNOWN_TYPE,
        ErrorCode.VALIDATION_FAILED,
    }
)


class ConsumerSession:
    """One connection's lifetime after the handshake. Every idle connection holds one of these:
    slots, timers, and reading in the connection's own task instead of tasks of its own keep it
    small (the `idle` benchmark)."""

    __slots__ = (
        "_first_resume",
        "_limits",
        "_options",
        "_presence",
        "_reading",
        "claims",
        "closing",
        "connection",
        "context",
        "outbox",
        "websocket",
    )

    def __init__(
        self,
        websocket: ServerSocket,
        claims: AccessClaims,
        context: ConsumerContext,
        options: ConnectOptions | None = None,
    ) -> None:
        self.websocket = websocket
        self._options = options or NO_OPTIONS
        # The resume of the cursors given with the connection, while it runs.
        self._first_resume: asyncio.Task[None] | None = None
        # The task sending the list of online contacts, while it runs (it forgets itself: a
        # finished task kept for the connection's life is ~0.4 KB of an idle one).
        self._presence: asyncio.Task[None] | None = None
        self.claims = claims
        self.context = context
        settings = context.settings
        self.outbox = Outbox(websocket, settings.send_queue_bytes)
        self.closing: tuple[int, str] | None = None
        self._limits = settings.inbound_limits(context.monotonic)
        # The task reading the client's frames (the connection's own) while it does: a close
        # requested from elsewhere cancels it (`_end`).
        self._reading: asyncio.Task[None] | None = None
        self.connection = LiveConnection(
            claims.user_id,
            claims.session_id,
            self.outbox,
            context.reads,
            self.request_close,
            backoff=context.backoff,
            holding=self._holds(settings),
        )

    def _holds(self, settings: ConsumerSettings) -> bool:
        """Hold live messages until a resume is handled: when the client gave cursors with the
        connection (their resume starts at once), or said it will send a `resume` (at most the
        grace period). Otherwise live messages go out at once (docs/protocol.md, "6. Consumer")."""
        options = self._options
        if options.cursors is not None:
            return bool(options.cursors.cursors)
        return options.hold and settings.resume_grace_s > 0

    def request_close(self, code: int, reason: str) -> None:
        """Close from anywhere (hub, overflow, revocation) without awaiting."""
        if self.closing is None:
            metrics.WS_CLOSES.labels(str(code)).inc()
            self.closing = (code, reason)
            self.outbox.close()
            self._end()

    def _end(self, _: object = None) -> None:
        """Stop reading: the peer left (ASGI writer ended) or a close was requested. From the
        reading task itself the read loop sees `closing` after the frame it handles."""
        reading = self._reading
        if reading is not None and reading is not asyncio.current_task():
            self._reading = None
            reading.cancel()

    async def run(self) -> None:
        try:
            self.context.hub.add(self.connection)
        except FeedDown as down:
            metrics.WS_CLOSES.labels(str(CloseCode.RESTARTING)).inc()
            await close_quietly(self.websocket, CloseCode.RESTARTING, str(down))
            return
        metrics.WS_CONNECTIONS.inc()
        loop = asyncio.get_running_loop()
        # A timer, not a task: an idle connection should cost as little memory as possible.
        hold = (
            loop.call_later(self.context.settings.resume_grace_s, self.connection.grace_over)
            if self._options.hold
            else None
        )
        # The server's one expiry timer (`TokenExpiry`), not one per connection.
        self.context.expiry.watch(self)
        # A direct (picows) outbox writes from `put`; only the ASGI one needs its writer task.
        writer = None if self.outbox.direct else asyncio.create_task(self.outbox.run())
        if writer is not None:
            writer.add_done_callback(self._end)
        try:
            self.connection.push(
                orjson.dumps(ready_frame(self.claims.user_id, utcnow())).decode(), "ready"
            )
            self._start_with_options()
            self._presence = asyncio.create_task(self._send_presence())
            await self._read_until_closed()
        finally:
            self._reading = None
            metrics.WS_CONNECTIONS.dec()
            self.context.hub.remove(self.connection)
            self.connection.cancel()
            if hold is not None:
                hold.cancel()
            if self._first_resume is not None:
                self._first_resume.cancel()
            self.context.expiry.forget(self)
            if self._presence is not None:
                self._presence.cancel()
            if self.closing is not None:
                if writer is not None and not self.outbox.overflowed:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(writer, 1.0)
                await close_quietly(self.websocket, *self.closing)
            if writer is not None:
                writer.cancel()

    def _start_with_options(self) -> None:
        """After `ready`: answer a refused query, or resume the cursors given with the
        connection (its `resumed` follows `ready`; a `resume` frame waits for it)."""
        options = self._options
        if options.error is not None:
            self._protocol_error(options.error)
        elif options.cursors is not None:
            self.connection.begin_resume()
            self._first_resume = asyncio.create_task(self._resume_given(options.cursors))

    async def _resume_given(self, frame: ResumeFrame) -> None:
        try:
            await self._resume(frame)
        except Exception:  # last line of defence, as for a frame: answer, log, close 1011
            conn = context_field("conn") or "-"
            logger.exception("unexpected error resuming the connection's cursors")
            self._error(RtmError(ErrorCode.INTERNAL, f"internal error; correlation id {conn}"))
            self.request_close(CloseCode.INTERNAL, "internal error: reconnect and resume")

    async def _send_presence(self) -> None:
        """Tell a new connection which of its contacts are online right now. While PostgreSQL
        cannot say who they are, ask again, backing off: the list comes late, not never."""
        events = self.context.events
        try:
            if events is None:
                return
            attempt = 0
            while True:
                attempt += 1
                try:
                    contacts = await events.online_contacts(self.claims.user_id)
                    break
                except Unavailable as exc:
                    if attempt == 1:
                        logger.warning("online contacts wait for PostgreSQL (%s)", exc.message)
                    await asyncio.sleep(self.context.backoff.delay(attempt, random.random))
            for contact in contacts:
                self.connection.push(
                    orjson.dumps(presence_frame(contact, "online")).decode(), "presence"
                )
        finally:
            self._presence = None

    def token_expires_at(self) -> float:
        """When the connection's token expires: an `auth` frame pushes that back (`TokenExpiry`
        reads it when the old time comes)."""
        return self.claims.expires_at.timestamp()

    def token_expired(self) -> None:
        """Called by the server's `TokenExpiry` once `token_expires_at` has passed."""
        self.request_close(CloseCode.TOKEN_EXPIRED, "token expired: refresh and reconnect")

    async def _read_until_closed(self) -> None:
        """Read in this task until the peer leaves or a close is requested (`_end` cancels the
        read; any other cancellation goes on). The loop is here, not in a coroutine this one
        awaits: an idle connection waits in it, and each coroutine it waits in is ~0.2 KB."""
        task = asyncio.current_task()
        assert task is not None  # run by the connection's task
        self._reading = task
        try:
            while self.closing is None:
                try:
                    message = await self.websocket.receive()
                except (WebSocketDisconnect, RuntimeError):
                    return
                if message["type"] == "websocket.disconnect":
                    return
                if not self._limited():
                    await self._on_frame(message.get("text"))
        except asyncio.CancelledError:
            # `_end` forgets the task before cancelling it: any other cancel is not ours, and
            # neither is one still pending once ours is taken back.
            if self._reading is not None or task.uncancel() > 0:
                raise

    async def _on_frame(self, text: str | None) -> None:
        """Handle one frame (None: a binary one); a bad one is answered with an error frame."""
        try:
            if text is None:
                metrics.FRAMES_IN.labels("binary").inc()
                raise RtmError(
                    ErrorCode.INVALID_MESSAGE, "binary frames are not supported; send JSON text"
                )
            await self._handle(text)
        except RtmError as error:
            if error.code in PROTOCOL_ERRORS:
                self._protocol_error(error)
            else:
                self._error(error)
        except Exception:  # last line of defence: answer, log, close 1011
            conn = context_field("conn") or "-"
            logger.exception("unexpected error handling a frame")
            self._error(RtmError(ErrorCode.INTERNAL, f"internal error; correlation id {conn}"))
            self.request_close(CloseCode.INTERNAL, "internal error: reconnect and resume")

    def _limited(self) -> bool:
        """Take a token for one inbound frame; without one, answer `rate_limited` (and close
        4013 on a sustained flood)."""
        retry_after_ms = self._limits.take()
        if retry_after_ms is None:
            return False
        self._error(
            RtmError(ErrorCode.RATE_LIMITED, "too many frames", retry_after_ms=retry_after_ms)
        )
        if self._limits.flooding():
            self.request_close(CloseCode.FLOOD, "sustained flood")
        return True

    def _error(self, error: RtmError) -> None:
        metrics.ERRORS.labels(error.code.value).inc()
        self.connection.push(error_frame(error), "error")

    def _protocol_error(self, error: RtmError) -> None:
        self._error(error)
        if self._limits.broken():
            self.request_close(CloseCode.PROTOCOL_ERRORS, "too many protocol errors")

    async def _handle(self, text: str) -> None:
        kind, frame = decode_frame(
            text, max_resume_conversations=self.context.settings.max_resume_conversations
        )
        metrics.FRAMES_IN.labels(kind).inc()
        if isinstance(frame, AuthFrame):
            try:
                claims = await self.context.verifier.verify(frame.token)
            except TokenError as exc:
                self.request_close(close_code_for(exc), exc.message)
                return
            if claims.user_id != self.claims.user_id:
                self.request_close(CloseCode.INVALID_TOKEN, "token is for another user")
                return
            if self.context.revoked.is_revoked(claims.session_id):
                self.request_close(CloseCode.SESSION_REVOKED, "session revoked")
                return
            self.claims = claims
            self.context.expiry.watch(self)  # only does something if it expires earlier now
            self.connection.push(auth_ok(claims), "auth_ok")
        elif isinstance(frame, ResumeFrame):
            if self._first_resume is not None:  # the cursors given with the connection first
                await asyncio.shield(self._first_resume)
            await self._resume(frame)
        else:
            self.connection.push(PONG, "pong")

    async def _resume(self, frame: ResumeFrame) -> None:
        """Catch every cursor up, then end the hold of live messages (held ones of conversations
        not in the resume go out after `resumed`). The hold lasts for the whole resume, however
        long PostgreSQL takes: see `LiveConnection.grace_over`."""
        self.connection.begin_resume()
        try:
            unavailable = await catch_up_all(
                self.connection, self.context.reads, self.claims.user_id, frame
            )
            if unavailable is not None:
                self._error(unavailable)
        finally:
            self.connection.end_hold()  # idempotent: also after a refused cursor
