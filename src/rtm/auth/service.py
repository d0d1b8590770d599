"""The auth application service: every use case, shared by the gRPC servicer and the HTTP front.

One implementation, two entrypoints: `rtm.auth.servicer` and `rtm.auth.http` only translate
their transport to these calls and `AuthError`/`TokenError` back to status codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Container, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

from rtm.auth.exceptions import (
    InvalidCredentials,
    InvalidInput,
    InvalidRefreshToken,
    NotFound,
    Throttled,
    Unavailable,
)
from rtm.auth.keyring import KeyRing
from rtm.auth.metrics import LOGINS, REFRESHES, REGISTRATIONS, REVOCATIONS
from rtm.auth.model import (
    PASSWORD_MAX_BYTES,
    ClientInfo,
    Deletion,
    Grant,
    RevokeReason,
    RotateOutcome,
    Session,
    User,
    login_username,
    normalise_username,
    password_size,
    search_prefix,
    validate_display_name,
    validate_password,
    validate_username,
)
from rtm.auth.passwords import PasswordHasher
from rtm.auth.ports import AuthStore, RevocationNotifier, ThrottleStore
from rtm.auth.throttle import (
    LoginKeys,
    ThrottlePolicy,
    address_key,
    retry_after,
    slowdown,
    to_milliseconds,
)
from rtm.auth.tokens import (
    AccessTokenSigner,
    canonical_signature,
    hash_refresh_token,
    new_refresh_token,
    plausible_refresh_token,
)
from rtm.shared.contract import SessionRevoked
from rtm.shared.errors import ErrorCode, RtmError
from rtm.shared.ids import new_id
from rtm.shared.limits import KeyedBuckets
from rtm.shared.tokens import AccessClaims, TokenError, TokenExpired, decode_access_token

logger = logging.getLogger(__name__)

MAX_TOKEN_CHARS = 8192


@dataclass(frozen=True, slots=True)
class AuthPolicy:
    """The limits the service enforces (built from `AuthSettings` by the composition root)."""

    issuer: str
    access_ttl: timedelta
    refresh_ttl: timedelta
    leeway: timedelta
    account_throttle: ThrottlePolicy  # slows logins down (max_delay: the cap), never refuses
    address_throttle: ThrottlePolicy
    pair_throttle: ThrottlePolicy  # one account from one address
    search_default_limit: int = 20
    search_max_limit: int = 50
    common_passwords: Container[str] = frozenset()
    register_burst: int = 30  # registrations per client address, at once
    register_per_minute: float = 10.0  # ... and then, per minute


@dataclass(frozen=True, slots=True)
class SessionView:
    """A session as its user sees it, marked when it is the caller's own."""

    session: Session
    current: bool


