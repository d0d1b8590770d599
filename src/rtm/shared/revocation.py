"""Sessions auth has revoked, as producer and consumer learn them from NATS.

A revoked session's access tokens stay cryptographically valid until they expire, so services
remember revoked session ids for one access-token lifetime and refuse them meanwhile.
"""

from __future__ import annotations

import time
import uuid
from typing import Protocol

from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError, NoKeysError


class RevokedSessions:
    """An expiring set of revoked session ids."""

    def __init__(self, remember_s: float = 15 * 60 + 60) -> None:
        self._remember = remember_s
        self._until: dict[uuid.UUID, float] = {}

    def add(self, session_id: uuid.UUID) -> None:
        self._until[session_id] = time.monotonic() + self._remember
        if len(self._until) > 10_000:
            self._forget_expired()

    def is_revoked(self, session_id: uuid.UUID) -> bool:
        until = self._until.get(session_id)
        return until is not None and until > time.monotonic()

    def _forget_expired(self) -> None:
        now = time.monotonic()
        self._until = {sid: t for sid, t in self._until.items() if t > now}


REVOKED_SESSIONS_BUCKET = "rtm_revoked_sessions"


class RevocationSink(Protocol):
    def add(self, session_id: uuid.UUID) -> None: ...


async def load_revoked(
    js: JetStreamContext, revoked: RevocationSink, bucket: str = REVOKED_SESSIONS_BUCKET
) -> int:
    """Learn revocations made before we started (auth keeps them in a KV bucket for one
    access-token lifetime); returns how many. A missing bucket means none yet."""
    try:
        kv = await js.key_value(bucket)
        keys = await kv.keys()
    except (BucketNotFoundError, NoKeysError):
        return 0
    count = 0
    for key in keys:
        try:
            revoked.add(uuid.UUID(key))
        except ValueError:
            continue
        count += 1
    return count
