"""Point lookups made in the same event-loop turn, answered by one batched query.

Every send asks PostgreSQL whether it was stored already. One query per send costs a pool
acquire and a round trip each, and under load the sends queue behind a small pool (a profile of
the producer at 1,500 msgs/s put 22% of its CPU there, half of it in `Pool._acquire`). The
lookups of one loop turn go out together instead: the batch grows with the load, so the number
of queries stays about the number of loop turns that have lookups to make.
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
    """Gathers `get(key)` calls until the loop turn ends, then runs `lookup` once per timeout
    value for all of them (at most `max_batch` keys per query).

    A failed batch fails every caller in it with the same exception; a caller that is cancelled
    meanwhile is simply not answered.
    """

    def __init__(self, lookup: BatchLookup[K, V], *, max_batch: int = 500) -> None:
        self._lookup = lookup
        self._max_batch = max_batch
        self._waiting: dict[float | None, dict[K, list[asyncio.Future[V | None]]]] = {}
        self._scheduled = False
        self._running: set[asyncio.Task[None]] = set()

    async def get(self, key: K, timeout: float | None = None) -> V | None:
        future: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(timeout, {}).setdefault(key, []).append(future)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        waiting, self._waiting = self._waiting, {}
        for timeout, by_key in waiting.items():
            keys = list(by_key)
            for start in range(0, len(keys), self._max_batch):
                chunk = {key: by_key[key] for key in keys[start : start + self._max_batch]}
                task = asyncio.create_task(self._answer(chunk, timeout), name="coalesced-lookup")
                self._running.add(task)
                task.add_done_callback(self._running.discard)

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
