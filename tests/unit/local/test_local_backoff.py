"""Restart pacing: capped exponential backoff with jitter, and the crash budget."""

from __future__ import annotations

import pytest

from rtm.local.backoff import CrashHistory, RestartPolicy


def no_jitter() -> float:
    return 0.0


def most_jitter() -> float:
    return 0.999999


def test_first_restart_waits_the_initial_delay() -> None:
    """Restart 1 waits `initial` when the jitter draws nothing."""
    assert RestartPolicy(initial=0.5).delay(1, no_jitter) == pytest.approx(0.5)


def test_each_further_restart_multiplies_the_delay() -> None:
    """The delay doubles per restart by default."""
    policy = RestartPolicy(initial=0.5, cap=100)
    delays = [policy.delay(n, no_jitter) for n in range(1, 6)]
    assert delays == pytest.approx([0.5, 1.0, 2.0, 4.0, 8.0])


def test_delay_never_exceeds_the_cap() -> None:
    """However many restarts, the wait stays at the cap (no overflow for huge counts)."""
    policy = RestartPolicy(initial=0.5, cap=30)
    assert policy.delay(7, no_jitter) == pytest.approx(30)
    assert policy.delay(10_000, no_jitter) == pytest.approx(30)


def test_jitter_shortens_the_delay_by_at_most_its_fraction() -> None:
    """With jitter 0.2 the delay falls within 80-100% of the backoff."""
    policy = RestartPolicy(initial=1.0, jitter=0.2)
    assert policy.delay(1, most_jitter) == pytest.approx(0.8, abs=1e-5)
    assert 0.8 <= policy.delay(1, lambda: 0.5) <= 1.0


def test_restart_numbers_start_at_one() -> None:
    with pytest.raises(ValueError, match="start at 1"):
        RestartPolicy().delay(0, no_jitter)


@pytest.mark.parametrize(
    "values",
    [{"initial": -1}, {"initial": 5, "cap": 1}, {"factor": 0.5}, {"jitter": 1.0}, {"window": 0}],
)
def test_nonsense_policies_are_refused(values: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="restart"):
        RestartPolicy(**values)  # type: ignore[arg-type]


def test_budget_is_exhausted_after_more_crashes_than_allowed_within_the_window() -> None:
    """max_restarts=2: the third crash within the window gives up."""
    history = CrashHistory(RestartPolicy(max_restarts=2, window=60))
    assert history.record(0.0) == 1
    assert history.record(10.0) == 2
    assert not history.exhausted()
    assert history.record(20.0) == 3
    assert history.exhausted()


def test_crashes_older_than_the_window_no_longer_count() -> None:
    """A process that stayed up longer than the window starts again from the first delay."""
    history = CrashHistory(RestartPolicy(max_restarts=2, window=60))
    history.record(0.0)
    history.record(10.0)
    assert history.record(100.0) == 1
    assert not history.exhausted()


def test_clearing_forgets_every_crash() -> None:
    history = CrashHistory(RestartPolicy(max_restarts=0))
    history.record(0.0)
    assert history.exhausted()
    history.clear()
    assert not history.exhausted()
