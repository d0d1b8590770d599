"""Pure rate and abuse limits, driven by an injected monotonic clock (seconds); producer and
consumer apply the same ones to what their clients send.

- `TokenBucket`: frames per second with bursts (docs/protocol.md, "5. Producer": 20/s, bursts of
40).
- `KeyedBuckets`: one bucket per key (user) with a bounded number of keys, for HTTP sends.
- `SlidingWindow`, `WindowCounter`: how many events in the last `window` seconds (protocol
  errors, floods; the local supervisor's crashes).
- `InboundLimits`: a WebSocket connection's rate, flood and protocol-error limits.
- `Throttle`: at most one event per key per interval (typing indicators).
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

Now = Callable[[], float]
K = TypeVar("K", bound=Hashable)


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up; each event takes one. Every WebSocket
    connection has one (`InboundLimits`): slots keep it small."""

    __slots__ = ("_burst", "_now", "_rate", "_tokens", "_updated")

    def __init__(self, rate: float, burst: int, now: Now) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self._rate = rate
        self._burst = float(burst)
        self._now = now
        self._tokens = float(burst)
        self._updated = now()

    def _refill(self) -> None:
        moment = self._now()
        elapsed = max(0.0, moment - self._updated)
        self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
        self._updated = moment

    def take(self) -> int | None:
        """Take a token: None when allowed, else the milliseconds until one is available."""
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return None
        return max(1, math.ceil((1.0 - self._tokens) / self._rate * 1000))

    @property
    def full(self) -> bool:
        self._refill()
        return self._tokens >= self._burst


class KeyedBuckets(Generic[K]):
    """A `TokenBucket` per key; the least recently used keys are forgotten past `max_keys`
    (a forgotten key starts again with a full bucket, which only ever errs on the lenient side)."""

    def __init__(self, rate: float, burst: int, now: Now, max_keys: int = 100_000) -> None:
        self._rate = rate
        self._burst = burst
        self._now = now
        self._max_keys = max_keys
        self._buckets: OrderedDict[K, TokenBucket] = OrderedDict()

    def take(self, key: K) -> int | None:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self._rate, self._burst, self._now)
            while len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.take()

    def __len__(self) -> int:
        return len(self._buckets)


class SlidingWindow:
    """The events of the last `window` seconds, at moments the caller gives (its own clock); an
    event `window` seconds old no longer counts."""

    __slots__ = ("_events", "_window")

    def __init__(self, window: float) -> None:
        self._window = window
        self._events: deque[float] = deque()

    def add(self, moment: float) -> int:
        """Record one event at `moment`; returns how many fall within the window ending then."""
        self._events.append(moment)
        while self._events and self._events[0] <= moment - self._window:
            self._events.popleft()
        return len(self._events)

    def clear(self) -> None:
        self._events.clear()

    def __len__(self) -> int:
        return len(self._events)


class WindowCounter:
    """Counts events in a sliding window of `window` seconds of `now`; `add` says when they
    reach `limit`."""

    __slots__ = ("_events", "_limit", "_now")

    def __init__(self, limit: int, window: float, now: Now) -> None:
        self._limit = limit
        self._now = now
        self._events = SlidingWindow(window)

    def add(self) -> bool:
        """Record one event; True when this makes `limit` events within the window."""
        return self._events.add(self._now()) >= self._limit

    def __len__(self) -> int:
        return len(self._events)


class InboundLimits:
    """What one WebSocket connection's client may send (producer and consumer alike,
    docs/protocol.md, "5. Producer"): `rate` frames per second with bursts of `burst`; `flood_limit`
    refused frames within `flood_window` mean a flood (close 4013), `error_limit` protocol errors
    within `error_window` a broken client (close 4501). The two counters are made on first use: most
    connections never need them, and an idle connection should cost little memory."""

    __slots__ = (
        "_bucket",
        "_error_limit",
        "_errors",
        "_flood_limit",
        "_floods",
        "_now",
        "_windows",
    )

    def __init__(
        self,
        *,
        rate: float,
        burst: int,
        flood_limit: int,
        flood_window: float,
        error_limit: int,
        error_window: float,
        now: Now,
    ) -> None:
        self._bucket = TokenBucket(rate, burst, now)
        self._now = now
        self._flood_limit = flood_limit
        self._error_limit = error_limit
        self._windows = (flood_window, error_window)
        self._floods: WindowCounter | None = None
        self._errors: WindowCounter | None = None

    def take(self) -> int | None:
        """Admit one frame: None when allowed, else the milliseconds until one would be."""
        return self._bucket.take()

    def flooding(self) -> bool:
        """Count one refused frame; True when that makes a flood."""
        if self._floods is None:
            self._floods = WindowCounter(self._flood_limit, self._windows[0], self._now)
        return self._floods.add()

    def broken(self) -> bool:
        """Count one protocol error; True when that makes too many."""
        if self._errors is None:
            self._errors = WindowCounter(self._error_limit, self._windows[1], self._now)
        return self._errors.add()


class Throttle(Generic[K]):
    """At most one event per key every `interval` seconds; remembers at most `max_keys` keys."""

    def __init__(self, interval: float, now: Now, max_keys: int = 100_000) -> None:
        self._interval = interval
        self._now = now
        self._max_keys = max_keys
        self._last: OrderedDict[K, float] = OrderedDict()

    def ready(self, key: K) -> bool:
        """Whether an event for `key` may happen now (does not record it)."""
        last = self._last.get(key)
        return last is None or self._now() - last >= self._interval

    def forget(self, key: K) -> None:
        self._last.pop(key, None)

    def mark(self, key: K) -> None:
        self._last[key] = self._now()
        self._last.move_to_end(key)
        while len(self._last) > self._max_keys:
            self._last.popitem(last=False)
