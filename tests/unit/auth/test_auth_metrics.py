"""Outcomes counted at the edge: each error of a use case lands on its metric label."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest
from prometheus_client import REGISTRY, Counter

from rtm.auth.domain.exceptions import (
    InvalidCredentials,
    InvalidInput,
    InvalidRefreshToken,
    RefreshTokenReused,
    Throttled,
    Unavailable,
    UsernameTaken,
)
from rtm.auth.entrypoints.metrics import (
    LOGINS,
    REFRESHES,
    REGISTRATIONS,
    REVOCATIONS,
    observe_login,
    observe_refresh,
    observe_registration,
)
from rtm.shared.errors import RtmError

Observe = Callable[[], AbstractContextManager[None]]


def count(counter: Counter, label: str) -> float:
    """The counter's value for one label, read through the registry (public API)."""
    name, label_name = {
        id(LOGINS): ("rtm_auth_logins_total", "outcome"),
        id(REGISTRATIONS): ("rtm_auth_registrations_total", "outcome"),
        id(REFRESHES): ("rtm_auth_refreshes_total", "outcome"),
        id(REVOCATIONS): ("rtm_auth_revocations_total", "reason"),
    }[id(counter)]
    return REGISTRY.get_sample_value(name, {label_name: label}) or 0.0


def outcome_of(
    observe: Observe, counter: Counter, labels: list[str], error: RtmError | None
) -> list[str]:
    """The labels of `counter` that `observe` moved when its block raised `error` (or not)."""
    before = {label: count(counter, label) for label in labels}
    with contextlib.suppress(RtmError), observe():  # the error passes through `observe`
        if error is not None:
            raise error
    return [label for label in labels if count(counter, label) != before[label]]


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (None, "success"),
        (UsernameTaken(), "username_taken"),
        (InvalidInput("username", "bad"), "invalid"),
        (Throttled(10), "throttled"),
        (Unavailable("down"), "error"),
    ],
)
def test_registration_outcomes(error: RtmError | None, outcome: str) -> None:
    labels = ["success", "username_taken", "invalid", "throttled", "error"]
    assert outcome_of(observe_registration, REGISTRATIONS, labels, error) == [outcome]


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (None, "success"),
        (InvalidCredentials(), "failure"),
        (InvalidInput("password", "too long"), "failure"),
        (Throttled(10), "throttled"),
        (Unavailable("down"), "error"),
    ],
)
def test_login_outcomes(error: RtmError | None, outcome: str) -> None:
    labels = ["success", "failure", "throttled", "error"]
    assert outcome_of(observe_login, LOGINS, labels, error) == [outcome]


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (None, "rotated"),
        (InvalidRefreshToken(), "invalid"),
        (RefreshTokenReused(), "reuse_detected"),
        (Unavailable("down"), "error"),
    ],
)
def test_refresh_outcomes(error: RtmError | None, outcome: str) -> None:
    labels = ["rotated", "invalid", "reuse_detected", "error"]
    assert outcome_of(observe_refresh, REFRESHES, labels, error) == [outcome]


def test_a_reused_refresh_token_also_counts_its_sessions_revocation() -> None:
    before = count(REVOCATIONS, "refresh_reuse")
    outcome_of(observe_refresh, REFRESHES, ["reuse_detected"], RefreshTokenReused())
    assert count(REVOCATIONS, "refresh_reuse") == before + 1
