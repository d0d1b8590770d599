"""Token bucket, windows and throttles, on an injected clock."""

from __future__ import annotations

import pytest

from rtm.shared.limits import (
    InboundLimits,
    KeyedBuckets,
    SlidingWindow,
    Throttle,
    TokenBucket,
    WindowCounter,
)
from tests.support.clock import FakeClock


def test_bucket_allows_the_burst_then_refuses_with_a_retry_delay() -> None:
    """20/s with bursts of 40: 40 at once pass, the 41st waits one token (50 ms)."""
    clock = FakeClock()
    bucket = TokenBucket(20, 40, clock.monotonic)
    assert all(bucket.take() is None for _ in range(40))
    assert bucket.take() == 50


def test_bucket_refills_at_its_rate_up_to_the_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(20, 40, clock.monotonic)
    for _ in range(40):
        bucket.take()
    clock.advance(0.1)  # two tokens
    assert bucket.take() is None
    assert bucket.take() is None
    assert bucket.take() is not None
    clock.advance(3600)
    assert bucket.full
    assert sum(bucket.take() is None for _ in range(100)) == 40


def test_sustained_rate_is_the_configured_rate() -> None:
    """Over ten seconds at 100 attempts/s, about 20/s (plus the burst) get through."""
    clock = FakeClock()
    bucket = TokenBucket(20, 40, clock.monotonic)
    allowed = 0
    for _ in range(1000):
        allowed += bucket.take() is None
        clock.advance(0.01)
    assert 40 + 195 <= allowed <= 40 + 201


def test_retry_delay_is_accurate() -> None:
    """Waiting exactly `retry_after_ms` is enough."""
    clock = FakeClock()
    bucket = TokenBucket(3, 1, clock.monotonic)
    assert bucket.take() is None
    retry = bucket.take()
    assert retry == 334
    clock.advance(retry / 1000)
    assert bucket.take() is None


def test_bucket_rejects_nonsense_parameters() -> None:
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(0, 1, FakeClock().monotonic)


def test_keyed_buckets_are_independent_and_bounded() -> None:
    clock = FakeClock()
    buckets: KeyedBuckets[str] = KeyedBuckets(1, 1, clock.monotonic, max_keys=2)
    assert buckets.take("a") is None
    assert buckets.take("a") is not None
    assert buckets.take("b") is None
    assert buckets.take("c") is None
    assert len(buckets) == 2  # "a" (least recently used) forgotten


def test_window_counter_trips_at_the_limit_within_the_window() -> None:
    """10 protocol errors within 60 s trip it; older ones fall out of the window."""
    clock = FakeClock()
    counter = WindowCounter(10, 60, clock.monotonic)
    assert not any(counter.add() for _ in range(9))
    clock.advance(61)
    assert not counter.add()
    assert len(counter) == 1
    assert not any(counter.add() for _ in range(8))
    assert counter.add()


def test_throttle_allows_one_event_per_interval_per_key() -> None:
    clock = FakeClock()
    throttle: Throttle[str] = Throttle(1.0, clock.monotonic)
    assert throttle.ready("k")
    throttle.mark("k")
    assert not throttle.ready("k")
    assert throttle.ready("other")
    clock.advance(1.0)
    assert throttle.ready("k")


def test_inbound_limits_refuse_past_the_burst_then_call_a_flood_and_a_broken_client() -> None:
    clock = FakeClock()
    limits = InboundLimits(
        rate=1.0,
        burst=2,
        flood_limit=3,
        flood_window=10.0,
        error_limit=2,
        error_window=60.0,
        now=clock.monotonic,
    )
    assert [limits.take(), limits.take()] == [None, None]
    assert limits.take() == 1000
    assert [limits.flooding(), limits.flooding(), limits.flooding()] == [False, False, True]
    clock.advance(1.0)
    assert limits.take() is None
    assert [limits.broken(), limits.broken()] == [False, True]


def test_sliding_window_forgets_an_event_as_it_turns_window_seconds_old() -> None:
    """On the caller's clock: an event `window` seconds old no longer counts; clear forgets all."""
    window = SlidingWindow(60.0)
    assert [window.add(0.0), window.add(30.0), window.add(59.9)] == [1, 2, 3]
    assert window.add(60.0) == 3
    window.clear()
    assert len(window) == 0
