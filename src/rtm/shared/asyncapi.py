"""AsyncAPI 3.0 documents for the WebSocket protocols, generated from the frames' pydantic models.

Pure: models and text in, a JSON-ready dict out. The document describes the *service*, as
AsyncAPI documents describe an application: a frame a client sends is an operation the service
`receive`s (with the frames it may answer as its `reply`), a frame the service sends is a `send`
operation. Each frame type is one message on the one channel (`/v1/ws`); its payload is the JSON
schema pydantic derives from the model that validates (inbound) or describes (outbound) the
frame, hoisted into `components/schemas`, and its examples are the model's own. So the document
changes when a model changes, and cannot drift from the code.

Close codes (docs/protocol.md, "8. WebSocket close codes") and error codes ("7. Error codes") are
tabled in the description, and listed for machines under the channel's `x-close-codes` and
`x-error-codes`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from rtm.shared.errors import ErrorCode
from rtm.shared.ws import CloseCode

ASYNCAPI_VERSION = "3.0.0"
CHANNEL = "ws"
SCHEMA_REF = "#/components/schemas/{model}"

CLOSE_CODES: Mapping[CloseCode, tuple[str, str]] = {
    CloseCode.NORMAL: ("normal closure", "yes"),
    CloseCode.GOING_AWAY: ("going away", "yes"),
    CloseCode.UNSUPPORTED_DATA: (
        "unsupported data (reserved: binary frames get an `invalid_message` error instead)",
        "no",
    ),
    CloseCode.INVALID_UTF8: ("invalid UTF-8 in a text frame", "no"),
    CloseCode.POLICY: ("Origin not allowed", "no"),
    CloseCode.TOO_BIG: ("frame larger than the limit", "no (fix the client)"),
    CloseCode.INTERNAL: ("internal error or keepalive timeout", "yes"),
    CloseCode.RESTARTING: ("service restarting (graceful shutdown)", "yes, with backoff"),
    CloseCode.SLOW_CONSUMER: (
        "slow consumer: its send queue passed the limit",
        "yes, then `resume`",
    ),
    CloseCode.FLOOD: ("sustained flood", "yes, after a pause"),
    CloseCode.INVALID_TOKEN: ("invalid token", "no, with the same token"),
    CloseCode.PROTOCOL_ERRORS: ("too many protocol errors (10 in 60 s)", "no"),
    CloseCode.AUTH_TIMEOUT: ("no `auth` frame in time", "no"),
    CloseCode.SESSION_REVOKED: ("session revoked or logged out", "no"),
    CloseCode.TOO_MANY_CONNECTIONS: ("too many connections for this user", "no"),
    CloseCode.TOKEN_EXPIRED: ("token expired", "after a refresh"),
}

ERROR_CODES: Mapping[ErrorCode, str] = {
    ErrorCode.INVALID_JSON: "not parseable JSON (incl. absurd nesting)",
    ErrorCode.INVALID_MESSAGE: "JSON but not an object, no `type`, or a binary frame",
    ErrorCode.UNKNOWN_TYPE: "unknown `type`",
    ErrorCode.VALIDATION_FAILED: "a field is missing, of the wrong type, or out of range "
    "(`field` names it); NaN/Infinity and duplicate keys are rejected",
    ErrorCode.UNAUTHORIZED: "no or bad token, wrong credentials",
    ErrorCode.ALREADY_EXISTS: "username taken (HTTP only)",
    ErrorCode.FORBIDDEN: "not a member, or no such conversation (the same answer: no oracle)",
    ErrorCode.NOT_FOUND: "no such resource (HTTP only)",
    ErrorCode.RATE_LIMITED: "over the rate limit; `retry_after_ms` says when to retry",
    ErrorCode.TOO_MANY_IN_FLIGHT: "too many unacked sends",
    ErrorCode.UNAVAILABLE: "the bus or database cannot take it now; retry with the same "
    "`client_msg_id`",
    ErrorCode.NOT_STORED_YET: 'a `"wait":"stored"` send is accepted (in JetStream, not lost) but '
    "not seen stored in time; resend the same `client_msg_id` after `retry_after_ms` for its "
    "ack with `seq` (producer only)",
    ErrorCode.INTERNAL: "a bug; logged with a correlation id that the message repeats",
}

_HANDSHAKE_HEADERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "Authorization": {
            "type": "string",
            "pattern": "^Bearer ",
            "description": "`Bearer <access token>`; without it, the first frame must be `auth`",
        },
        "Origin": {
            "type": "string",
            "description": "browsers send it; it must be one of the service's `allowed_origins` "
            "(else close 1008)",
        },
    },
}


@dataclass(frozen=True, slots=True)
class FrameDoc:
    """One frame type of a WebSocket protocol, as the AsyncAPI document shows it.

    Args:
        model: the pydantic model of the frame; its `type: Literal["<name>"]` field names it,
            and its `json_schema_extra["examples"]` become the message's examples.
        summary: one line.
        description: more, in CommonMark.
        replies: names of the frames the service may answer this one with (inbound frames only).
    """

    model: type[BaseModel]
    summary: str
    description: str = ""
    replies: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return frame_type(self.model)


def frame_type(model: type[BaseModel]) -> str:
    """The `type` a frame model stands for: the one value of its `type: Literal[...]` field."""
    field = model.model_fields.get("type")
    annotation = field.annotation if field is not None else None
    values = get_args(annotation)
    if get_origin(annotation) is not Literal or len(values) != 1:
        raise TypeError(f"{model.__name__} needs a field `type: Literal['<frame type>']`")
    return str(values[0])


def model_examples(model: type[BaseModel]) -> list[dict[str, Any]]:
    """The examples declared in a model's `json_schema_extra`."""
    extra = model.model_config.get("json_schema_extra")
    examples = extra.get("examples") if isinstance(extra, dict) else None
    if not isinstance(examples, list):
        return []
    return [dict(example) for example in examples if isinstance(example, dict)]


