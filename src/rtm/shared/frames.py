"""Strict parsing of WebSocket frames (docs/protocol.md, "1. Conventions", "7. Error codes"), free
of I/O.

JSON is parsed strictly: duplicate keys, NaN/Infinity and absurd nesting are refused rather than
silently interpreted. The envelope must be an object with a string `type`. Each service validates
the frame body with its own pydantic models through `validate_frame`, which turns pydantic errors
into `validation_failed` naming the field.

The models of the frames both services speak (`auth`, `ping` in; `auth_ok`, `pong`, `error` out)
are here too; each service's `entrypoints/schemas.py` lists them with its own, and its AsyncAPI
document (`rtm.shared.asyncapi`) is generated from those models.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError
from pydantic.json_schema import SkipJsonSchema

from rtm.shared.errors import ErrorCode, RtmError

MAX_DEPTH = 32
ModelT = TypeVar("ModelT", bound=BaseModel)


class _RefusedValue(ValueError):
    """Parseable by lenient parsers, refused by the protocol (`validation_failed`)."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _RefusedValue("duplicate key in object")
    return result


def _no_constants(name: str) -> Any:
    raise _RefusedValue(f"{name} is not a JSON number")


def _too_deep(text: str) -> bool:
    """Cheap bound on nesting before the recursive parser sees it (a nesting bomb is refused)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return False
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif char in "]}":
            depth -= 1
    return False


def parse_json(text: str) -> Any:
    """Strict JSON: `invalid_json` when unparseable; `validation_failed` for duplicate keys and
    NaN/Infinity (docs/protocol.md, "7. Error codes" lists them there)."""
    if _too_deep(text):
        raise RtmError(ErrorCode.INVALID_JSON, f"JSON nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except _RefusedValue as exc:
        raise RtmError(ErrorCode.VALIDATION_FAILED, str(exc)) from exc
    except (ValueError, RecursionError) as exc:
        raise RtmError(ErrorCode.INVALID_JSON, "frame is not valid JSON") from exc


def parse_frame(text: str, known_types: Collection[str]) -> tuple[str, dict[str, Any]]:
    """Parse one text frame into `(type, object)`; raises `RtmError` with the protocol's code."""
    obj = parse_json(text)
    if not isinstance(obj, dict):
        raise RtmError(ErrorCode.INVALID_MESSAGE, "a frame must be a JSON object")
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise RtmError(ErrorCode.INVALID_MESSAGE, "a frame needs a string 'type'", field="type")
    if kind not in known_types:
        raise RtmError(ErrorCode.UNKNOWN_TYPE, f"unknown frame type {kind[:40]!r}", field="type")
    return kind, obj


def validate_frame(model: type[ModelT], obj: dict[str, Any]) -> ModelT:
    """Validate a parsed frame with a pydantic model; errors become `validation_failed`."""
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "frame"
        raise RtmError(
            ErrorCode.VALIDATION_FAILED, f"{field}: {first['msg']}", field=field
        ) from exc


def check_text(value: str, field: str) -> None:
    """Refuse NUL and lone surrogates (not valid UTF-8; PostgreSQL would refuse them too)."""
    if "\x00" in value:
        raise RtmError(ErrorCode.VALIDATION_FAILED, f"{field} must not contain NUL", field=field)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RtmError(
            ErrorCode.VALIDATION_FAILED, f"{field} is not valid UTF-8 (lone surrogate)", field=field
        ) from exc


# -- frames both services speak -------------------------------------------------------------


class FrameModel(BaseModel):
    """Base of inbound frame models: unknown fields are ignored (clients may send additive
    extensions); `type` is a one-value `Literal`, which names the frame in the AsyncAPI document."""

    model_config = ConfigDict(extra="ignore", frozen=True)


def _omit_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def absent_unless_set(description: str) -> Any:
    """A field omitted from the frame when it has no value (never sent as `null`)."""
    return Field(None, description=description, json_schema_extra=_omit_default)


class AuthFrame(FrameModel):
    """Authenticate: the first frame (when the upgrade had no `Authorization` header), or later
    on an open connection to replace the token before it expires (answered by `auth_ok`)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"type": "auth", "token": "eyJhbGciOiJFZERTQSIsImtpZCI6"}]}
    )

    type: Literal["auth"]
    token: StrictStr = Field(description="an access token from auth (`POST /v1/auth/login`)")


class PingFrame(FrameModel):
    """Application-level keepalive, answered by `pong`."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"type": "ping"}]})

    type: Literal["ping"]


class PongFrame(BaseModel):
    """The answer to `ping`."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"type": "pong"}]})

    type: Literal["pong"]


class AuthOkFrame(BaseModel):
    """The token of an `auth` frame is accepted; `exp` is when it expires."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"type": "auth_ok", "exp": 1795484089}]}
    )

    type: Literal["auth_ok"]
    exp: StrictInt = Field(description="the token's expiry, in seconds since the Unix epoch")


class ErrorFrame(BaseModel):
    """A frame was refused (docs/protocol.md, "7. Error codes"); the connection stays open."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "error",
                    "code": "validation_failed",
                    "ref": "5b0e8c2a-1f3d-4e5a-9b7c-2d4f6a8c0e1b",
                    "message": "body must not be empty",
                    "field": "body",
                },
                {
                    "type": "error",
                    "code": "rate_limited",
                    "ref": None,
                    "message": "too many frames",
                    "retry_after_ms": 50,
                },
            ]
        }
    )

    type: Literal["error"]
    code: ErrorCode = Field(description="stable; clients switch on it")
    ref: StrictStr | None = Field(
        description="the `client_msg_id` of the send it is about, else null"
    )
    message: StrictStr = Field(description="human text; never a secret or a message body")
    field: StrictStr | SkipJsonSchema[None] = absent_unless_set(
        "the offending field, for `validation_failed`"
    )
    retry_after_ms: StrictInt | SkipJsonSchema[None] = absent_unless_set(
        "when to retry, for `rate_limited` and `unavailable`"
    )


PONG = PongFrame(type="pong").model_dump_json()
"""The `pong` frame's text, encoded once."""
