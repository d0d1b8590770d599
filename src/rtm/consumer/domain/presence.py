"""Who is online, across consumer instances, from their heartbeats. Pure: time is passed in.

Each instance announces its online users on connect/disconnect and, every heartbeat interval, in
full. A user is online while at least one instance has reported them within `ttl` seconds, so the
users of an instance that died go offline within one TTL without anyone saying so.
"""

from __future__ import annotations

import uuid
from collections import defaultdict


class PresenceTracker:
    """Online users by instance, with expiry."""

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._seen: dict[uuid.UUID, dict[str, float]] = defaultdict(dict)

    def is_online(self, user_id: uuid.UUID, now: float) -> bool:
        return any(now - t <= self._ttl for t in self._seen.get(user_id, {}).values())

    def online(self, instance: str, user_ids: list[uuid.UUID], now: float) -> list[uuid.UUID]:
        """Record `user_ids` as online on `instance`; returns those who just came online."""
        came = []
        for user in user_ids:
            if not self.is_online(user, now):
                came.append(user)
            self._seen[user][instance] = now
        return came

    def offline(self, instance: str, user_id: uuid.UUID, now: float) -> bool:
        """`user_id` left `instance`; True when they are now offline everywhere."""
        instances = self._seen.get(user_id)
        if instances is None:
            return False
        was = self.is_online(user_id, now)
        instances.pop(instance, None)
        if not instances:
            del self._seen[user_id]
        return was and not self.is_online(user_id, now)

    def expire(self, now: float) -> list[uuid.UUID]:
        """Forget stale reports; returns users who went offline because of it."""
        gone = []
        for user, instances in list(self._seen.items()):
            if not any(now - t <= self._ttl for t in instances.values()):
                gone.append(user)
                del self._seen[user]
        return gone
