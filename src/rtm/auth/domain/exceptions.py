"""Errors of the auth service, all `RtmError`s so each entrypoint translates them once.

Exception tree:

    RtmError (rtm.shared.errors)
      AuthError                    -- root of this package's errors
        InvalidInput               -- validation_failed: a field breaks a rule (`field` names it)
        InvalidCredentials         -- unauthorized: unknown user or wrong password (one answer)
        InvalidRefreshToken        -- unauthorized: unknown, spent, expired or revoked
          RefreshTokenReused       -- the same answer, for a spent token: its session was revoked
        UsernameTaken              -- already_exists: taken after normalisation
        NotFound                   -- not_found: no such user/session visible to the caller
        Throttled                  -- rate_limited: too many failures or sign-ups; `retry_after_ms`
        Unavailable                -- unavailable: PostgreSQL (or the signing key) not there now
      TokenError, TokenExpired     -- unauthorized, from rtm.shared.tokens (access tokens)
"""

from __future__ import annotations

from rtm.shared.errors import ErrorCode, RtmError


class AuthError(RtmError):
    """Root of the auth service's errors."""


class InvalidInput(AuthError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(ErrorCode.VALIDATION_FAILED, f"{field}: {message}", field=field)


class InvalidCredentials(AuthError):
    """The same answer for an unknown user and a wrong password: no account oracle."""

    def __init__(self) -> None:
        super().__init__(ErrorCode.UNAUTHORIZED, "invalid username or password")


class InvalidRefreshToken(AuthError):
    def __init__(self) -> None:
        super().__init__(ErrorCode.UNAUTHORIZED, "invalid refresh token")


class RefreshTokenReused(InvalidRefreshToken):
    """A spent refresh token came back, and its session was ended for it. The client gets the
    answer of any invalid refresh token; the type lets the edge count reuse apart."""


class UsernameTaken(AuthError):
    def __init__(self) -> None:
        super().__init__(ErrorCode.ALREADY_EXISTS, "username already taken", field="username")


class NotFound(AuthError):
    def __init__(self, what: str) -> None:
        super().__init__(ErrorCode.NOT_FOUND, f"{what} not found")


class Throttled(AuthError):
    def __init__(self, retry_after_ms: int, reason: str = "too many failed attempts") -> None:
        super().__init__(
            ErrorCode.RATE_LIMITED,
            f"{reason}; retry in {retry_after_ms} ms",
            retry_after_ms=retry_after_ms,
        )


class Unavailable(AuthError):
    def __init__(self, message: str, retry_after_ms: int = 1000) -> None:
        super().__init__(ErrorCode.UNAVAILABLE, message, retry_after_ms=retry_after_ms)
