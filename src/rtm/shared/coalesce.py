"""Point lookups answered by batched queries, one query in flight at a time.

Every send asks PostgreSQL whether it was stored already (and, when its conversation's
membership is not cached, who the members are). One query per send costs a pool acquire and a
round trip each, and under load the sends queue behind a small pool (a profile of the producer
at 1,500 msgs/s put 22% of its CPU there, half of it in `Pool._acquire`). So the lookups go
out together instead, with no timer: the first lookup starts a query at once (with whatever
else was asked in the same loop turn); lookups asked while that query is in flight wait, and
all of them go in the next query, started as soon as the first ends. The batch grows with the
load and the latency of PostgreSQL, so there is one round trip in flight and the number of
queries stays about the number of round trips that fit in the time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# Answers every key it is given: a missing key's value is None.
BatchLookup = Callable[[Sequence[K], float | None], Awaitable[dict[K, V]]]


class Coalescer(Generic[K, V]):
    """Gathers `get(key, timeout)` calls and answers them with `lookup(keys, timeout)`: per
    `timeout` value, one query in flight at a time, and every key asked meanwhile in the next
    (at most `max_batch` keys per query; the rest go in the one after).

    A failed query fails every caller in it with the same exception; a caller that is cancelled
    (or gives up: see `get`'s `wait_s`) is simply not answered, and a key whose callers have all
    gone is not asked.
    """

    def __init__(self, lookup: BatchLookup[K, V], *, max_batch: int = 1000) -> None:
        self._lookup = lookup
        self._max_batch = max_batch
        self._waiting: dict[float | None, dict[K, list[asyncio.Future[V | None]]]] = {}
        self._running: dict[float | None, asyncio.Task[None]] = {}

    async def get(
        self, key: K, timeout: float | None = None, wait_s: float | None = None
    ) -> V | None:
        """The value of `key` (None: not found), by a query run with `timeout`.

        `wait_s` bounds the caller's whole wait, the query in flight ahead of its own included:
        past it, `TimeoutError` (the query goes on for the others).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[V | None] = loop.create_future()
        self._waiting.setdefault(timeout, {}).setdefault(key, []).append(future)
        if timeout not in self._running:
            # Its first step runs in the next loop turn: what this turn asks goes with it.
            self._running[timeout] = loop.create_task(self._run(timeout), name="coalesced-lookup")
        if wait_s is None:
            return await future
        async with asyncio.timeout(wait_s):
            return await future

    async def _run(self, timeout: float | None) -> None:
        """Query for what waits, until nothing does."""
        try:
            while True:
                callers = self._take(timeout)
                if callers is None:
                    return
                if callers:
                    await self._answer(callers, timeout)
        except asyncio.CancelledError:
            for futures in self._waiting.pop(timeout, {}).values():
                for future in futures:
                    future.cancel()
            raise
        finally:
            del self._running[timeout]

    def _take(self, timeout: float | None) -> dict[K, list[asyncio.Future[V | None]]] | None:
        """The next batch (keys whose callers all gave up left out); None when none waits."""
        waiting = self._waiting.get(timeout)
        if not waiting:
            self._waiting.pop(timeout, None)
            return None
        if len(waiting) <= self._max_batch:
            del self._waiting[timeout]
            batch = waiting
        else:
            keys = list(waiting)[: self._max_batch]
            batch = {key: waiting.pop(key) for key in keys}
        return {
            key: futures
            for key, futures in batch.items()
            if not all(future.done() for future in futures)
        }

    async def _answer(
        self, callers: dict[K, list[asyncio.Future[V | None]]], timeout: float | None
    ) -> None:
        try:
            found = await self._lookup(list(callers), timeout)
        except asyncio.CancelledError:
            for futures in callers.values():
                for future in futures:
                    future.cancel()
            raise
        except Exception as exc:  # not handled here: every caller raises it, as if its own
            for futures in callers.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(exc)
            return
        for key, futures in callers.items():
            value = found.get(key)
            for future in futures:
                if not future.done():
                    future.set_result(value)
