"""The WebSocket connections of this process: the per-user limit, revocation and shutdown."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from typing import Protocol

from rtm.shared.ws import CloseCode

logger = logging.getLogger(__name__)


class Closable(Protocol):
    """What the registry needs of a connection."""

    user_id: uuid.UUID
    session_id: uuid.UUID

    def request_close(self, code: CloseCode, reason: str) -> None:
        """Ask the connection to finish and close with `code` (idempotent, never blocks)."""
        ...


class ConnectionRegistry:
    """Open, authenticated connections by user and by session.

    Args:
        max_per_user: connections one user may hold on this instance (docs/protocol.md,
            "5. Producer").
    """

    def __init__(self, max_per_user: int) -> None:
        self._max_per_user = max_per_user
        self._by_user: dict[uuid.UUID, set[Closable]] = defaultdict(set)
        self._by_session: dict[uuid.UUID, set[Closable]] = defaultdict(set)
        self._empty = asyncio.Event()
        self._empty.set()
        self.closing = False

    def add(self, connection: Closable) -> bool:
        """Register; False when the user is at the limit (close 4504) or we are shutting down."""
        if self.closing:
            return False
        owned = self._by_user[connection.user_id]
        if len(owned) >= self._max_per_user:
            if not owned:
                del self._by_user[connection.user_id]
            return False
        owned.add(connection)
        self._by_session[connection.session_id].add(connection)
        self._empty.clear()
        return True

    def move_session(self, connection: Closable, old_session: uuid.UUID) -> None:
        """The connection's token was replaced by one of another session of the same user."""
        self._discard(self._by_session, old_session, connection)
        self._by_session[connection.session_id].add(connection)

    def remove(self, connection: Closable) -> None:
        self._discard(self._by_user, connection.user_id, connection)
        self._discard(self._by_session, connection.session_id, connection)
        if not self._by_user:
            self._empty.set()

    @staticmethod
    def _discard(
        index: dict[uuid.UUID, set[Closable]], key: uuid.UUID, connection: Closable
    ) -> None:
        members = index.get(key)
        if members is not None:
            members.discard(connection)
            if not members:
                del index[key]

    def revoke_session(self, session_id: uuid.UUID) -> int:
        """Close every connection of a revoked session (4503); returns how many."""
        connections = list(self._by_session.get(session_id, ()))
        for connection in connections:
            connection.request_close(CloseCode.SESSION_REVOKED, "session revoked")
        if connections:
            logger.info(
                "closed %d connection(s) of revoked session %s", len(connections), session_id
            )
        return len(connections)

    def count(self, user_id: uuid.UUID | None = None) -> int:
        if user_id is not None:
            return len(self._by_user.get(user_id, ()))
        return sum(len(owned) for owned in self._by_user.values())

    async def close_all(self, code: CloseCode, reason: str, timeout: float) -> bool:
        """Refuse new connections, ask every open one to close, and wait for them (each
        finishes its in-flight sends first); False on timeout."""
        self.closing = True
        for owned in list(self._by_user.values()):
            for connection in list(owned):
                connection.request_close(code, reason)
        try:
            await asyncio.wait_for(self._empty.wait(), timeout)
        except TimeoutError:
            return False
        return True
