"""`PerTurn`: per-message metrics added up in a loop turn reach prometheus_client at its end,
every one of them."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Counter, Histogram

from rtm.producer.entrypoints.metrics import PerTurn


async def test_counts_of_a_turn_are_added_once_at_its_end_and_none_is_lost() -> None:
    registry = CollectorRegistry()
    counter = Counter("t_total", "t", ["kind"], registry=registry)
    histogram = Histogram("t_seconds", "t", buckets=(0.01, 0.1), registry=registry)
    per_turn = PerTurn()
    a, b = counter.labels("a"), counter.labels("b")

    for _ in range(3):
        per_turn.inc(a)
    per_turn.inc(b)
    per_turn.observe(histogram, 0.005)
    per_turn.observe(histogram, 0.05)
    assert registry.get_sample_value("t_total", {"kind": "a"}) == 0  # not yet: end of turn

    await asyncio.sleep(0)
    assert registry.get_sample_value("t_total", {"kind": "a"}) == 3
    assert registry.get_sample_value("t_total", {"kind": "b"}) == 1
    assert registry.get_sample_value("t_seconds_count") == 2
    assert registry.get_sample_value("t_seconds_bucket", {"le": "0.01"}) == 1

    per_turn.inc(a)  # a later turn schedules its own flush
    await asyncio.sleep(0)
    assert registry.get_sample_value("t_total", {"kind": "a"}) == 4
