"""Throttling rules: free failures, then doubling delays, forgotten after the window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rtm.auth.domain.policy import AuthPolicy
from rtm.auth.domain.throttle import (
    FailureRecord,
    ThrottlePolicy,
    account_key,
    address_key,
    after_failure,
    retry_after,
    to_milliseconds,
)

POLICY = ThrottlePolicy(
    free_failures=3,
    base_delay=timedelta(seconds=1),
    max_delay=timedelta(seconds=10),
    window=timedelta(minutes=15),
)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def failures(count: int, at: datetime = T0) -> FailureRecord | None:
    record = None
    for _ in range(count):
        record = after_failure(record, at, POLICY)
    return record


def test_free_failures_impose_no_wait() -> None:
    assert retry_after(None, T0, POLICY) is None
    assert retry_after(failures(2), T0, POLICY) is None


def test_delays_double_after_the_free_failures_and_are_capped() -> None:
    assert retry_after(failures(3), T0, POLICY) == timedelta(seconds=1)
    assert retry_after(failures(4), T0, POLICY) == timedelta(seconds=2)
    assert retry_after(failures(5), T0, POLICY) == timedelta(seconds=4)
    assert retry_after(failures(60), T0, POLICY) == timedelta(seconds=10)


def test_the_wait_shrinks_as_time_passes_and_ends() -> None:
    record = failures(4)
    assert retry_after(record, T0 + timedelta(milliseconds=500), POLICY) == timedelta(
        milliseconds=1500
    )
    assert retry_after(record, T0 + timedelta(seconds=2), POLICY) is None


def test_failures_older_than_the_window_are_forgotten() -> None:
    record = failures(50)
    later = T0 + POLICY.window
    assert retry_after(record, later, POLICY) is None
    assert after_failure(record, later, POLICY) == FailureRecord(1, later)


def test_ipv6_addresses_share_their_64_and_mapped_ipv4_is_ipv4() -> None:
    assert address_key("2001:db8::1") == address_key("2001:db8::ffff") == "addr:2001:db8::/64"
    assert address_key("::ffff:10.0.0.1") == address_key("10.0.0.1") == "addr:10.0.0.1"
    assert address_key("not an ip") == "addr:not an ip"
    assert account_key("alice") == "user:alice"


def test_retry_delay_rounds_up_to_whole_milliseconds() -> None:
    assert to_milliseconds(timedelta(microseconds=1)) == 1
    assert to_milliseconds(timedelta(seconds=1, microseconds=1)) == 1001


def test_a_policy_remembers_failures_as_long_as_its_longest_window() -> None:
    """Failures are recorded for the longest of the three windows, so none forgets early."""
    short = ThrottlePolicy(1, timedelta(seconds=1), timedelta(seconds=1), timedelta(minutes=5))
    policy = AuthPolicy(
        issuer="rtm-auth",
        access_ttl=timedelta(minutes=15),
        refresh_ttl=timedelta(days=30),
        leeway=timedelta(seconds=5),
        account_throttle=short,
        address_throttle=POLICY,
        pair_throttle=short,
    )
    assert policy.throttle_window == timedelta(minutes=15)
