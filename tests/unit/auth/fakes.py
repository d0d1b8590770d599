"""In-memory fakes of auth's ports, and its services wired on them (`service_kit`).

They keep the contracts of `rtm.auth.domain.ports` (atomic methods, one winner per refresh token,
spent tokens revoking their session) so that service tests exercise the same rules the
PostgreSQL adapters enforce; integration tests check the adapters against them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from rtm.auth.adapters.argon2 import Argon2Parameters, Argon2PasswordHasher
from rtm.auth.bootstrap import wire_services
from rtm.auth.domain.exceptions import UsernameTaken
from rtm.auth.domain.keys import KeyCipher
from rtm.auth.domain.model import (
    ClientInfo,
    Credentials,
    Deletion,
    RevokeReason,
    RotateOutcome,
    Rotation,
    Session,
    User,
)
from rtm.auth.domain.policy import AuthPolicy
from rtm.auth.domain.ports import StoredKey
from rtm.auth.domain.throttle import FailureRecord, ThrottlePolicy, after_failure, is_stale
from rtm.auth.entrypoints.deps import AuthContext
from rtm.auth.services import AccountService, Authenticator, KeyRing, LoginService, SessionService
from rtm.shared.contract import SessionRevoked
from tests.support.clock import FakeClock

# Cheap argon2 for tests; production parameters are tested once, in test_auth_passwords.
FAST_ARGON2 = Argon2Parameters(memory_kib=64, time_cost=1, parallelism=1)
TEST_SECRET = "unit-test-secret-that-is-long-enough-0123456789"


@dataclass
class _SessionRow:
    session: Session
    revoked_at: datetime | None = None
    reason: RevokeReason | None = None
    published: bool = False


@dataclass
class _TokenRow:
    session_id: uuid.UUID
    expires_at: datetime
    rotated: bool = False


@dataclass
class InMemoryAuthStore:
    """`AuthStore` and `RevocationOutbox` in dicts."""

    users: dict[uuid.UUID, tuple[User, str]] = field(default_factory=dict)
    deleted: set[uuid.UUID] = field(default_factory=set)
    sessions: dict[uuid.UUID, _SessionRow] = field(default_factory=dict)
    tokens: dict[bytes, _TokenRow] = field(default_factory=dict)

    async def create_user(self, user: User, password_hash: str) -> None:
        if any(u.username == user.username for u, _ in self.users.values()):
            raise UsernameTaken()
        self.users[user.id] = (user, password_hash)

    async def credentials(self, username: str) -> Credentials | None:
        for user, password_hash in self.users.values():
            if user.username == username and user.id not in self.deleted:
                return Credentials(user, password_hash)
        return None

    async def set_password_hash(self, user_id: uuid.UUID, password_hash: str) -> None:
        self.users[user_id] = (self.users[user_id][0], password_hash)

    async def user(self, user_id: uuid.UUID) -> User | None:
        found = self.users.get(user_id)
        return None if found is None or user_id in self.deleted else found[0]

    async def search_users(self, prefix: str, limit: int) -> Sequence[User]:
        users = sorted(
            (u for u, _ in self.users.values() if u.id not in self.deleted),
            key=lambda u: u.username,
        )
        return [u for u in users if u.username.startswith(prefix)][:limit]

    async def find_user_id(self, username: str) -> uuid.UUID | None:
        return next((u.id for u, _ in self.users.values() if u.username == username), None)

    async def delete_user(
        self, user_id: uuid.UUID, *, now: datetime, reason: RevokeReason
    ) -> Deletion | None:
        found = self.users.get(user_id)
        if found is None:
            return None
        newly_deleted = user_id not in self.deleted
        self.deleted.add(user_id)
        revoked = tuple(
            row.session
            for row in self.sessions.values()
            if row.session.user_id == user_id
            and row.session.expires_at > now
            and self._revoke(row, now, reason)
        )
        return Deletion(found[0], newly_deleted, revoked)

    async def create_session(self, session: Session, refresh_hash: bytes) -> bool:
        if session.user_id not in self.users or session.user_id in self.deleted:
            return False
        self.sessions[session.id] = _SessionRow(session)
        self.tokens[refresh_hash] = _TokenRow(session.id, session.expires_at)
        return True

    async def rotate_refresh_token(
        self,
        old_hash: bytes,
        new_hash: bytes,
        *,
        now: datetime,
        expires_at: datetime,
        client: ClientInfo,
    ) -> Rotation:
        token = self.tokens.get(old_hash)
        if token is None:
            return Rotation(RotateOutcome.INVALID)
        row = self.sessions[token.session_id]
        if token.rotated:
            revoked = self._revoke(row, now, RevokeReason.REFRESH_REUSE)
            return (
                Rotation(RotateOutcome.REUSED, row.session)
                if revoked
                else Rotation(RotateOutcome.INVALID)
            )
        user = await self.user(row.session.user_id)
        if (
            token.expires_at <= now
            or row.revoked_at is not None
            or row.session.expires_at <= now
            or user is None
        ):
            return Rotation(RotateOutcome.INVALID)
        token.rotated = True
        self.tokens[new_hash] = _TokenRow(row.session.id, expires_at)
        row.session = replace(row.session, last_used_at=now, expires_at=expires_at)
        return Rotation(RotateOutcome.ROTATED, row.session, user)

    async def revoke_by_refresh_token(
        self, token_hash: bytes, *, now: datetime, reason: RevokeReason
    ) -> tuple[Session, bool] | None:
        token = self.tokens.get(token_hash)
        if token is None:
            return None
        row = self.sessions[token.session_id]
        return row.session, self._revoke(row, now, reason)

    async def revoke_session(
        self, session_id: uuid.UUID, user_id: uuid.UUID, *, now: datetime, reason: RevokeReason
    ) -> bool | None:
        row = self.sessions.get(session_id)
        if row is None or row.session.user_id != user_id:
            return None
        return self._revoke(row, now, reason)

    async def session_is_live(
        self, session_id: uuid.UUID, user_id: uuid.UUID, *, now: datetime
    ) -> bool:
        row = self.sessions.get(session_id)
        return (
            row is not None
            and row.session.user_id == user_id
            and row.revoked_at is None
            and row.session.expires_at > now
            and user_id not in self.deleted
        )

    async def live_sessions(self, user_id: uuid.UUID, *, now: datetime) -> Sequence[Session]:
        rows = [
            r.session
            for r in self.sessions.values()
            if r.session.user_id == user_id and r.revoked_at is None and r.session.expires_at > now
        ]
        return sorted(rows, key=lambda s: s.created_at, reverse=True)

    async def unpublished_revocations(self, limit: int = 100) -> list[SessionRevoked]:
        return [
            SessionRevoked(r.session.id, r.session.user_id)
            for r in self.sessions.values()
            if r.revoked_at is not None and not r.published
        ][:limit]

    async def mark_revocation_published(self, session_id: uuid.UUID) -> None:
        self.sessions[session_id].published = True

    def revoked_reason(self, session_id: uuid.UUID) -> RevokeReason | None:
        return self.sessions[session_id].reason

    @staticmethod
    def _revoke(row: _SessionRow, now: datetime, reason: RevokeReason) -> bool:
        if row.revoked_at is not None:
            return False
        row.revoked_at, row.reason = now, reason
        return True


@dataclass
class InMemoryThrottleStore:
    """`ThrottleStore` in a dict, using the pure rules of `rtm.auth.domain.throttle`."""

    rows: dict[str, FailureRecord] = field(default_factory=dict)

    async def records(self, keys: Sequence[str]) -> dict[str, FailureRecord]:
        return {key: self.rows[key] for key in keys if key in self.rows}

    async def record_failure(self, keys: Sequence[str], *, now: datetime, window_s: float) -> None:
        policy = ThrottlePolicy(1, timedelta(0), timedelta(0), timedelta(seconds=window_s))
        for key in keys:
            record = self.rows.get(key)
            if record is not None and is_stale(record, now, policy):
                record = None
            self.rows[key] = after_failure(record, now, policy)

    async def clear(self, key: str) -> None:
        self.rows.pop(key, None)


@dataclass
class InMemoryKeyStore:
    """`KeyStore` in a list."""

    keys: list[StoredKey] = field(default_factory=list)

    async def load(self, *, now: datetime) -> Sequence[StoredKey]:
        return [k for k in self.keys if k.retire_after is None or k.retire_after > now]

    async def add_first(self, key: StoredKey, *, now: datetime) -> bool:
        if await self.load(now=now):
            return False
        self.keys.append(key)
        return True

    async def rotate(
        self, key: StoredKey, *, retire_old_after: datetime, unless_newer_than: datetime | None
    ) -> bool:
        live = await self.load(now=key.created_at)
        newest = max((k.created_at for k in live), default=None)
        if unless_newer_than is not None and newest is not None and newest > unless_newer_than:
            return False
        self.keys = [
            k if k.retire_after is not None else replace(k, retire_after=retire_old_after)
            for k in self.keys
        ]
        self.keys.append(key)
        return True


@dataclass
class RecordingNotifier:
    """`RevocationNotifier` that remembers what it was told."""

    events: list[SessionRevoked] = field(default_factory=list)

    def notify(self, event: SessionRevoked) -> None:
        self.events.append(event)


def make_policy(**overrides: object) -> AuthPolicy:
    base = timedelta(seconds=1)
    values: dict[str, object] = {
        "issuer": "rtm-auth",
        "access_ttl": timedelta(minutes=15),
        "refresh_ttl": timedelta(days=30),
        "leeway": timedelta(seconds=5),
        "account_throttle": ThrottlePolicy(5, base, timedelta(minutes=15), timedelta(minutes=15)),
        "address_throttle": ThrottlePolicy(20, base, timedelta(minutes=15), timedelta(minutes=15)),
        "pair_throttle": ThrottlePolicy(5, base, timedelta(minutes=15), timedelta(minutes=15)),
    }
    values.update(overrides)
    return AuthPolicy(**values)  # type: ignore[arg-type]


@dataclass
class ServiceKit:
    """Auth's services on fakes, with handles on each fake."""

    context: AuthContext
    store: InMemoryAuthStore
    throttle: InMemoryThrottleStore
    key_store: InMemoryKeyStore
    keys: KeyRing
    notifier: RecordingNotifier
    clock: FakeClock
    hasher: Argon2PasswordHasher

    @property
    def accounts(self) -> AccountService:
        return self.context.accounts

    @property
    def logins(self) -> LoginService:
        return self.context.logins

    @property
    def sessions(self) -> SessionService:
        return self.context.sessions

    @property
    def authenticator(self) -> Authenticator:
        return self.context.authenticator


