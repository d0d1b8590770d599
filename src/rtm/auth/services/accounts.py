"""Accounts: registering, looking users up, and deleting an account for good."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable
from datetime import datetime

from rtm.auth.domain.exceptions import InvalidInput, NotFound, Throttled
from rtm.auth.domain.model import (
    ClientInfo,
    Deletion,
    RevokeReason,
    User,
    login_username,
    search_prefix,
    validate_display_name,
    validate_password,
    validate_username,
)
from rtm.auth.domain.policy import AuthPolicy
from rtm.auth.domain.ports import AuthStore, PasswordHasher, RevocationNotifier
from rtm.auth.domain.throttle import address_key
from rtm.shared.contract import SessionRevoked
from rtm.shared.ids import new_id
from rtm.shared.limits import KeyedBuckets
from rtm.shared.tokens import AccessClaims

logger = logging.getLogger(__name__)


class AccountService:
    """Registration (rate limited per client address), user lookups and account deletion.

    Args:
        store: users (and the sessions a deletion ends).
        hasher: argon2id, off the event loop.
        notifier: tells the other services the sessions of a deleted account ended.
        policy: password list, search bounds, registration rate.
        clock: the current time (tests move it).
    """

    def __init__(
        self,
        *,
        store: AuthStore,
        hasher: PasswordHasher,
        notifier: RevocationNotifier,
        policy: AuthPolicy,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._hasher = hasher
        self._notifier = notifier
        self._policy = policy
        self._clock = clock
        # Per process, in memory: a registration costs one argon2 hash and one row, and the
        # limit only has to make mass sign-ups from one address slow (see docs/auth.md).
        self._registrations: KeyedBuckets[str] = KeyedBuckets(
            policy.register_per_minute / 60.0,
            policy.register_burst,
            lambda: self._clock().timestamp(),
        )

    async def register(
        self,
        username: str,
        password: str,
        display_name: str | None,
        client: ClientInfo | None = None,
    ) -> User:
        """Create an account; `client` (absent for operators' tools) is rate limited per
        address: a burst of `register_burst`, then `register_per_minute`."""
        if client is not None:
            wait_ms = self._registrations.take(address_key(client.address))
            if wait_ms is not None:
                raise Throttled(wait_ms, "too many registrations from this address")
        name = validate_username(username)
        validate_password(password, username=username, common=self._policy.common_passwords)
        display = validate_display_name(display_name, default=name)
        password_hash = await self._hasher.hash(password)
        user = User(id=new_id(), username=name, display_name=display, created_at=self._clock())
        await self._store.create_user(user, password_hash)
        logger.info("registered user %s", user.id)
        return user

    async def get_user(self, caller: AccessClaims, user_id: uuid.UUID | None) -> User:
        """A live user by id (the caller when `user_id` is None)."""
        user = await self._store.user(user_id or caller.user_id)
        if user is None:
            raise NotFound("user")
        return user

    async def search_users(self, caller: AccessClaims, query: str, limit: int | None) -> list[User]:
        """Live users whose normalised username starts with `query`, by username."""
        if limit is None or limit == 0:
            limit = self._policy.search_default_limit
        if not 1 <= limit <= self._policy.search_max_limit:
            raise InvalidInput("limit", f"must be 1-{self._policy.search_max_limit}")
        prefix = search_prefix(query)
        if prefix is None:
            return []
        return list(await self._store.search_users(prefix, limit))

    async def delete_user(self, user_id: uuid.UUID) -> Deletion:
        """Delete the account for good, in one transaction: `deleted_at` is set and every live
        session ends like a revoked one (its refresh tokens die with it, and `SessionRevoked`
        reaches NATS, so producer and consumer refuse its access tokens within seconds).

        Logging in is then refused like an unknown user; the username stays taken. Deleting a
        deleted account again is fine (`newly_deleted` False). NotFound: no such user."""
        deletion = await self._store.delete_user(
            user_id, now=self._clock(), reason=RevokeReason.REVOKED
        )
        if deletion is None:
            raise NotFound("user")
        for session in deletion.revoked:
            self._notifier.notify(SessionRevoked(session_id=session.id, user_id=session.user_id))
        if deletion.newly_deleted:
            logger.info("deleted user %s (%d sessions revoked)", user_id, len(deletion.revoked))
        return deletion

    async def user_id_of(self, reference: str) -> uuid.UUID:
        """The id `reference` names: a user id (hyphenated form) or a username, deleted users
        included (so that deleting again is harmless). NotFound when no user has that name."""
        if len(reference) == 36:  # longer than any username: no ambiguity
            with contextlib.suppress(ValueError):
                return uuid.UUID(reference)
        name = login_username(reference)
        user_id = await self._store.find_user_id(name) if name else None
        if user_id is None:
            raise NotFound("user")
        return user_id
