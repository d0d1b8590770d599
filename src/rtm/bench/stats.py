"""Latency percentiles: exact, from every sample (a run holds at most a few million)."""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable
from dataclasses import dataclass

PERCENTILES = (50.0, 95.0, 99.0, 99.9)


@dataclass(frozen=True, slots=True)
class Summary:
    """Milliseconds: count of samples, p50, p95, p99, p99.9, max and mean."""

    count: int
    p50: float
    p95: float
    p99: float
    p999: float
    max: float
    mean: float

    def short(self) -> str:
        """`p50/p99` as the table prints it."""
        return f"{fmt_ms(self.p50)} / {fmt_ms(self.p99)}"

    def full(self) -> str:
        """`p50/p95/p99/p99.9`."""
        return " / ".join(fmt_ms(v) for v in (self.p50, self.p95, self.p99, self.p999))


def percentile(ordered: list[float] | array[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending sequence (`pct` in 0..100); NaN when empty."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return float(ordered[min(rank, len(ordered)) - 1])


def summarize(samples: Iterable[float]) -> Summary | None:
    """The summary of `samples` (milliseconds), or None when there is none."""
    ordered = sorted(samples)
    if not ordered:
        return None
    p50, p95, p99, p999 = (percentile(ordered, p) for p in PERCENTILES)
    return Summary(
        count=len(ordered),
        p50=p50,
        p95=p95,
        p99=p99,
        p999=p999,
        max=ordered[-1],
        mean=math.fsum(ordered) / len(ordered),
    )


def fmt_ms(value: float) -> str:
    """A latency for a table cell: 0.42, 3.1, 57, 1234."""
    if math.isnan(value):
        return "-"
    if value < 1:
        return f"{value:.2f}"
    if value < 10:
        return f"{value:.1f}"
    return f"{value:.0f}"


def fmt_rate(value: float) -> str:
    """A rate for a table cell: 0.6, 950, 7.1k, 70k."""
    if value < 10 and value != int(value):
        return f"{value:.1f}"
    if value < 1000:
        return f"{value:.0f}"
    if value < 10_000:
        return f"{value / 1000:.1f}k"
    return f"{value / 1000:.0f}k"


def fmt_bytes(value: float) -> str:
    """A size for a table cell: 812 B, 14.2 KB, 153 MB (decimal units)."""
    if value < 1000:
        return f"{value:.0f} B"
    if value < 1_000_000:
        return f"{value / 1000:.1f} KB"
    if value < 1_000_000_000:
        return f"{value / 1_000_000:.0f} MB"
    return f"{value / 1_000_000_000:.2f} GB"
