"""The partition manager: which partitions this instance processes, and their worker loops.

Every `lease_ttl / 5` seconds, and at once when one of its workers ends, it beats its
heartbeat, computes its fair share (`ceil(partitions / live instances)`), renews the leases it
holds, takes free ones up to its share and hands extras back.

Leases decide who *should* work a partition; they cannot decide who *does*, because a holder may
not notice in time that it lost one. What makes two workers on one partition harmless is proven
in PostgreSQL and JetStream instead:

* every acquisition carries a fencing token that is larger than any before it. The worker claims
  the partition with it (`MessageStore.claim`) and every batch commits only while its token is
  still the partition's newest, so a worker that was handed back, lost its lease or was simply
  late can never commit again. A fenced worker stops for good;
* each worker reads from a JetStream consumer of its own whose first delivery is checked against
  the partition's first message after the committed offset (`PartitionSources.open`): nothing
  another worker fetched can make it skip a message.

A partition that is handed back, or whose lease was lost, is stopped and *awaited* before its
lease is released: the worker checks a stop flag before every step, and it is cancelled again on
every round until it has ended (a cancellation swallowed inside a library cannot leave it
running). Any other failure restarts the worker from the committed offset after a short backoff,
so a crash or a PostgreSQL outage never skips or reorders a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time

from rtm.consumer.domain.exceptions import (
    DeliveryGap,
    Fenced,
    OffsetMoved,
    OutOfOrder,
    Unavailable,
)
from rtm.consumer.domain.model import Lease
from rtm.consumer.domain.ports import Fanout, MessageStore, PartitionLeases, PartitionSources
from rtm.consumer.entrypoints import metrics
from rtm.consumer.services import PartitionWorker
from rtm.shared.backoff import ExponentialBackoff
from rtm.shared.connect import NATS_FAILURES

logger = logging.getLogger(__name__)
LAG_REPORT_S = 5.0
STOP_STEP_S = 2.0  # bound on each network step of a stop (a dead NATS must not hold it up)
RECANCEL_S = 0.5  # a stopping worker is cancelled again this often until it has ended
SLOW_STOP_WARN_S = 5.0
# A failed worker restarts after 0.1 s doubling to 5 s, plus up to half as much again (jitter).
WORKER_RESTART = ExponentialBackoff(base=0.1, cap=5.0, jitter=(1.0, 1.5))
# What a lease round or a partition worker's step raises when a dependency fails or the source
# cannot vouch for a batch: logged in one line, and tried again. Anything else is a bug: logged
# with its traceback, and tried again too (the loops are the last line of defence).
EXPECTED_FAILURES: tuple[type[BaseException], ...] = (
    *NATS_FAILURES,
    Unavailable,
    DeliveryGap,
    OutOfOrder,
)


class _Ownership:
    """One partition this instance works: its lease, its worker, and whether it is stopping.

    `held` is False once a renewal found the lease gone: there is nothing left to release.
    """

    __slots__ = ("held", "lease", "partition", "stopping_since", "task", "warned_at")

    def __init__(self, partition: int, lease: Lease) -> None:
        self.partition = partition
        self.lease = lease
        self.held = True
        self.stopping_since: float | None = None
        self.warned_at = 0.0
        self.task: asyncio.Task[None] | None = None

    @property
    def stopping(self) -> bool:
        return self.stopping_since is not None

    @property
    def ended(self) -> bool:
        return self.task is not None and self.task.done()


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
        self._tick = lease_ttl / 5
        self._batch_size = batch_size
        self._fetch_timeout = fetch_timeout
        self._owned: dict[int, _Ownership] = {}
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._closing = False
        self.last_round: float | None = None  # monotonic time of the last round that worked
        self.stored_batches = 0

    @property
    def owned(self) -> list[int]:
        """The partitions this instance works and is not giving up."""
        return sorted(p for p, o in self._owned.items() if not o.stopping)

    def start(self) -> None:
        """Balance leases in the background until `stop`."""
        self._loop_task = asyncio.create_task(self.run(), name="partition-manager")

    async def run(self) -> None:
        """Balance leases forever (cancel to stop; then call `stop`)."""
        ready = False
        while not self._closing:
            self._wake.clear()  # before the round: a worker ending during it wakes the next
            try:
                if not ready:
                    await self._leases.setup()
                    ready = True
                await self._balance()
                self.last_round = time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # last line of defence of the lease loop: log, go on
                if isinstance(exc, EXPECTED_FAILURES):
                    logger.warning("lease round failed (%r); retrying", exc)
                else:
                    logger.exception("lease round failed; retrying")
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation
            # that arrives as the event is set, and the loop would take leases after `stop`.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._tick):
                    await self._wake.wait()

    async def _balance(self) -> None:
        live = await self._leases.heartbeat()
        share = math.ceil(self._partitions / live)
        for partition, owned in list(self._owned.items()):
            if owned.ended:
                await self._forget(owned)
                continue
            if owned.held:
                revision = await self._leases.renew(partition, owned.lease.revision)
                if revision is None:
                    logger.warning("lost the lease of partition %s; stopping its worker", partition)
                    owned.held = False
                    self._stop(owned)
                else:
                    owned.lease = Lease(owned.lease.token, revision)
            if owned.stopping:
                self._stop(owned)  # again: a swallowed cancellation must not leave it running
        active = self.owned
        free = [p for p in range(self._partitions) if p not in self._owned]
        random.shuffle(free)
        for partition in free:
            if len(active) >= share:
                break
            lease = await self._leases.try_acquire(partition)
            if lease is not None:
                logger.info("took partition %s", partition)
                self._start(partition, lease)
                active.append(partition)
        for partition in sorted(active)[share:]:
            logger.info("handing partition %s back (fair share is %s)", partition, share)
            self._stop(self._owned[partition])
        metrics.PARTITIONS_OWNED.set(len(self.owned))

    def _start(self, partition: int, lease: Lease) -> None:
        owned = _Ownership(partition, lease)
        owned.task = asyncio.create_task(self._work(owned), name=f"partition-{partition}")
        owned.task.add_done_callback(lambda _: self._wake.set())  # release without waiting a tick
        self._owned[partition] = owned

    def _stop(self, owned: _Ownership) -> None:
        now = time.monotonic()
        if owned.stopping_since is None:
            owned.stopping_since = now
        elif now - owned.stopping_since > SLOW_STOP_WARN_S and now - owned.warned_at > 5:
            owned.warned_at = now
            logger.warning(
                "partition %s: its worker has not stopped after %.0fs; the lease is kept until "
                "it has (it cannot commit: a newer owner would fence it out)",
                owned.partition,
                now - owned.stopping_since,
            )
        if owned.task is not None:
            owned.task.cancel()

    async def _forget(self, owned: _Ownership) -> None:
        """The worker has ended: drop the partition and release its lease if we still hold it."""
        del self._owned[owned.partition]
        if owned.held:  # release is best effort itself; a NATS that does not answer: the TTL
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._leases.release(owned.partition, owned.lease.revision), STOP_STEP_S
                )

    def abort(self) -> None:
        """Cancel every worker at once (a stop that ran out of time; leases then expire)."""
        self._closing = True
        if self._loop_task is not None:
            self._loop_task.cancel()
        for owned in self._owned.values():
            self._stop(owned)
        self._owned.clear()

    def health(self) -> str | None:
        """None while lease rounds work (readiness): an instance whose rounds keep failing
        holds no partition and must not look ready."""
        if self._loop_task is None or self._loop_task.done():
            return "the partition manager is not running"
        if self.last_round is None:
            return "no lease round has worked yet"
        silent = time.monotonic() - self.last_round
        if silent > max(5.0, 10 * self._tick):
            return f"no lease round has worked for {silent:.0f}s"
        return None

    async def _work(self, owned: _Ownership) -> None:
        partition, token = owned.partition, owned.lease.token
        failures = 0  # in a row: only a step that worked ends a run of them
        while not owned.stopping:
            worker = PartitionWorker(
                partition,
                token,
                self._store,
                self._sources,
                self._fanout,
                batch_size=self._batch_size,
                fetch_timeout=self._fetch_timeout,
            )
            try:
                await worker.open()
                if worker.rewound:
                    metrics.STREAM_REWINDS.inc()
                reported = 0.0
                while not owned.stopping:
                    if time.monotonic() - reported > LAG_REPORT_S:
                        reported = time.monotonic()
                        pending, redelivered = await worker.lag()
                        metrics.JETSTREAM_PENDING.labels(str(partition)).set(pending)
                        metrics.JETSTREAM_REDELIVERED.labels(str(partition)).set(redelivered)
                    began = time.perf_counter()
                    outcome = await worker.step()
                    failures = 0
                    if outcome.delivered:
                        self.stored_batches += 1
                        metrics.BATCH_SECONDS.observe(time.perf_counter() - began)
                        metrics.BATCH_SIZE.observe(outcome.delivered)
                        metrics.MESSAGES_STORED.inc(outcome.stored)
                        metrics.MESSAGES_SKIPPED.inc(outcome.skipped)
            except asyncio.CancelledError:
                raise
            except Fenced as exc:
                metrics.WORKERS_FENCED.inc()
                logger.warning("%s; stopping its worker", exc)
                return
            except OffsetMoved as exc:
                metrics.WORKER_RESTARTS.labels("offset_moved").inc()
                logger.warning("%s; restarting from the committed offset", exc)
            except Exception as exc:  # last line of defence of the worker: log, restart it
                metrics.WORKER_RESTARTS.labels("error").inc()
                failures += 1
                pause = WORKER_RESTART.delay(failures, random.random)
                if isinstance(exc, EXPECTED_FAILURES):
                    logger.warning(
                        "partition %s worker failed: %r; retrying in %.1fs", partition, exc, pause
                    )
                else:
                    logger.exception(
                        "partition %s worker failed; retrying in %.1fs", partition, pause
                    )
                await asyncio.sleep(pause)
            finally:
                await worker.close()

    async def stop(self) -> None:
        """Finish: leave (the others stop counting us and take our share), stop every worker
        and wait until each has ended (its current batch commits or rolls back as a whole),
        then release the leases so the others take over at once."""
        self._closing = True
        loop_task = self._loop_task
        while loop_task is not None and not loop_task.done():
            loop_task.cancel()
            await asyncio.wait({loop_task}, timeout=RECANCEL_S)
        with contextlib.suppress(TimeoutError):  # leave is best effort itself
            await asyncio.wait_for(self._leases.leave(), STOP_STEP_S)
        running = set()
        for owned in self._owned.values():
            self._stop(owned)
            if owned.task is not None:
                running.add(owned.task)
        while running:
            _, running = await asyncio.wait(running, timeout=RECANCEL_S)
            for owned in self._owned.values():
                if not owned.ended:
                    self._stop(owned)
        for owned in list(self._owned.values()):
            await self._forget(owned)
        metrics.PARTITIONS_OWNED.set(0)
