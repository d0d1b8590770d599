"""Capped exponential backoff with jitter: how long to wait before the next attempt (pure).

Used by every retry loop in rtm: connecting to NATS, PostgreSQL and auth (`rtm.shared.connect`),
the local supervisor restarting a crashed process (`rtm.local.backoff`) and the chaos clients
reconnecting (`rtm.chaos.clients`). They differ only in their numbers: the jitter keeps several
waiters from retrying in lockstep, and the cap keeps a long outage from pushing the next attempt
far past the moment the dependency is back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# 2 ** 64 times any sensible base is far beyond any cap; larger exponents would overflow.
_MAX_EXPONENT = 64


@dataclass(frozen=True, slots=True)
class ExponentialBackoff:
    """`base`·`factor`ⁿ⁻¹ seconds before attempt n, at most `cap`, scaled by a jitter factor.

    Attributes:
        base: the delay before attempt 1 (before jitter).
        cap: the delay never exceeds this (before jitter).
        factor: each further attempt multiplies the delay by this.
        jitter: the delay is multiplied by a factor between these two, drawn from `draw`:
            a draw of 0 gives the first, a draw towards 1 the second; (1.0, 1.0) is no jitter.
    """

    base: float
    cap: float
    factor: float = 2.0
    jitter: tuple[float, float] = (1.0, 1.0)

    def delay(self, attempt: int, draw: Callable[[], float]) -> float:
        """Seconds to wait before attempt number `attempt` (1 for the first).

        `draw` returns a float in [0, 1) (`random.random`); tests pass a fixed one.
        """
        if attempt < 1:
            raise ValueError("attempt numbers start at 1")
        raw = min(self.cap, self.base * self.factor ** min(attempt - 1, _MAX_EXPONENT))
        low, high = self.jitter
        return raw * (low + (high - low) * draw())
