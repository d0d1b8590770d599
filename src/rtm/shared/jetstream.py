"""The JetStream stream every service agrees on, created idempotently at start."""

from __future__ import annotations

import logging

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import APIError, NotFoundError

from rtm.shared.contract import MESSAGE_SUBJECT_PREFIX, STREAM

logger = logging.getLogger(__name__)


def stream_config(
    *,
    max_bytes: int = 1 << 30,
    max_age_s: float = 7 * 24 * 3600,
    duplicate_window_s: float = 120.0,
    replicas: int = 1,
) -> StreamConfig:
    """RTM_MESSAGES: file storage; a full stream refuses new messages (DiscardNew), never drops
    stored ones; `Nats-Msg-Id` duplicates are refused within `duplicate_window_s`."""
    if duplicate_window_s < 120:
        raise ValueError("the duplicate window must be at least 2 minutes (ARCHITECTURE.md §3)")
    return StreamConfig(
        name=STREAM,
        subjects=[f"{MESSAGE_SUBJECT_PREFIX}.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.NEW,
        max_bytes=max_bytes,
        max_age=max_age_s,
        max_msg_size=256 * 1024,
        duplicate_window=duplicate_window_s,
        num_replicas=replicas,
        allow_direct=True,
    )


async def ensure_stream(js: JetStreamContext, config: StreamConfig | None = None) -> None:
    """Create the stream, or bring an existing one to `config` (safe to run concurrently)."""
    wanted = config or stream_config()
    try:
        await js.stream_info(STREAM)
    except NotFoundError:
        try:
            await js.add_stream(wanted)
            logger.info("created JetStream stream %s", STREAM)
            return
        except APIError:  # a concurrent starter created it first: fall through to update
            logger.debug("stream %s appeared concurrently", STREAM)
    await js.update_stream(wanted)
