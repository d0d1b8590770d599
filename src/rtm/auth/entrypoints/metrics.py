"""Prometheus metrics of auth, counted here at the edge (the gRPC servicer and the HTTP routes
alike) and exposed by the HTTP front's shared `/metrics` route.

The services know nothing of Prometheus: they return results and raise domain errors, and the
`observe_*` context managers here turn those into outcomes, mapping error codes once for both
entrypoints. Labels take only the values listed here, never user input.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager

from prometheus_client import Counter

from rtm.auth.domain.exceptions import RefreshTokenReused
from rtm.auth.domain.model import Deletion, RevokeReason
from rtm.shared.errors import ErrorCode, RtmError

LOGINS = Counter(
    "rtm_auth_logins_total",
    "Login attempts by outcome: success, failure (bad credentials or input), throttled, error",
    ["outcome"],
)
REGISTRATIONS = Counter(
    "rtm_auth_registrations_total",
    "Registrations by outcome: success, username_taken, invalid, error",
    ["outcome"],
)
REFRESHES = Counter(
    "rtm_auth_refreshes_total",
    "Refresh-token exchanges by outcome: rotated, invalid, reuse_detected (the session is "
    "revoked), error",
    ["outcome"],
)
REVOCATIONS = Counter(
    "rtm_auth_revocations_total",
    "Sessions ended, by reason: logout, revoked (by its user, or its account deleted), "
    "refresh_reuse",
    ["reason"],
)

for _outcome in ("success", "failure", "throttled", "error"):
    LOGINS.labels(_outcome)
for _outcome in ("success", "username_taken", "invalid", "error"):
    REGISTRATIONS.labels(_outcome)
for _outcome in ("rotated", "invalid", "reuse_detected", "error"):
    REFRESHES.labels(_outcome)
for _reason in ("logout", "revoked", "refresh_reuse"):
    REVOCATIONS.labels(_reason)

_REGISTRATION_OUTCOMES: Mapping[ErrorCode, str] = {
    ErrorCode.ALREADY_EXISTS: "username_taken",
    ErrorCode.VALIDATION_FAILED: "invalid",
    ErrorCode.RATE_LIMITED: "throttled",
}
_LOGIN_OUTCOMES: Mapping[ErrorCode, str] = {
    ErrorCode.UNAUTHORIZED: "failure",
    ErrorCode.VALIDATION_FAILED: "failure",
    ErrorCode.RATE_LIMITED: "throttled",
}


@contextmanager
def _counted(counter: Counter, success: str, outcome: Callable[[RtmError], str]) -> Iterator[None]:
    """Count `success` when the block returns, `outcome(error)` when it raises an `RtmError`
    (other exceptions are bugs, logged by the entrypoint's last line of defence, not counted)."""
    try:
        yield
    except RtmError as exc:
        counter.labels(outcome(exc)).inc()
        raise
    counter.labels(success).inc()


def observe_registration() -> AbstractContextManager[None]:
    """Around a registration."""
    return _counted(REGISTRATIONS, "success", lambda e: _REGISTRATION_OUTCOMES.get(e.code, "error"))


def observe_login() -> AbstractContextManager[None]:
    """Around a login."""
    return _counted(LOGINS, "success", lambda e: _LOGIN_OUTCOMES.get(e.code, "error"))


def _refresh_outcome(exc: RtmError) -> str:
    if isinstance(exc, RefreshTokenReused):  # the service revoked the session for it
        REVOCATIONS.labels(RevokeReason.REFRESH_REUSE.value).inc()
        return "reuse_detected"
    return "invalid" if exc.code is ErrorCode.UNAUTHORIZED else "error"


def observe_refresh() -> AbstractContextManager[None]:
    """Around a refresh; a reused token also counts its session's revocation."""
    return _counted(REFRESHES, "rotated", _refresh_outcome)


def count_revocation(reason: RevokeReason, ended: bool = True) -> None:
    """One session ended (when `ended`: calls that found it ended already count nothing)."""
    if ended:
        REVOCATIONS.labels(reason.value).inc()


def count_deletion(deletion: Deletion) -> None:
    """The sessions an account deletion ended."""
    REVOCATIONS.labels(RevokeReason.REVOKED.value).inc(len(deletion.revoked))
