"""Capped exponential backoff with jitter, with the jitter drawn by the test."""

from __future__ import annotations

import pytest

from rtm.shared.backoff import ExponentialBackoff


def test_the_delay_grows_by_the_factor_up_to_the_cap() -> None:
    """Without jitter: base, base·factor, ... and never more than the cap."""
    backoff = ExponentialBackoff(0.2, 1.0)
    delays = [backoff.delay(n, lambda: 0.0) for n in range(1, 6)]
    assert delays == pytest.approx([0.2, 0.4, 0.8, 1.0, 1.0])
    assert backoff.delay(100_000, lambda: 0.0) == pytest.approx(1.0)


def test_the_jitter_scales_the_delay_between_its_two_factors() -> None:
    """A draw of 0 gives the first factor, a draw towards 1 the second; either may be larger."""
    wide = ExponentialBackoff(1.0, 5.0, jitter=(0.75, 1.25))
    assert wide.delay(1, lambda: 0.0) == pytest.approx(0.75)
    assert wide.delay(1, lambda: 0.5) == pytest.approx(1.0)
    shortening = ExponentialBackoff(1.0, 5.0, jitter=(1.0, 0.8))
    assert shortening.delay(1, lambda: 0.0) == pytest.approx(1.0)
    assert shortening.delay(1, lambda: 0.999999) == pytest.approx(0.8, abs=1e-5)


def test_attempt_numbers_start_at_one() -> None:
    with pytest.raises(ValueError, match="start at 1"):
        ExponentialBackoff(1.0, 5.0).delay(0, lambda: 0.0)
