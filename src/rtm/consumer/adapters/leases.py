"""Partition leases and instance liveness in JetStream key-value buckets.

`rtm_partition_leases` holds one key per owned partition (`p<N>` → instance id); entries expire
after the bucket TTL unless renewed with a compare-and-set on their revision, so a dead instance's
partitions become free within one TTL. `rtm_consumer_instances` holds a heartbeat per live
instance, which tells each instance its fair share of partitions.

Each acquisition hands out a fencing token: the bucket's creation time and the lease's revision
when it was created. Revisions are the bucket's stream sequence, so they only grow: whoever
acquires a partition after another holds a larger token, and `MessageStore.claim` lets only the
largest commit. The lease itself decides nothing about safety.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import APIError, BucketNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from rtm.consumer.domain.model import FenceToken, Lease
from rtm.shared.connect import NATS_FAILURES

logger = logging.getLogger(__name__)

LEASES_BUCKET = "rtm_partition_leases"
INSTANCES_BUCKET = "rtm_consumer_instances"


async def _bucket(js: JetStreamContext, name: str, ttl: float) -> KeyValue:
    """The bucket, created with `ttl` if missing, or brought to `ttl` if it was created with
    another (a changed `RTM_LEASE_TTL_S` must change how long leases live, not only how often
    they are renewed; every instance must use the same value)."""
    try:
        bucket = await js.key_value(name)
    except BucketNotFoundError:
        with contextlib.suppress(*NATS_FAILURES):  # a concurrent starter may create it first
            return await js.create_key_value(
                KeyValueConfig(bucket=name, history=1, ttl=ttl, storage=StorageType.FILE)
            )
        bucket = await js.key_value(name)
    config = (await js.stream_info(_stream(name))).config
    if config.max_age is None or abs(config.max_age - ttl) > 1e-3:
        logger.info("bucket %s: lease TTL %ss -> %ss", name, config.max_age, ttl)
        config.max_age = ttl
        if config.duplicate_window is not None and config.duplicate_window > ttl:
            config.duplicate_window = ttl  # the server wants it within max_age
        await js.update_stream(config)
    return bucket


class KvPartitionLeases:
    """Acquire, renew and release partition leases; all operations are compare-and-set."""

    def __init__(self, js: JetStreamContext, instance_id: str, ttl: float) -> None:
        self._js = js
        self._instance = instance_id.encode()
        self._ttl = ttl
        self._leases: KeyValue | None = None
        self._instances: KeyValue | None = None
        self._epoch = 0

    async def setup(self) -> None:
        self._leases = await _bucket(self._js, LEASES_BUCKET, self._ttl)
        self._instances = await _bucket(self._js, INSTANCES_BUCKET, self._ttl)
        info = await self._js.stream_info(_stream(LEASES_BUCKET))
        self._epoch = _nanoseconds(info.created)

    def _kv(self) -> KeyValue:
        assert self._leases is not None, "setup() first"
        return self._leases

    async def try_acquire(self, partition: int) -> Lease | None:
        """The lease when we got it, None when someone else holds it."""
        try:
            revision = int(await self._kv().create(f"p{partition}", self._instance))
            return Lease(FenceToken(self._epoch, revision), revision)
        except KeyWrongLastSequenceError:
            return None
        except APIError as exc:  # nats-py raises a plain APIError for "wrong last sequence"
            if "wrong last sequence" in str(exc).lower() or "key exists" in str(exc).lower():
                return None
            raise

    async def renew(self, partition: int, revision: int) -> int | None:
        """The new revision, or None when the lease is no longer ours."""
        try:
            return int(await self._kv().update(f"p{partition}", self._instance, last=revision))
        except KeyWrongLastSequenceError:
            return None
        except APIError as exc:
            if "wrong last sequence" in str(exc).lower():
                return None
            raise

    async def release(self, partition: int, revision: int) -> None:
        """Best effort: a lease we could not delete expires by itself within the TTL."""
        try:
            await self._kv().delete(f"p{partition}", last=revision)
        except NATS_FAILURES as exc:
            logger.info(
                "partition %s: lease not released (%r); it expires by itself", partition, exc
            )

    async def heartbeat(self) -> int:
        """Say we are alive; returns how many instances are alive (at least 1: us).

        Counted from the bucket stream's subjects (one request; listing the keys would create a
        consumer every round). `leave` removes its subject without a marker, so every subject
        with a message is a live instance's heartbeat.
        """
        assert self._instances is not None, "setup() first"
        await self._instances.put(self._instance.decode(), b"1")
        info = await self._js.stream_info(
            _stream(INSTANCES_BUCKET), subjects_filter=f"$KV.{INSTANCES_BUCKET}.>"
        )
        return max(1, len(info.state.subjects or {}))

    async def leave(self) -> None:
        """Graceful stop: remove our heartbeat so the others take our share at once."""
        try:
            await self._js.purge_stream(
                _stream(INSTANCES_BUCKET),
                subject=f"$KV.{INSTANCES_BUCKET}.{self._instance.decode()}",
            )
        except NATS_FAILURES as exc:  # the heartbeat then expires by itself within the TTL
            logger.info("heartbeat not removed (%r); it expires by itself", exc)


def _stream(bucket: str) -> str:
    return f"KV_{bucket}"


def _nanoseconds(created: datetime | None) -> int:
    """The bucket's creation time as an integer: the epoch of the tokens it hands out."""
    if created is None:
        return 0
    return int(created.timestamp()) * 1_000_000_000 + created.microsecond * 1_000
