"""The consumer's AsyncAPI document (`GET /v1/asyncapi.json`) and its page (`GET /v1/asyncapi`).

The document is generated from the models in `schemas.py`: those that validate the frames
`ws_session.py` reads, and those the outbound frames are checked against, with this deployment's
limits in its description.
"""

from __future__ import annotations

from fastapi import Request

from rtm.consumer.entrypoints.deps import get_context
from rtm.consumer.entrypoints.schemas import (
    AuthFrame,
    AuthOkFrame,
    ConversationFrame,
    ErrorFrame,
    MessageFrame,
    PingFrame,
    PongFrame,
    PresenceFrame,
    ReadFrame,
    ReadyFrame,
    ResumedFrame,
    ResumeFrame,
    TypingFrame,
)
from rtm.consumer.settings import ConsumerSettings
from rtm.shared.asyncapi import FrameDoc
from rtm.shared.asyncapi_http import ServiceDocument

TITLE = "rtm consumer"

RECEIVES = (
    FrameDoc(
        AuthFrame,
        "Authenticate, or refresh the token",
        "First frame, when the upgrade request had no `Authorization` header (answered by "
        "`auth_ok`, then `ready`); later, to replace the token before it expires. A bad or "
        "expired token closes the connection (4500 / 4505), as does a token of another user.",
        replies=("auth_ok", "error"),
    ),
    FrameDoc(
        ResumeFrame,
        "Catch up after a reconnect",
        "Sends every message with a `seq` above each cursor, in order, then `resumed`, and "
        "continues live with no gap and no duplicate at the seam.",
        replies=("message", "resumed", "error"),
    ),
    FrameDoc(PingFrame, "Keepalive", replies=("pong",)),
)

SENDS = (
    FrameDoc(ReadyFrame, "Authenticated; live events follow"),
    FrameDoc(MessageFrame, "A message in one of your conversations"),
    FrameDoc(ResumedFrame, "A `resume` is complete"),
    FrameDoc(TypingFrame, "Someone is typing"),
    FrameDoc(ReadFrame, "A read marker moved"),
    FrameDoc(PresenceFrame, "A contact came online or went offline"),
    FrameDoc(ConversationFrame, "A conversation was created or its members changed"),
    FrameDoc(ErrorFrame, "A frame was refused; the connection stays open"),
    FrameDoc(AuthOkFrame, "The token of an `auth` frame is accepted"),
    FrameDoc(PongFrame, "The answer to `ping`"),
)


def describe(settings: ConsumerSettings) -> str:
    """What a client must know beyond the frames, with this deployment's limits."""
    return f"""Everything a client **receives** (docs/protocol.md, "6. Consumer"): after
authentication, `ready`, then live events for every conversation the user belongs to. Send on the
producer's WebSocket.

Authenticate with `Authorization: Bearer <access token>` on the upgrade request or, from a
browser, a first frame `{{"type":"auth","token":"..."}}` within {settings.auth_timeout_s:g} s.
A connection closes 4505 when its token expires, unless an `auth` frame replaced it.

Within one connection, a conversation's `message` frames arrive with strictly increasing `seq`
and no gap. After a reconnect, give the last `seq` seen per conversation with the connection,
`GET /v1/ws?cursors=<conversation id>:<seq>,...` (resumed at once: the missed messages, then
`resumed`, then live), or say you will send a `resume` frame, `GET /v1/ws?resume=1` (live
messages are held until it is handled, at most {settings.resume_grace_s:g} s). A connection with
neither gets live messages at once; a `resume` it sends later for a conversation already sent
live past its cursor is answered `"recovered": false` for it (never out of order). Past
{settings.max_recovery} missing messages in a conversation none are sent
(`"recovered": false`): page the history over HTTP instead.

## Limits
* a frame is at most {settings.max_frame_bytes} bytes (else close 1009)
* a client that lets more than {settings.send_queue_bytes} bytes queue up is closed 4008:
  reconnect and `resume`
* at most {settings.max_connections_per_user} connections per user (else close 4504)
* {settings.rate_per_second:g} frames per second per connection, in bursts of up to
  {settings.rate_burst} (else `rate_limited` with `retry_after_ms`; {settings.flood_limit} of
  those within {settings.flood_window_s:g} s close 4013)
* {settings.protocol_error_limit} protocol errors within {settings.protocol_error_window_s:g} s
  close 4501
* a `resume` names at most {settings.max_resume_conversations} conversations, each cursor 0 to
  2^63-1 (else `validation_failed`)
"""


SERVICE = ServiceDocument(TITLE, describe, RECEIVES, SENDS)
document = SERVICE.document  # for given settings, no request needed (the tests build it so)


def _settings(request: Request) -> ConsumerSettings:
    return get_context(request).settings


router = SERVICE.router(_settings)
