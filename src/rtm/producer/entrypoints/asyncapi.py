"""The producer's AsyncAPI document (`GET /v1/asyncapi.json`) and its page (`GET /v1/asyncapi`).

The document is generated from the models in `schemas.py`, the same ones that validate the frames
`ws_connection.py` reads, with this deployment's limits in its description.
"""

from __future__ import annotations

from fastapi import Request

from rtm.producer.entrypoints.deps import get_context
from rtm.producer.entrypoints.schemas import (
    AckOut,
    AuthFrame,
    AuthOkFrame,
    ErrorFrame,
    PingFrame,
    PongFrame,
    ReadFrame,
    ReadOkFrame,
    SendFrame,
    TypingFrame,
)
from rtm.producer.settings import ProducerSettings
from rtm.shared.asyncapi import FrameDoc
from rtm.shared.asyncapi_http import ServiceDocument

TITLE = "rtm producer"

RECEIVES = (
    FrameDoc(
        SendFrame,
        "Send a message",
        "Checked (membership, body rules) and published to JetStream; acked, in the order the "
        "connection sent them, only once stored. Errors carry the `client_msg_id` as `ref`.",
        replies=("ack", "error"),
    ),
    FrameDoc(
        TypingFrame,
        "Say you are typing",
        "Ephemeral: forwarded to the other members, never stored; throttled per conversation.",
        replies=("error",),
    ),
    FrameDoc(
        ReadFrame,
        "Move your read marker",
        "Handed to the consumer, which stores it (a marker never moves back) and forwards it to "
        "the members; answered `read_ok` (issue 14: before, a valid `read` had no answer).",
        replies=("read_ok", "error"),
    ),
    FrameDoc(
        AuthFrame,
        "Authenticate, or refresh the token",
        "First frame, when the upgrade request had no `Authorization` header; later, to replace "
        "the token before it expires (same user). A bad first token closes 4500 (4505 expired).",
        replies=("auth_ok", "error"),
    ),
    FrameDoc(PingFrame, "Keepalive", replies=("pong",)),
)

SENDS = (
    FrameDoc(
        AckOut,
        "A send is stored",
        "Once JetStream has stored it. A resent `client_msg_id` is acked again with "
        "`duplicate: true` and the original `message_id`, whatever its body.",
    ),
    FrameDoc(ErrorFrame, "A frame was refused; the connection stays open"),
    FrameDoc(
        ReadOkFrame,
        "A `read` is accepted",
        "The caller is a member and the seq valid; the marker is handed on for storing.",
    ),
    FrameDoc(AuthOkFrame, "The token of an `auth` frame is accepted"),
    FrameDoc(PongFrame, "The answer to `ping`"),
)


def describe(settings: ProducerSettings) -> str:
    """What a client must know beyond the frames, with this deployment's limits."""
    return f"""Everything a client **sends** (docs/protocol.md, "5. Producer"): messages, typing
indicators and read markers. Receive them on the consumer's WebSocket.

Authenticate with `Authorization: Bearer <access token>` on the upgrade request or, from a
browser, a first frame `{{"type":"auth","token":"..."}}` within {settings.auth_timeout_s:g} s.
A connection closes 4505 when its token expires, unless an `auth` frame replaced it.

## Limits
* a frame is at most {settings.max_frame_bytes} bytes (else close 1009)
* a message body has 1 to {settings.max_body_chars} characters after trimming, no NUL
* {settings.rate_per_second:g} frames/s per connection, bursts of {settings.rate_burst}
  (over it: `rate_limited`; a sustained flood closes 4013)
* at most {settings.max_in_flight} unacked sends per connection (`too_many_in_flight`)
* at most {settings.max_connections_per_user} connections per user (else close 4504)
* {settings.protocol_error_limit} protocol errors within {settings.protocol_error_window_s:g} s
  close 4501
"""


SERVICE = ServiceDocument(TITLE, describe, RECEIVES, SENDS)
document = SERVICE.document  # for given settings, no request needed (the tests build it so)


def _settings(request: Request) -> ProducerSettings:
    return get_context(request).settings


router = SERVICE.router(_settings)
