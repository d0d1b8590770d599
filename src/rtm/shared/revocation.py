"""Sessions auth has revoked, as producer and consumer learn them from NATS.

A revoked session's access tokens stay cryptographically valid until they expire, so services
remember revoked session ids for one access-token lifetime and refuse them meanwhile.
"""

from __future__ import annotations

import time
import uuid


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
