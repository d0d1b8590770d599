"""PostgreSQL adapter of `AuthStore` (users, sessions, refresh tokens) and the revocation outbox.

Races are settled by PostgreSQL, not by the process: the unique index decides who gets a
username, and spending a refresh token is one conditional UPDATE (`rotated_at IS NULL`), so of any
number of concurrent refreshes with one token exactly one finds the row unspent.

Each method is one bounded use of a connection (`rtm.shared.postgres.PostgresDatabase`, built
with auth's `Unavailable`), a transaction where it writes more than one row: an outage is
`Unavailable` within the database timeout, and a failed use never leaves its connection to
another request.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from rtm.auth.domain.exceptions import UsernameTaken
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
from rtm.shared.contract import SessionRevoked
from rtm.shared.postgres import PostgresDatabase

PURGE_TIMEOUT_S = 60.0  # hourly housekeeping may delete many rows: not a request's bound


def _user(row: Any) -> User:
    return User(
        id=row["id"],
        username=row["username"],
        display_name=row["display_name"],
        created_at=row["created_at"],
    )


def _session(row: Any) -> Session:
    return Session(
        id=row["id"],
        user_id=row["user_id"],
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        expires_at=row["expires_at"],
        user_agent=row["user_agent"],
        ip=row["ip"],
    )


def _like_prefix(prefix: str) -> str:
    """`prefix%` with LIKE's wildcards escaped (`_` is a legal username character)."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