class AuthService:
    """Use cases of auth. Every method raises `AuthError` or `TokenError` (never a driver
    error): callers map those to their transport.

    Args:
        store: users, sessions, refresh tokens.
        throttle: failed-login records.
        keys: signing keys.
        hasher: argon2id, off the event loop.
        notifier: tells the other services a session ended.
        policy: lifetimes and limits.
        clock: the current time (tests move it).
        sleep: waits that many seconds (the login slowdown; tests pass one that moves `clock`).
    """

    def __init__(
        self,
        *,
        store: AuthStore,
        throttle: ThrottleStore,
        keys: KeyRing,
        hasher: PasswordHasher,
        notifier: RevocationNotifier,
        policy: AuthPolicy,
        clock: Callable[[], datetime],
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self._store = store
        self._throttle = throttle
        self._keys = keys
        self._hasher = hasher
        self._notifier = notifier
        self._policy = policy
        self._clock = clock
        self._sleep = sleep
        self._signer = AccessTokenSigner(policy.issuer, policy.access_ttl)
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
        try:
            if client is not None:
                self._take_registration(client)
            user = await self._register(username, password, display_name)
        except RtmError as exc:
            outcome = {
                ErrorCode.ALREADY_EXISTS: "username_taken",
                ErrorCode.VALIDATION_FAILED: "invalid",
                ErrorCode.RATE_LIMITED: "throttled",
            }.get(exc.code, "error")
            REGISTRATIONS.labels(outcome).inc()
            raise
        REGISTRATIONS.labels("success").inc()
        return user

    async def _register(self, username: str, password: str, display_name: str | None) -> User:
        name = validate_username(username)
        validate_password(password, username=username, common=self._policy.common_passwords)
        display = validate_display_name(display_name, default=name)
        password_hash = await self._hasher.hash(password)
        user = User(id=new_id(), username=name, display_name=display, created_at=self._clock())
        await self._store.create_user(user, password_hash)
        logger.info("registered user %s", user.id)
        return user

    async def login(self, username: str, password: str, client: ClientInfo) -> Grant:
        """Unknown user and wrong password cost one argon2 verify each and get one answer."""
        try:
            grant = await self._login(username, password, client)
        except RtmError as exc:
            outcome = {
                ErrorCode.UNAUTHORIZED: "failure",
                ErrorCode.VALIDATION_FAILED: "failure",
                ErrorCode.RATE_LIMITED: "throttled",
            }.get(exc.code, "error")
            LOGINS.labels(outcome).inc()
            raise
        LOGINS.labels("success").inc()
        return grant

    async def _login(self, username: str, password: str, client: ClientInfo) -> Grant:
        if password_size(password) > PASSWORD_MAX_BYTES:
            raise InvalidInput("password", f"must be at most {PASSWORD_MAX_BYTES} bytes")
        name = login_username(username)
        keys = LoginKeys.of(name or normalise_username(username), client.address)
        await self._throttle_login(keys)
        credentials = await self._store.credentials(name) if name else None
        ok = await self._hasher.verify(credentials.password_hash if credentials else None, password)
        if not ok or credentials is None:
            policies = (self._policy.account_throttle, self._policy.address_throttle,
                        self._policy.pair_throttle)  # fmt: skip
            await self._throttle.record_failure(
                keys.all,
                now=self._clock(),
                window_s=max(p.window for p in policies).total_seconds(),
            )
            raise InvalidCredentials()
        await self._throttle.clear(keys.pair)
        if self._hasher.needs_rehash(credentials.password_hash):
            await self._store.set_password_hash(
                credentials.user.id, await self._hasher.hash(password)
            )
        return await self._open_session(credentials.user, client)

    async def refresh(self, refresh_token: str, client: ClientInfo) -> Grant:
        """Spend a refresh token for new tokens; a spent one coming back ends its session."""
        try:
            grant = await self._refresh(refresh_token, client)
        except RtmError as exc:
            if exc.code is not ErrorCode.UNAUTHORIZED:  # reuse and invalid counted below
                REFRESHES.labels("error").inc()
            raise
        REFRESHES.labels("rotated").inc()
        return grant

    async def _refresh(self, refresh_token: str, client: ClientInfo) -> Grant:
        if not plausible_refresh_token(refresh_token):
            REFRESHES.labels("invalid").inc()
            raise InvalidRefreshToken()
        signing_key = self._keys.signing_key()
        now = self._clock()
        fresh = new_refresh_token()
        rotation = await self._store.rotate_refresh_token(
            hash_refresh_token(refresh_token),
            hash_refresh_token(fresh),
            now=now,
            expires_at=now + self._policy.refresh_ttl,
            client=client,
        )
        if rotation.outcome is RotateOutcome.REUSED and rotation.session is not None:
            logger.warning("refresh token reuse: session %s revoked", rotation.session.id)
            REVOCATIONS.labels(RevokeReason.REFRESH_REUSE.value).inc()
            self._notify(rotation.session)
        if rotation.outcome is not RotateOutcome.ROTATED:
            reused = rotation.outcome is RotateOutcome.REUSED
            REFRESHES.labels("reuse_detected" if reused else "invalid").inc()
            raise InvalidRefreshToken()
        assert rotation.session is not None
        assert rotation.user is not None
        access = self._signer.sign(
            kid=signing_key.kid,
            key=signing_key.private_key,
            user_id=rotation.user.id,
            session_id=rotation.session.id,
            now=now,
        )
        return self._grant(access.token, fresh, rotation.session.id, rotation.user)

    async def logout(self, *, refresh_token: str | None, access_token: str | None) -> None:
        """End the refresh token's session, else the bearer's. Ending an ended one is fine."""
        now = self._clock()
        if refresh_token:
            if not plausible_refresh_token(refresh_token):
                raise InvalidRefreshToken()
            found = await self._store.revoke_by_refresh_token(
                hash_refresh_token(refresh_token), now=now, reason=RevokeReason.LOGOUT
            )
            if found is None:
                raise InvalidRefreshToken()
            session, revoked_now = found
            if revoked_now:
                REVOCATIONS.labels(RevokeReason.LOGOUT.value).inc()
                self._notify(session)
            return
        claims = await self.authenticate(access_token)
        revoked = await self._store.revoke_session(
            claims.session_id, claims.user_id, now=now, reason=RevokeReason.LOGOUT
        )
        if revoked:
            REVOCATIONS.labels(RevokeReason.LOGOUT.value).inc()
            self._notify_ids(claims.session_id, claims.user_id)

    async def authenticate(self, access_token: str | None) -> AccessClaims:
        """A valid access token of a live session of a live user, or `TokenError`."""
        if not access_token or len(access_token) > MAX_TOKEN_CHARS:
            raise TokenError("missing or oversized token")
        if not canonical_signature(access_token):
            raise TokenError()
        try:
            kid = jwt.get_unverified_header(access_token).get("kid")
        except jwt.PyJWTError as exc:
            raise TokenError() from exc
        public_key = self._keys.public_key(kid) if isinstance(kid, str) else None
        if public_key is None:
            raise TokenError("unknown signing key")
        claims = decode_access_token(
            access_token,
            public_key,
            issuer=self._policy.issuer,
            leeway=self._policy.leeway.total_seconds(),
            max_lifetime=self._policy.access_ttl.total_seconds(),
        )
        if claims.expires_at + self._policy.leeway <= self._clock():
            raise TokenExpired()  # by our clock too (the one that signed it)
        live = await self._store.session_is_live(
            claims.session_id, claims.user_id, now=self._clock()
        )
        if not live:
            raise TokenError("session ended")
        return claims

    async def get_user(self, caller: AccessClaims, user_id: uuid.UUID | None) -> User:
        user = await self._store.user(user_id or caller.user_id)
        if user is None:
            raise NotFound("user")
        return user

    async def search_users(self, caller: AccessClaims, query: str, limit: int | None) -> list[User]:
        if limit is None or limit == 0:
            limit = self._policy.search_default_limit
        if not 1 <= limit <= self._policy.search_max_limit:
            raise InvalidInput("limit", f"must be 1-{self._policy.search_max_limit}")
        prefix = search_prefix(query)
        if prefix is None:
            return []
        return list(await self._store.search_users(prefix, limit))

    async def list_sessions(self, caller: AccessClaims) -> list[SessionView]:
        sessions: Sequence[Session] = await self._store.live_sessions(
            caller.user_id, now=self._clock()
        )
        return [SessionView(s, current=s.id == caller.session_id) for s in sessions]

    async def revoke_session(self, caller: AccessClaims, session_id: uuid.UUID) -> None:
        """Another user's session is NOT_FOUND, like a missing one (no oracle)."""
        revoked = await self._store.revoke_session(
            session_id, caller.user_id, now=self._clock(), reason=RevokeReason.REVOKED
        )
        if revoked is None:
            raise NotFound("session")
        if revoked:
            REVOCATIONS.labels(RevokeReason.REVOKED.value).inc()
            self._notify_ids(session_id, caller.user_id)

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
            REVOCATIONS.labels(RevokeReason.REVOKED.value).inc()
            self._notify(session)
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

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """Unavailable (not an empty set) before the keys are loaded: a verifier caching an
        empty JWKS would refuse every token until its next refresh."""
        if not self._keys.loaded:
            raise Unavailable("signing keys not loaded yet")
        return self._keys.jwks()

    async def _throttle_login(self, keys: LoginKeys) -> None:
        """Refuse when this address, or this account from this address, failed too often; else
        hold the attempt as long as the account's slowdown says (see `rtm.auth.throttle`)."""
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

    def _take_registration(self, client: ClientInfo) -> None:
        wait_ms = self._registrations.take(address_key(client.address))
        if wait_ms is not None:
            raise Throttled(wait_ms, "too many registrations from this address")

    async def _open_session(self, user: User, client: ClientInfo) -> Grant:
        signing_key = self._keys.signing_key()  # before any write: no session without a token
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
        access = self._signer.sign(
            kid=signing_key.kid,
            key=signing_key.private_key,
            user_id=user.id,
            session_id=session.id,
            now=now,
        )
        return self._grant(access.token, refresh_token, session.id, user)

    def _grant(self, access: str, refresh: str, session_id: uuid.UUID, user: User) -> Grant:
        return Grant(
            access_token=access,
            refresh_token=refresh,
            expires_in=int(self._policy.access_ttl.total_seconds()),
            session_id=session_id,
            user=user,
        )

    def _notify(self, session: Session) -> None:
        self._notify_ids(session.id, session.user_id)

    def _notify_ids(self, session_id: uuid.UUID, user_id: uuid.UUID) -> None:
        self._notifier.notify(SessionRevoked(session_id=session_id, user_id=user_id))
