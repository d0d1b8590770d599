"""GC tuning: thresholds raised, start-up objects frozen, every collection's pause measured."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from rtm.shared import gc_tuning


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds, callbacks = gc.get_threshold(), list(gc.callbacks)
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    gc.callbacks[:] = callbacks


def collections_observed(generation: int) -> float:
    for metric in gc_tuning.GC_PAUSES.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count") and sample.labels == {"generation": str(generation)}:
                return sample.value
    return 0.0


def test_tune_gc_raises_the_young_threshold_freezes_and_times_collections(
    restored_gc: None,
) -> None:
    before = collections_observed(2)

    gc_tuning.tune_gc(12_345)

    assert gc.get_threshold()[0] == 12_345
    assert gc.get_freeze_count() > 0
    gc.collect()
    assert collections_observed(2) == before + 1
