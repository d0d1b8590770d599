"""The coalescer: lookups share batched calls, one call in flight at a time; lookups asked while
one is in flight go together in the next."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from rtm.shared.coalesce import Coalescer


class Table:
    """A batch lookup over a dict that records every call it gets."""

    def __init__(self, rows: dict[str, int], *, fail: Exception | None = None) -> None:
        self.rows = rows
        self.calls: list[tuple[list[str], float | None]] = []
        self.fail = fail
        self.gate: asyncio.Event | None = None

    async def lookup(self, keys: Sequence[str], timeout: float | None) -> dict[str, int]:
        self.calls.append((list(keys), timeout))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return {k: self.rows[k] for k in keys if k in self.rows}


async def test_lookups_of_one_turn_share_one_call_and_each_gets_its_answer() -> None:
    table = Table({"a": 1, "b": 2})
    coalescer: Coalescer[str, int] = Coalescer(table.lookup)

    answers = await asyncio.gather(*(coalescer.get(k, 0.5) for k in ["a", "b", "x", "a"]))

    assert answers == [1, 2, None, 1]
    assert table.calls == [(["a", "b", "x"], 0.5)]


async def test_later_turns_make_new_calls() -> None:
    table = Table({"a": 1})
    coalescer: Coalescer[str, int] = Coalescer(table.lookup)

    assert await coalescer.get("a") == 1
    assert await coalescer.get("a") == 1

    assert len(table.calls) == 2


async def test_different_timeouts_and_big_batches_are_split() -> None:
    table = Table({str(i): i for i in range(7)})
    coalescer: Coalescer[str, int] = Coalescer(table.lookup, max_batch=3)

    answers = await asyncio.gather(
        *(coalescer.get(str(i), 1.0) for i in range(5)), coalescer.get("6", None)
    )

    assert answers == [0, 1, 2, 3, 4, 6]
    assert sorted(table.calls, key=str) == sorted(
        [(["0", "1", "2"], 1.0), (["3", "4"], 1.0), (["6"], None)], key=str
    )


async def test_a_failed_batch_fails_every_caller_in_it() -> None:
    coalescer: Coalescer[str, int] = Coalescer(Table({}, fail=TimeoutError()).lookup)

    results = await asyncio.gather(coalescer.get("a"), coalescer.get("b"), return_exceptions=True)

    assert [type(r) for r in results] == [TimeoutError, TimeoutError]


async def test_a_cancelled_caller_does_not_disturb_the_others() -> None:
    table = Table({"a": 1, "b": 2})
    table.gate = asyncio.Event()
    coalescer: Coalescer[str, int] = Coalescer(table.lookup)
    first = asyncio.create_task(coalescer.get("a"))
    second = asyncio.create_task(coalescer.get("b"))
    for _ in range(10):
        await asyncio.sleep(0)
    assert len(table.calls) == 1  # the batch is in flight

    first.cancel()
    table.gate.set()

    assert await second == 2
    with pytest.raises(asyncio.CancelledError):
        await first


async def _turns(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_the_first_lookup_goes_at_once_and_those_asked_meanwhile_go_together_next() -> None:
    table = Table({"a": 1, "b": 2, "c": 3})
    table.gate = asyncio.Event()
    coalescer: Coalescer[str, int] = Coalescer(table.lookup)
    first = asyncio.create_task(coalescer.get("a", 0.5))
    await _turns()
    assert table.calls == [(["a"], 0.5)]  # no timer: it went at once

    later = [asyncio.create_task(coalescer.get(k, 0.5)) for k in ("b", "c")]
    await _turns()
    assert len(table.calls) == 1  # one query in flight: the others wait for it

    table.gate.set()
    assert await first == 1
    assert [await task for task in later] == [2, 3]
    assert table.calls == [(["a"], 0.5), (["b", "c"], 0.5)]


async def test_a_caller_waits_at_most_its_own_deadline_the_query_ahead_included() -> None:
    table = Table({"a": 1, "b": 2})
    table.gate = asyncio.Event()
    coalescer: Coalescer[str, int] = Coalescer(table.lookup)
    first = asyncio.create_task(coalescer.get("a", 0.5))
    await _turns()

    with pytest.raises(TimeoutError):
        await coalescer.get("b", 0.5, wait_s=0.05)

    table.gate.set()
    assert await first == 1
    await _turns()
    assert table.calls == [(["a"], 0.5)]  # "b"'s caller had gone: not asked
