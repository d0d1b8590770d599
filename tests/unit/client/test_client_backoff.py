"""Reconnect delays: full jitter in a window that doubles up to the cap."""

from __future__ import annotations

import pytest

from rtm.client import Backoff


def test_the_window_doubles_from_the_base_up_to_the_cap() -> None:
    """A draw just below 1 gives the whole window: base, 2·base, ... never past the cap."""
    backoff = Backoff(base_s=0.25, cap_s=5.0)
    windows = [backoff.delay(n, lambda: 1.0) for n in range(7)]
    assert windows == pytest.approx([0.25, 0.5, 1.0, 2.0, 4.0, 5.0, 5.0])
    assert backoff.delay(10_000, lambda: 1.0) == pytest.approx(5.0)


def test_full_jitter_draws_anywhere_in_the_window_down_to_zero() -> None:
    """The delay is the draw times the window, so clients spread over all of it."""
    backoff = Backoff(base_s=1.0, cap_s=8.0)
    assert backoff.delay(3, lambda: 0.0) == 0.0
    assert backoff.delay(3, lambda: 0.5) == pytest.approx(4.0)


def test_random_delays_stay_within_the_window() -> None:
    backoff = Backoff()
    delays = [backoff.delay(2) for _ in range(200)]
    assert all(0.0 <= d < 1.0 for d in delays)
    assert len(set(delays)) > 100
