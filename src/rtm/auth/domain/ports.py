"""Ports of the auth service: what its services need from the outside world.

Adapters (`rtm.auth.adapters`): PostgreSQL implements `AuthStore` and `RevocationOutbox`
(`postgres`), `KeyStore` (`key_store`) and `ThrottleStore` (`throttle_store`); NATS implements
`RevocationNotifier` (`publishers`); argon2 implements `PasswordHasher` (`argon2`). Tests use
in-memory fakes. Every method may raise `rtm.auth.domain.exceptions.Unavailable` when its backing
service cannot answer now.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from rtm.auth.domain.model import (
    ClientInfo,
    Credentials,
    Deletion,
    RevokeReason,
    Rotation,
    Session,
    User,
)
from rtm.auth.domain.throttle import FailureRecord
from rtm.shared.contract import SessionRevoked


class AuthStore(Protocol):
    """Users, sessions and refresh tokens. Each method is atomic on its own."""

    async def create_user(self, user: User, password_hash: str) -> None:
        """Raises `UsernameTaken` when `user.username` exists (deleted users keep their name)."""

    async def credentials(self, username: str) -> Credentials | None:
        """The live (not deleted) user with this normalised name, with their hash."""

    async def set_password_hash(self, user_id: uuid.UUID, password_hash: str) -> None: ...

    async def user(self, user_id: uuid.UUID) -> User | None:
        """A live user, or None (deleted users are not found)."""

    async def search_users(self, prefix: str, limit: int) -> Sequence[User]:
        """Live users whose username starts with `prefix`, by username."""

    async def find_user_id(self, username: str) -> uuid.UUID | None:
        """The id of the user with this normalised name, deleted or not."""

    async def delete_user(
        self, user_id: uuid.UUID, *, now: datetime, reason: RevokeReason
    ) -> Deletion | None:
        """In one transaction: mark the user deleted (an earlier deletion stands) and end each of
        their live sessions as `revoke_session` does (so the revocation outbox relays them).
        None: no such user."""

    async def create_session(self, session: Session, refresh_hash: bytes) -> bool:
        """Store a new session and its first refresh token (expiring with the session). False,
        storing nothing, when the user is deleted: serialised with `delete_user`, so a login
        racing a deletion either opens a session the deletion then ends, or none."""

    async def rotate_refresh_token(
        self,
        old_hash: bytes,
        new_hash: bytes,
        *,
        now: datetime,
        expires_at: datetime,
        client: ClientInfo,
    ) -> Rotation:
        """Spend `old_hash` and store `new_hash` in its place, atomically.

        Exactly one of any number of concurrent calls with the same live token gets ROTATED.
        A token already spent revokes its session (REUSED, returned only by the call that
        revoked it); an unknown, expired or revoked one is INVALID.
        """

    async def revoke_by_refresh_token(
        self, token_hash: bytes, *, now: datetime, reason: RevokeReason
    ) -> tuple[Session, bool] | None:
        """End the session of this refresh token (spent or not; idempotent): the session and
        whether this call ended it. None: no such token."""

    async def revoke_session(
        self, session_id: uuid.UUID, user_id: uuid.UUID, *, now: datetime, reason: RevokeReason
    ) -> bool | None:
        """End the user's session: True if this call ended it, False if it already was ended,
        None if the user has no such session."""

    async def session_is_live(
        self, session_id: uuid.UUID, user_id: uuid.UUID, *, now: datetime
    ) -> bool:
        """Not revoked, not expired, and its user not deleted."""

    async def live_sessions(self, user_id: uuid.UUID, *, now: datetime) -> Sequence[Session]:
        """The user's sessions still usable, newest first."""


class RevocationOutbox(Protocol):
    """Revocations whose event has not reached NATS yet: the relay retries them."""

    async def unpublished_revocations(self, limit: int = 100) -> list[SessionRevoked]: ...

    async def mark_revocation_published(self, session_id: uuid.UUID) -> None: ...


class ThrottleStore(Protocol):
    """Failure records of throttling keys (see `rtm.auth.domain.throttle`)."""

    async def records(self, keys: Sequence[str]) -> dict[str, FailureRecord]: ...

    async def record_failure(self, keys: Sequence[str], *, now: datetime, window_s: float) -> None:
        """Count one failure on each key (restarting keys idle for `window_s`)."""

    async def clear(self, key: str) -> None: ...


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A signing key as stored: the private half encrypted (`rtm.auth.domain.keys.KeyCipher`)."""

    kid: str
    encrypted_private_key: bytes
    public_jwk: dict[str, str]
    created_at: datetime
    activates_at: datetime
    retire_after: datetime | None


class KeyStore(Protocol):
    """Signing keys shared by every auth process."""

    async def load(self, *, now: datetime) -> Sequence[StoredKey]:
        """Keys not yet retired at `now`."""

    async def add_first(self, key: StoredKey, *, now: datetime) -> bool:
        """Insert `key` unless a live key exists; serialised across processes. True if added."""

    async def rotate(
        self, key: StoredKey, *, retire_old_after: datetime, unless_newer_than: datetime | None
    ) -> bool:
        """Insert `key` and retire every other live key at `retire_old_after`; serialised across
        processes. Skipped (False) when the newest key was created after `unless_newer_than`."""


class RevocationNotifier(Protocol):
    """Tells producer and consumer that a session ended (they close its sockets with 4503)."""

    def notify(self, event: SessionRevoked) -> None:
        """Send in the background; must not raise. Undelivered events are retried later."""


class PasswordHasher(Protocol):
    """Slow, salted password hashing (argon2id in `rtm.auth.adapters.argon2`): never blocks the
    event loop, and a missing account costs what a wrong password costs."""

    async def hash(self, password: str) -> str: ...

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True when `password` matches; `None` (no such account) is always False, as slowly."""

    def needs_rehash(self, password_hash: str) -> bool:
        """The hash was made with other parameters than the current ones."""
