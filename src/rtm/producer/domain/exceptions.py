"""Errors of the producer's domain and services.

Exception tree (every one carries the wire `ErrorCode` of docs/protocol.md, "7. Error codes"):

    RtmError                       rtm.shared.errors
      ProducerError                root of this package
        ValidationFailed           validation_failed: a field is wrong (`field` names it)
        Forbidden                  forbidden: not a member, or no such conversation (same answer)
        UnknownUsers               not_found: user ids auth does not know (`field` names where)
        RateLimited                rate_limited: retry after `retry_after_ms`
        TooManyInFlight            too_many_in_flight: too many unacked sends on a connection
        Unavailable                unavailable: NATS or PostgreSQL cannot take it now
        NotStoredYet               not_stored_yet: a `"wait":"stored"` send JetStream has, not
                                   yet seen in PostgreSQL in time (resend: `duplicate: true`)

Entrypoints translate them once: to an HTTP status (`rtm.shared.errors.http_status`) or an error
frame on the WebSocket.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from rtm.shared.errors import ErrorCode, RtmError


class ProducerError(RtmError):
    """Root of the producer's errors."""


class ValidationFailed(ProducerError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(ErrorCode.VALIDATION_FAILED, message, field=field)


class Forbidden(ProducerError):
    """Deliberately the same for a conversation that exists and one that does not (no oracle)."""

    def __init__(self, message: str = "no such conversation, or you are not a member") -> None:
        super().__init__(ErrorCode.FORBIDDEN, message)


class UnknownUsers(ProducerError):
    """Some user ids are not registered with auth (or their accounts are deleted); they are
    named, so that a client can tell which. (Whether an id is a user is no secret: auth's
    directory answers it to any signed-in user.)"""

    def __init__(self, user_ids: Iterable[uuid.UUID], field: str = "member_ids") -> None:
        self.user_ids = tuple(sorted(user_ids, key=str))
        names = ", ".join(str(user_id) for user_id in self.user_ids)
        super().__init__(ErrorCode.NOT_FOUND, f"no such user: {names}", field=field)


class RateLimited(ProducerError):
    def __init__(self, retry_after_ms: int, message: str = "rate limit exceeded") -> None:
        super().__init__(ErrorCode.RATE_LIMITED, message, retry_after_ms=retry_after_ms)


class TooManyInFlight(ProducerError):
    def __init__(self, limit: int) -> None:
        super().__init__(
            ErrorCode.TOO_MANY_IN_FLIGHT, f"more than {limit} sends are waiting for their ack"
        )


class Unavailable(ProducerError):
    """The bus or the database cannot take the request now; retry with the same client_msg_id."""

    def __init__(self, message: str, retry_after_ms: int = 1000) -> None:
        super().__init__(ErrorCode.UNAVAILABLE, message, retry_after_ms=retry_after_ms)


class NotStoredYet(ProducerError):
    """A send that asked to be acked once stored (`"wait":"stored"`) is in JetStream, so it is
    not lost and will be stored, but PostgreSQL did not show it within the wait. The client
    resends the same `client_msg_id` (with `"wait":"stored"`) after `retry_after_ms`: that is
    acked `duplicate: true` with the seq once stored, and never makes a second message."""

    def __init__(self, waited_s: float, retry_after_ms: int = 1000) -> None:
        super().__init__(
            ErrorCode.NOT_STORED_YET,
            f"accepted, but not confirmed stored within {waited_s:g}s; resend the same "
            "client_msg_id to learn its seq",
            retry_after_ms=retry_after_ms,
        )