def _ref(*parts: str) -> dict[str, str]:
    return {"$ref": "#/" + "/".join(parts)}


def _message(frame: FrameDoc, payload: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {
        "name": frame.name,
        "title": frame.name,
        "summary": frame.summary,
        "contentType": "application/json",
        "payload": payload,
    }
    if frame.description:
        message["description"] = frame.description
    examples = model_examples(frame.model)
    if examples:
        message["examples"] = [
            {"name": f"{frame.name}_{index}" if index else frame.name, "payload": example}
            for index, example in enumerate(examples)
        ]
    return message


def _operation(action: str, frame: FrameDoc) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "action": action,
        "channel": _ref("channels", CHANNEL),
        "title": frame.name,
        "summary": frame.summary,
        "messages": [_ref("channels", CHANNEL, "messages", frame.name)],
    }
    if frame.replies:
        operation["reply"] = {
            "channel": _ref("channels", CHANNEL),
            "messages": [_ref("channels", CHANNEL, "messages", name) for name in frame.replies],
        }
    return operation


def _tables(
    close_codes: Mapping[CloseCode, tuple[str, str]], error_codes: Mapping[ErrorCode, str]
) -> str:
    close_rows = "\n".join(
        f"| {int(code)} | {meaning} | {reconnect} |"
        for code, (meaning, reconnect) in sorted(close_codes.items())
    )
    error_rows = "\n".join(f"| `{code.value}` | {when} |" for code, when in error_codes.items())
    return (
        "## Close codes\n\n| code | meaning | reconnect? |\n|---|---|---|\n"
        f"{close_rows}\n\n"
        "## Error codes (`error` frames; the connection stays open)\n\n"
        f"| code | when |\n|---|---|\n{error_rows}\n"
    )


def asyncapi_document(
    *,
    title: str,
    version: str,
    description: str,
    host: str,
    receives: Sequence[FrameDoc],
    sends: Sequence[FrameDoc],
    protocol: str = "ws",
    path: str = "/v1/ws",
    close_codes: Mapping[CloseCode, tuple[str, str]] = CLOSE_CODES,
    error_codes: Mapping[ErrorCode, str] = ERROR_CODES,
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of one service's WebSocket.

    Args:
        title, version, description: the document's `info` (description in CommonMark; the close
            and error code tables are appended).
        host: `host[:port]` clients connect to; `protocol` is `ws` or `wss`.
        receives: the frames a client sends (the service receives them), with their replies.
        sends: the frames the service sends to clients.
        path: the WebSocket's path.

    Raises:
        ValueError: two frames share a name, or a reply names no frame in `sends`.
    """
    frames = [*receives, *sends]
    names = [frame.name for frame in frames]
    if len(set(names)) != len(names):
        raise ValueError(f"frame names must be unique: {names}")
    sent = {frame.name for frame in sends}
    for frame in receives:
        unknown = set(frame.replies) - sent
        if unknown:
            raise ValueError(f"{frame.name} replies with frames not in `sends`: {unknown}")
    refs, schemas = models_json_schema(
        [(frame.model, "validation") for frame in frames], ref_template=SCHEMA_REF
    )
    messages = {
        frame.name: _message(frame, dict(refs[(frame.model, "validation")])) for frame in frames
    }
    operations = {
        **{f"receive_{frame.name}": _operation("receive", frame) for frame in receives},
        **{f"send_{frame.name}": _operation("send", frame) for frame in sends},
    }
    channel: dict[str, Any] = {
        "address": path,
        "title": f"WebSocket {path}",
        "description": "One JSON object per text frame; `type` names the frame.",
        "messages": {name: _ref("components", "messages", name) for name in names},
        "bindings": {
            "ws": {"method": "GET", "headers": _HANDSHAKE_HEADERS, "bindingVersion": "0.1.0"}
        },
        "x-close-codes": [
            {"code": int(code), "name": code.name, "meaning": meaning, "reconnect": reconnect}
            for code, (meaning, reconnect) in sorted(close_codes.items())
        ],
        "x-error-codes": [{"code": code.value, "when": when} for code, when in error_codes.items()],
    }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": title,
            "version": version,
            "description": description.rstrip() + "\n\n" + _tables(close_codes, error_codes),
        },
        "defaultContentType": "application/json",
        "servers": {
            "rtm": {
                "host": host,
                "protocol": protocol,
                "description": "this service, as you reached it",
                "security": [_ref("components", "securitySchemes", "bearer")],
            }
        },
        "channels": {CHANNEL: channel},
        "operations": operations,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "messages": messages,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "An access token from auth, as `Authorization: Bearer` on the "
                    "upgrade request or, for browsers, in a first `auth` frame.",
                }
            },
        },
    }
