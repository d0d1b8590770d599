"""Logging in: throttling, checking the password, opening a session."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime

from rtm.auth.domain.exceptions import InvalidCredentials, InvalidInput, Throttled
from rtm.auth.domain.model import (
    PASSWORD_MAX_BYTES,
    ClientInfo,
    Grant,
    Session,
    User,
    login_username,
    normalise_username,
    password_size,
)
from rtm.auth.domain.policy import AuthPolicy
from rtm.auth.domain.ports import AuthStore, PasswordHasher, ThrottleStore
from rtm.auth.domain.throttle import LoginKeys, retry_after, slowdown, to_milliseconds
from rtm.auth.domain.tokens import hash_refresh_token, new_refresh_token
from rtm.auth.services.grants import GrantIssuer
from rtm.shared.ids import new_id


class LoginService:
    """Turns a username and password into a session and its tokens.

    Args:
        store: credentials and sessions.
        throttle: failed-login records (see `rtm.auth.domain.throttle`).
        hasher: argon2id, off the event loop.
        grants: signs the session's first access token.
        policy: lifetimes and throttling.
        clock: the current time (tests move it).
        sleep: waits that many seconds (the login slowdown; tests pass one that moves `clock`).
    """

    def __init__(
        self,
        *,
        store: AuthStore,
        throttle: ThrottleStore,
        hasher: PasswordHasher,
        grants: GrantIssuer,
        policy: AuthPolicy,
        clock: Callable[[], datetime],
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self._store = store
        self._throttle = throttle
        self._hasher = hasher
        self._grants = grants
        self._policy = policy
        self._clock = clock
        self._sleep = sleep

    async def login(self, username: str, password: str, client: ClientInfo) -> Grant:
        """Unknown user and wrong password cost one argon2 verify each and get one answer."""
        if password_size(password) > PASSWORD_MAX_BYTES:
            raise InvalidInput("password", f"must be at most {PASSWORD_MAX_BYTES} bytes")
        name = login_username(username)
        keys = LoginKeys.of(name or normalise_username(username), client.address)
        await self._throttle_login(keys)
        credentials = await self._store.credentials(name) if name else None
        ok = await self._hasher.verify(credentials.password_hash if credentials else None, password)
        if not ok or credentials is None:
            await self._throttle.record_failure(
                keys.all,
                now=self._clock(),
                window_s=self._policy.throttle_window.total_seconds(),
            )
            raise InvalidCredentials()
        await self._throttle.clear(keys.pair)
        if self._hasher.needs_rehash(credentials.password_hash):
            await self._store.set_password_hash(
                credentials.user.id, await self._hasher.hash(password)
            )
        return await self._open_session(credentials.user, client)

    async def _throttle_login(self, keys: LoginKeys) -> None:
        """Refuse when this address, or this account from this address, failed too often; else
        hold the attempt as long as the account's slowdown says."""
        records = await self._throttle.records(keys.all)
        now = self._clock()
        waits = [
            retry_after(records.get(keys.pair), now, self._policy.pair_throttle),
            retry_after(records.get(keys.address), now, self._policy.address_throttle),
        ]
        longest = max((wait for wait in waits if wait is not None), default=None)
        if longest is not None:
            raise Throttled(to_milliseconds(longest))
        delay = slowdown(records.get(keys.account), now, self._policy.account_throttle)
        if delay:
            await self._sleep(delay.total_seconds())

    async def _open_session(self, user: User, client: ClientInfo) -> Grant:
        signing_key = self._grants.signing_key()  # before any write: no session without a token
        now = self._clock()
        session = Session(
            id=new_id(),
            user_id=user.id,
            created_at=now,
            last_used_at=now,
            expires_at=now + self._policy.refresh_ttl,
            user_agent=(client.user_agent or None) and client.user_agent[:256],
            ip=client.address,
        )
        refresh_token = new_refresh_token()
        if not await self._store.create_session(session, hash_refresh_token(refresh_token)):
            raise InvalidCredentials()  # deleted since its credentials were read
        return self._grants.grant(
            signing_key, user=user, session_id=session.id, refresh_token=refresh_token, now=now
        )
