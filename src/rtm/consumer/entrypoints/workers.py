"""The partition manager: which partitions this instance processes, and their worker loops.

Every `lease_ttl / 3` seconds it beats its heartbeat, computes its fair share
(`ceil(partitions / live instances)`), renews the leases it holds, takes free ones up to its share
and gives back extras. Each owned partition runs a `PartitionWorker`; on any error the worker is
restarted from the offset committed in PostgreSQL after a short backoff, so a crash, a lost
lease or a PostgreSQL outage never skips or reorders a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from dataclasses import dataclass, field

from rtm.consumer.domain.exceptions import OffsetMoved
from rtm.consumer.domain.ports import Fanout, MessageStore, PartitionLeases, PartitionSources
from rtm.consumer.entrypoints import metrics
from rtm.consumer.services import PartitionWorker

logger = logging.getLogger(__name__)
LAG_REPORT_S = 5.0
STOP_STEP_S = 2.0  # bound on each step of a graceful stop (a dead NATS must not hold it up)


@dataclass
class _Owned:
    revision: int
    task: asyncio.Task[None]
    stopping: bool = field(default=False)


class PartitionManager:
    """Owns partitions through leases and runs one worker loop per owned partition."""

    def __init__(
        self,
        *,
        partitions: int,
        leases: PartitionLeases,
        sources: PartitionSources,
        store: MessageStore,
        fanout: Fanout,
        lease_ttl: float,
        batch_size: int,
        fetch_timeout: float,
    ) -> None:
        self._partitions = partitions
        self._leases = leases
        self._sources = sources
        self._store = store
        self._fanout = fanout
        self._tick = lease_ttl / 3
        self._batch_size = batch_size
        self._fetch_timeout = fetch_timeout
        self._owned: dict[int, _Owned] = {}
        self.stored_batches = 0

    @property
    def owned(self) -> list[int]:
        return sorted(self._owned)

    async def run(self) -> None:
        """Balance leases forever (cancel to stop; then call `stop`)."""
        await self._leases.setup()
        while True:
            try:
                await self._balance()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("lease round failed (%s); retrying", exc)
            await asyncio.sleep(self._tick)

    async def _balance(self) -> None:
        live = await self._leases.heartbeat()
        share = math.ceil(self._partitions / live)
        for partition, owned in list(self._owned.items()):
            if owned.task.done():
                await self._drop(partition)
                continue
            revision = await self._leases.renew(partition, owned.revision)
            if revision is None:
                logger.warning("lost the lease of partition %s", partition)
                await self._drop(partition, release=False)
            else:
                owned.revision = revision
        free = [p for p in range(self._partitions) if p not in self._owned]
        random.shuffle(free)
        for partition in free:
            if len(self._owned) >= share:
                break
            revision = await self._leases.try_acquire(partition)
            if revision is not None:
                logger.info("took partition %s", partition)
                task = asyncio.create_task(self._work(partition), name=f"partition-{partition}")
                self._owned[partition] = _Owned(revision, task)
        while len(self._owned) > share:
            partition = max(self._owned)
            logger.info("handing partition %s back (fair share is %s)", partition, share)
            await self._drop(partition)
        metrics.PARTITIONS_OWNED.set(len(self._owned))

    async def _drop(self, partition: int, *, release: bool = True) -> None:
        owned = self._owned.pop(partition)
        owned.task.cancel()
        # wait() rather than awaiting the task: our own cancellation must not be swallowed
        await asyncio.wait({owned.task}, timeout=STOP_STEP_S)
        if release:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._leases.release(partition, owned.revision), STOP_STEP_S)

    def abort(self) -> None:
        """Cancel every worker at once (a stop that ran out of time)."""
        for owned in self._owned.values():
            owned.task.cancel()
        self._owned.clear()

    async def _work(self, partition: int) -> None:
        backoff = 0.1
        while True:
            source = None
            try:
                offset = await self._store.load_offset(partition)
                source = await self._sources.open(partition, offset)
                worker = PartitionWorker(
                    partition,
                    offset,
                    source,
                    self._store,
                    self._fanout,
                    batch_size=self._batch_size,
                    fetch_timeout=self._fetch_timeout,
                )
                backoff = 0.1
                reported = 0.0
                while True:
                    if time.monotonic() - reported > LAG_REPORT_S:
                        reported = time.monotonic()
                        pending, redelivered = await source.lag()
                        metrics.JETSTREAM_PENDING.labels(str(partition)).set(pending)
                        metrics.JETSTREAM_REDELIVERED.labels(str(partition)).set(redelivered)
                    began = time.perf_counter()
                    outcome = await worker.step()
                    if outcome.delivered:
                        self.stored_batches += 1
                        metrics.BATCH_SECONDS.observe(time.perf_counter() - began)
                        metrics.BATCH_SIZE.observe(outcome.delivered)
                        metrics.MESSAGES_STORED.inc(outcome.stored)
                        metrics.MESSAGES_SKIPPED.inc(outcome.skipped)
            except asyncio.CancelledError:
                raise
            except OffsetMoved as exc:
                metrics.WORKER_RESTARTS.labels("offset_moved").inc()
                logger.warning("%s; restarting from the committed offset", exc)
            except Exception as exc:
                metrics.WORKER_RESTARTS.labels("error").inc()
                logger.warning(
                    "partition %s worker failed: %r; retrying in %.1fs", partition, exc, backoff
                )
                await asyncio.sleep(backoff + random.uniform(0, backoff / 2))  # noqa: S311
                backoff = min(backoff * 2, 5.0)
            finally:
                if source is not None:
                    await source.close()

    async def stop(self) -> None:
        """Finish: stop every worker (the current batch is committed or rolled back as a
        whole), release the leases so the other instances take over at once."""
        for partition in list(self._owned):
            await self._drop(partition)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._leases.leave(), STOP_STEP_S)
