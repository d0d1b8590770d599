"""One hand-moved clock for unit and integration tests: wall time and monotonic time together.

Code under test takes its clocks as constructor parameters; tests pass this one's bound methods
(`clock.now`, `clock.monotonic`, `clock.sleep`) or the clock itself (calling it is `now()`).
Nothing moves it but `advance` and `sleep`, so time-dependent rules are tested exactly.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class FakeClock:
    """Wall-clock and monotonic time, moved only by hand.

    Args:
        start: the wall time at first. By default the real time truncated to the second: tokens
            signed on this clock are also checked by verifiers against the real clock.
        monotonic_start: the monotonic reading at first (any value: only differences count).
    """

    def __init__(self, start: datetime | None = None, *, monotonic_start: float = 1000.0) -> None:
        self.start = start or datetime.now(UTC).replace(microsecond=0)
        self.monotonic_start = monotonic_start
        self.elapsed = 0.0  # seconds moved since `start`
        self.slept: list[float] = []  # what `sleep` was asked to wait, in order

    def now(self) -> datetime:
        """The wall time (aware, UTC)."""
        return self.start + timedelta(seconds=self.elapsed)

    def __call__(self) -> datetime:
        """The wall time: the clock itself is a `Callable[[], datetime]`."""
        return self.now()

    def monotonic(self) -> float:
        """Seconds, for rate limits and caches (`time.monotonic`'s role)."""
        return self.monotonic_start + self.elapsed

    def advance(self, seconds: float = 0.0, **units: float) -> None:
        """Move both clocks on: `advance(1.5)`, `advance(minutes=15)`, `advance(days=30)`."""
        self.elapsed += timedelta(seconds=seconds, **units).total_seconds()

    async def sleep(self, seconds: float) -> None:
        """A sleep that takes no time: the clock moves on by `seconds`, and `slept` records it."""
        self.slept.append(seconds)
        self.advance(seconds)
