"""The error vocabulary of the wire protocol (docs/protocol.md, "7. Error codes").

Exception tree:

    RtmError                 -- carries a stable `ErrorCode`; entrypoints translate it once
      (services subclass it in their own `exceptions` modules)

Entrypoints map `ErrorCode` to an HTTP status with `http_status`, to an error frame on
WebSockets, and (auth) to a `grpc.StatusCode`.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Stable error codes clients switch on."""

    INVALID_JSON = "invalid_json"
    INVALID_MESSAGE = "invalid_message"
    UNKNOWN_TYPE = "unknown_type"
    VALIDATION_FAILED = "validation_failed"
    UNAUTHORIZED = "unauthorized"
    ALREADY_EXISTS = "already_exists"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    RATE_LIMITED = "rate_limited"
    TOO_MANY_IN_FLIGHT = "too_many_in_flight"
    UNAVAILABLE = "unavailable"
    NOT_STORED_YET = "not_stored_yet"
    INTERNAL = "internal"


_HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_JSON: 400,
    ErrorCode.INVALID_MESSAGE: 400,
    ErrorCode.UNKNOWN_TYPE: 400,
    ErrorCode.VALIDATION_FAILED: 422,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.ALREADY_EXISTS: 409,
    ErrorCode.FORBIDDEN: 404,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.TOO_MANY_IN_FLIGHT: 429,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.NOT_STORED_YET: 503,
    ErrorCode.INTERNAL: 500,
}


def http_status(code: ErrorCode) -> int:
    """The HTTP status docs/protocol.md, "7. Error codes" pairs with `code` (`forbidden` is 404: no
    oracle)."""
    return _HTTP_STATUS[code]


class RtmError(Exception):
    """Root of every error that reaches a client with a stable code.

    Args:
        code: the wire code.
        message: human text for the client; never a secret or a message body.
        field: the offending field for `validation_failed`.
        retry_after_ms: when to retry, for `rate_limited` and `unavailable`.
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        field: str | None = None,
        retry_after_ms: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.retry_after_ms = retry_after_ms

    def to_wire(self) -> dict[str, object]:
        """The `{"code","message","field"?,"retry_after_ms"?}` object of HTTP and WS errors."""
        body: dict[str, object] = {"code": self.code.value, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        if self.retry_after_ms is not None:
            body["retry_after_ms"] = self.retry_after_ms
        return body
