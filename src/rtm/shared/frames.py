"""Strict parsing of WebSocket frames (PROTOCOL.md §1, §7), free of I/O.

JSON is parsed strictly: duplicate keys, NaN/Infinity and absurd nesting are refused rather than
silently interpreted. The envelope must be an object with a string `type`. Each service validates
the frame body with its own pydantic models through `validate_frame`, which turns pydantic errors
into `validation_failed` naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

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
    NaN/Infinity (PROTOCOL.md §7 lists them there)."""
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
