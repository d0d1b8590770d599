"""Reconnect delays: exponential backoff with full jitter.

A random delay in [0, min(cap, base * 2^attempt)) (AWS architecture blog, "Exponential Backoff
And Jitter"): full jitter spreads the clients of a restarted server over the whole window
instead of letting them come back in waves. Same rule as clients/js/src/backoff.ts.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """The window of the first retry and the largest one, in seconds.

    The cap (5 s, as Socket.IO) means a restarted server is found again within about 5 s.
    """

    base_s: float = 0.25
    cap_s: float = 5.0

    def delay(self, attempt: int, random: Callable[[], float] = _random.random) -> float:
        """The delay before retry number `attempt` (0 for the first), in seconds."""
        window = min(self.cap_s, self.base_s * 2.0 ** min(max(attempt, 0), 30))
        return random() * window
