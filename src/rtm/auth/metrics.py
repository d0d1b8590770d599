"""Prometheus metrics of auth, counted by `AuthService` (so gRPC and HTTP alike) and exposed by
the HTTP front's shared `/metrics` route.

Labels take only the values listed here, never user input.
"""

from __future__ import annotations

from prometheus_client import Counter

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