class PostgresAuthStore:
    """`AuthStore` on the `auth` schema."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def create_user(self, user: User, password_hash: str) -> None:
        async with self._db.connection() as conn:
            try:
                await conn.execute(
                    "INSERT INTO auth.users (id, username, display_name, password_hash, created_at)"
                    " VALUES ($1, $2, $3, $4, $5)",
                    user.id, user.username, user.display_name, password_hash, user.created_at,
                )  # fmt: skip
            except asyncpg.UniqueViolationError as exc:
                raise UsernameTaken() from exc

    async def credentials(self, username: str) -> Credentials | None:
        async with self._db.connection() as conn:
            row = await conn.fetchrow(
                "SELECT u.id, u.username, u.display_name, u.created_at, u.password_hash"
                " FROM auth.users u WHERE u.username = $1 AND u.deleted_at IS NULL",
                username,
            )
        return None if row is None else Credentials(_user(row), row["password_hash"])

    async def set_password_hash(self, user_id: uuid.UUID, password_hash: str) -> None:
        async with self._db.connection() as conn:
            await conn.execute(
                "UPDATE auth.users SET password_hash = $2 WHERE id = $1", user_id, password_hash
            )

    async def user(self, user_id: uuid.UUID) -> User | None:
        async with self._db.connection() as conn:
            row = await conn.fetchrow(
                "SELECT u.id, u.username, u.display_name, u.created_at FROM auth.users u"
                " WHERE u.id = $1 AND u.deleted_at IS NULL",
                user_id,
            )
        return None if row is None else _user(row)

    async def search_users(self, prefix: str, limit: int) -> Sequence[User]:
        async with self._db.connection() as conn:
            rows = await conn.fetch(
                "SELECT u.id, u.username, u.display_name, u.created_at FROM auth.users u"
                " WHERE u.username LIKE $1 AND u.deleted_at IS NULL"
                " ORDER BY u.username LIMIT $2",
                _like_prefix(prefix),
                limit,
            )
        return [_user(row) for row in rows]

    async def find_user_id(self, username: str) -> uuid.UUID | None:
        async with self._db.connection() as conn:
            found: uuid.UUID | None = await conn.fetchval(
                "SELECT id FROM auth.users WHERE username = $1", username
            )
        return found

    async def delete_user(
        self, user_id: uuid.UUID, *, now: datetime, reason: RevokeReason
    ) -> Deletion | None:
        async with self._db.transaction() as conn:
            # FOR UPDATE waits for logins holding the row (create_session) and makes later ones
            # see the deletion; the sessions those logins opened are visible to the next query.
            row = await conn.fetchrow(
                "SELECT id, username, display_name, created_at, deleted_at FROM auth.users"
                " WHERE id = $1 FOR UPDATE",
                user_id,
            )
            if row is None:
                return None
            if row["deleted_at"] is None:
                await conn.execute(
                    "UPDATE auth.users SET deleted_at = $2 WHERE id = $1", user_id, now
                )
            live = await conn.fetch(
                "SELECT id FROM auth.sessions"
                " WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2",
                user_id,
                now,
            )
            revoked = [await self._revoke(conn, r["id"], now, reason) for r in live]
        return Deletion(
            _user(row), row["deleted_at"] is None, tuple(s for s in revoked if s is not None)
        )

    async def create_session(self, session: Session, refresh_hash: bytes) -> bool:
        async with self._db.transaction() as conn:
            live = await conn.fetchval(
                "SELECT 1 FROM auth.users WHERE id = $1 AND deleted_at IS NULL FOR SHARE",
                session.user_id,
            )  # a running delete_user holds the row: wait for it, then see the deletion
            if live is None:
                return False
            await conn.execute(
                "INSERT INTO auth.sessions (id, user_id, created_at, last_used_at, expires_at,"
                " user_agent, ip) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                session.id, session.user_id, session.created_at, session.last_used_at,
                session.expires_at, session.user_agent, session.ip,
            )  # fmt: skip
            await conn.execute(
                "INSERT INTO auth.refresh_tokens (token_hash, session_id, issued_at, expires_at)"
                " VALUES ($1, $2, $3, $4)",
                refresh_hash, session.id, session.created_at, session.expires_at,
            )  # fmt: skip
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
        async with self._db.transaction() as conn:
            session_id = await conn.fetchval(
                "UPDATE auth.refresh_tokens t SET rotated_at = $3, replaced_by = $2"
                " FROM auth.sessions s, auth.users u"
                " WHERE t.token_hash = $1 AND t.rotated_at IS NULL AND t.expires_at > $3"
                " AND s.id = t.session_id AND s.revoked_at IS NULL AND s.expires_at > $3"
                " AND u.id = s.user_id AND u.deleted_at IS NULL"
                " RETURNING t.session_id",
                old_hash, new_hash, now,
            )  # fmt: skip
            if session_id is not None:
                await conn.execute(
                    "INSERT INTO auth.refresh_tokens"
                    " (token_hash, session_id, issued_at, expires_at) VALUES ($1, $2, $3, $4)",
                    new_hash, session_id, now, expires_at,
                )  # fmt: skip
                row = await conn.fetchrow(
                    "UPDATE auth.sessions s SET last_used_at = $2, expires_at = $3,"
                    " user_agent = COALESCE($4, s.user_agent), ip = COALESCE($5, s.ip)"
                    " FROM auth.users u WHERE s.id = $1 AND u.id = s.user_id"
                    " RETURNING s.id, s.user_id, s.created_at, s.last_used_at, s.expires_at,"
                    " s.user_agent, s.ip, u.username, u.display_name,"
                    " u.created_at AS user_created_at",
                    session_id, now, expires_at, client.user_agent, client.address,
                )  # fmt: skip
                assert row is not None  # the UPDATE above saw it, and we hold its token's lock
                user = User(row["user_id"], row["username"], row["display_name"],
                            row["user_created_at"])  # fmt: skip
                return Rotation(RotateOutcome.ROTATED, _session(row), user)
            spent = await conn.fetchval(
                "SELECT session_id FROM auth.refresh_tokens"
                " WHERE token_hash = $1 AND rotated_at IS NOT NULL",
                old_hash,
            )
            if spent is None:
                return Rotation(RotateOutcome.INVALID)
            revoked = await self._revoke(conn, spent, now, RevokeReason.REFRESH_REUSE)
            if revoked is None:
                return Rotation(RotateOutcome.INVALID)
            return Rotation(RotateOutcome.REUSED, revoked)

    async def revoke_by_refresh_token(
        self, token_hash: bytes, *, now: datetime, reason: RevokeReason
    ) -> tuple[Session, bool] | None:
        async with self._db.transaction() as conn:
            session_id = await conn.fetchval(
                "SELECT session_id FROM auth.refresh_tokens WHERE token_hash = $1", token_hash
            )
            if session_id is None:
                return None
            revoked = await self._revoke(conn, session_id, now, reason)
            if revoked is not None:
                return revoked, True
            row = await conn.fetchrow(
                "SELECT s.id, s.user_id, s.created_at, s.last_used_at, s.expires_at,"
                " s.user_agent, s.ip FROM auth.sessions s WHERE s.id = $1",
                session_id,
            )
            return None if row is None else (_session(row), False)

    async def revoke_session(
        self, session_id: uuid.UUID, user_id: uuid.UUID, *, now: datetime, reason: RevokeReason
    ) -> bool | None:
        async with self._db.transaction() as conn:
            owner = await conn.fetchval(
                "SELECT user_id FROM auth.sessions WHERE id = $1 FOR UPDATE", session_id
            )
            if owner != user_id:
                return None
            return await self._revoke(conn, session_id, now, reason) is not None

    async def session_is_live(
        self, session_id: uuid.UUID, user_id: uuid.UUID, *, now: datetime
    ) -> bool:
        async with self._db.connection() as conn:
            found = await conn.fetchval(
                "SELECT 1 FROM auth.sessions s JOIN auth.users u ON u.id = s.user_id"
                " WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL"
                " AND s.expires_at > $3 AND u.deleted_at IS NULL",
                session_id, user_id, now,
            )  # fmt: skip
        return found is not None

    async def live_sessions(self, user_id: uuid.UUID, *, now: datetime) -> Sequence[Session]:
        async with self._db.connection() as conn:
            rows = await conn.fetch(
                "SELECT s.id, s.user_id, s.created_at, s.last_used_at, s.expires_at,"
                " s.user_agent, s.ip FROM auth.sessions s WHERE s.user_id = $1"
                " AND s.revoked_at IS NULL AND s.expires_at > $2"
                " ORDER BY s.created_at DESC LIMIT 200",
                user_id,
                now,
            )
        return [_session(row) for row in rows]

    async def unpublished_revocations(self, limit: int = 100) -> list[SessionRevoked]:
        """Revocations whose event has not reached NATS yet (the relay's work list)."""
        async with self._db.connection() as conn:
            rows = await conn.fetch(
                "SELECT id, user_id FROM auth.sessions"
                " WHERE revoked_at IS NOT NULL AND NOT revocation_published"
                " ORDER BY revoked_at LIMIT $1",
                limit,
            )
        return [SessionRevoked(session_id=row["id"], user_id=row["user_id"]) for row in rows]

    async def mark_revocation_published(self, session_id: uuid.UUID) -> None:
        async with self._db.connection() as conn:
            await conn.execute(
                "UPDATE auth.sessions SET revocation_published = true WHERE id = $1", session_id
            )

    async def purge(self, *, now: datetime, throttle_window_s: float) -> None:
        """Housekeeping: forget refresh tokens past expiry and stale throttling records."""
        async with self._db.connection(PURGE_TIMEOUT_S) as conn:
            await conn.execute("DELETE FROM auth.refresh_tokens WHERE expires_at < $1", now)
            await conn.execute(
                "DELETE FROM auth.login_throttle"
                " WHERE last_failure_at < $1 - make_interval(secs => $2)",
                now,
                throttle_window_s,
            )

    @staticmethod
    async def _revoke(
        conn: asyncpg.Connection, session_id: uuid.UUID, now: datetime, reason: RevokeReason
    ) -> Session | None:
        """Revoke if still live; returns the session when this call revoked it."""
        row = await conn.fetchrow(
            "UPDATE auth.sessions s SET revoked_at = $2, revoke_reason = $3"
            " WHERE s.id = $1 AND s.revoked_at IS NULL RETURNING s.id, s.user_id, s.created_at,"
            " s.last_used_at, s.expires_at, s.user_agent, s.ip",
            session_id,
            now,
            reason.value,
        )
        return None if row is None else _session(row)
