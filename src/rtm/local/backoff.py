"""When to restart a crashed process, and when to stop trying (pure: no clock, no I/O).

Restarting at once after a crash turns a process that dies on start into a busy loop that floods
the log; restarting never leaves the system down after one transient fault. So: capped
exponential backoff with jitter (several crashed processes do not restart in lockstep), and a
crash budget per time window, after which the supervisor gives up loudly instead of hiding a
service that can never start.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from rtm.shared.backoff import ExponentialBackoff
from rtm.shared.limits import SlidingWindow


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """How the supervisor paces restarts.

    Attributes:
        initial: delay before the first restart, in seconds.
        factor: each further crash in the window multiplies the delay by this.
        cap: the delay never exceeds this (before jitter).
        jitter: fraction of the delay drawn at random, e.g. 0.2 gives 80-100% of the delay.
        max_restarts: crashes tolerated within `window`; one more and the supervisor gives up.
        window: seconds a crash counts against the budget; a process that stays up this long
            starts again from `initial`.
    """

    initial: float = 0.5
    factor: float = 2.0
    cap: float = 30.0
    jitter: float = 0.2
    max_restarts: int = 5
    window: float = 60.0

    def __post_init__(self) -> None:
        if self.initial < 0 or self.cap < self.initial or self.factor < 1:
            raise ValueError("restart policy needs 0 <= initial <= cap and factor >= 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("restart jitter must be in [0, 1)")
        if self.max_restarts < 0 or self.window <= 0:
            raise ValueError("restart budget needs max_restarts >= 0 and window > 0")

    def delay(self, restart: int, random: Callable[[], float]) -> float:
        """Seconds to wait before restart number `restart` (1 for the first).

        `random` returns a float in [0, 1) (`random.random`); tests pass a fixed one.
        """
        if restart < 1:
            raise ValueError("restart numbers start at 1")
        # The jitter only shortens the delay, so that `cap` is the longest wait.
        backoff = ExponentialBackoff(
            self.initial, self.cap, self.factor, jitter=(1.0, 1.0 - self.jitter)
        )
        return backoff.delay(restart, random)


@dataclass(slots=True)
class CrashHistory:
    """The crashes of one process that still count against its budget."""

    policy: RestartPolicy
    _times: SlidingWindow = field(init=False)

    def __post_init__(self) -> None:
        self._times = SlidingWindow(self.policy.window)

    def record(self, now: float) -> int:
        """Note a crash at monotonic time `now`; returns how many count within the window."""
        return self._times.add(now)

    def exhausted(self) -> bool:
        """True once more than `max_restarts` crashes fell within one window."""
        return len(self._times) > self.policy.max_restarts

    def clear(self) -> None:
        """Forget past crashes (a deliberate restart, e.g. after the code changed)."""
        self._times.clear()
