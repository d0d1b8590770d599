"""The SDK's one exception: an answer that refused something, or the SDK giving up.

RtmError            code = the protocol's error code (docs/protocol.md, "7. Error codes"),
                    or the SDK's own: network, closed, session_ended, store_failed
"""

from __future__ import annotations

#: Error codes after which the same send, resent with the same `client_msg_id`, may succeed.
#: `not_stored_yet` answers a `"wait":"stored"` send that is accepted but not yet seen stored.
TRANSIENT_CODES: frozenset[str] = frozenset(
    {"unavailable", "rate_limited", "too_many_in_flight", "not_stored_yet"}
)


class RtmError(Exception):
    """A refusal by a server (an error frame or an HTTP error body) or by the SDK itself.

    Attributes:
        code: the protocol's error code (`validation_failed`, `forbidden`, ...) or one of the
            SDK's: `network` (no answer), `closed` (the client is closed or not connected),
            `session_ended` (the refresh token was refused), `store_failed` (the outbox could
            not persist a send, so it was not sent).
        status: the HTTP status, for HTTP answers.
        field: the field a `validation_failed` names.
        retry_after_ms: when the server says to try again.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        field: str | None = None,
        retry_after_ms: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.field = field
        self.retry_after_ms = retry_after_ms

    def __str__(self) -> str:
        where = f" ({self.field})" if self.field else ""
        return f"{self.code}{where}: {self.message}"
