"""Garbage-collector tuning the services apply once, before they serve: raised thresholds, start-up
objects frozen, and every collection's pause measured (`rtm_gc_pause_seconds`)."""

from __future__ import annotations

import gc
import time
from typing import Any

from prometheus_client import Histogram

GC_PAUSES = Histogram(
    "rtm_gc_pause_seconds",
    "Cyclic garbage collections: the event loop stands still for each one",
    ["generation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)


class _PauseTimer:
    """Times each collection (gc.callbacks calls it at the start and at the stop)."""

    def __init__(self) -> None:
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            GC_PAUSES.labels(str(info["generation"])).observe(time.perf_counter() - self._started)


def tune_gc(young_threshold: int) -> None:
    """Collect less often, and never scan what start-up built (modules, settings, the app): it
    lives as long as the process. Reference counting still frees almost everything at once; the
    collector is only for cycles, which a service makes few of.

    The threshold is a trade (`RTM_GC_YOUNG_THRESHOLD`): at CPython's 700 a profile of the
    producer at 1,500 msgs/s spent 30% of its loop in the collector; at 50,000 the consumer,
    after 10,000 connections had come and gone, paused 16 ms per young and 270 ms per
    middle-generation collection, which the fan-out benchmark saw as p99 spikes of 100 ms.
    Every pause is measured (`rtm_gc_pause_seconds`)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(young_threshold, older, oldest)
    gc.callbacks.append(_PauseTimer())