async def service_kit(hasher: Argon2PasswordHasher | None = None, **policy: object) -> ServiceKit:
    """The services wired as in production (`wire_services`), on fakes and a fake clock."""
    clock = FakeClock()
    store, throttle, key_store = InMemoryAuthStore(), InMemoryThrottleStore(), InMemoryKeyStore()
    settings = make_policy(**policy)
    keys = KeyRing(
        key_store,
        KeyCipher(TEST_SECRET),
        clock,
        access_ttl=settings.access_ttl,
        leeway=settings.leeway,
        publish_lead=timedelta(seconds=60),
        rotation_interval=timedelta(days=30),
    )
    await keys.ensure()
    hasher = hasher or Argon2PasswordHasher(FAST_ARGON2, workers=2)
    notifier = RecordingNotifier()
    context = wire_services(
        store=store,
        throttle=throttle,
        keys=keys,
        hasher=hasher,
        notifier=notifier,
        policy=settings,
        clock=clock,
        sleep=clock.sleep,
    )
    return ServiceKit(context, store, throttle, key_store, keys, notifier, clock, hasher)


CLIENT = ClientInfo(address="192.0.2.7", user_agent="pytest")


async def signed_up(kit: ServiceKit, name: str = "alice", password: str = "password-1") -> None:
    """Register `name` (no client address: not rate limited)."""
    await kit.accounts.register(name, password, None)
