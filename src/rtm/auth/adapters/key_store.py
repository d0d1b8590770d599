"""PostgreSQL adapter of `KeyStore`: the signing keys every auth process shares.

Key creation and rotation take a transaction-scoped advisory lock, so several auth processes
starting (or rotating) at once agree on one outcome; the lock is released at commit or when the
connection dies, never left behind by a crashed process.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from rtm.auth.adapters.postgres import PURGE_TIMEOUT_S
from rtm.auth.domain.ports import StoredKey
from rtm.shared.postgres import PostgresDatabase

_KEY_LOCK = 0x72746D_4B4559  # "rtm" "KEY"


class PostgresKeyStore:
    """`KeyStore` on `auth.signing_keys`."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def load(self, *, now: datetime) -> Sequence[StoredKey]:
        async with self._db.connection() as conn:
            rows = await conn.fetch(
                "SELECT kid, private_key, public_jwk::text AS jwk, created_at, activates_at,"
                " retire_after FROM auth.signing_keys"
                " WHERE retire_after IS NULL OR retire_after > $1",
                now,
            )
        return [
            StoredKey(
                kid=row["kid"],
                encrypted_private_key=bytes(row["private_key"]),
                public_jwk=json.loads(row["jwk"]),
                created_at=row["created_at"],
                activates_at=row["activates_at"],
                retire_after=row["retire_after"],
            )
            for row in rows
        ]

    async def add_first(self, key: StoredKey, *, now: datetime) -> bool:
        async with self._db.transaction() as conn:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _KEY_LOCK)
            live = await conn.fetchval(
                "SELECT 1 FROM auth.signing_keys WHERE retire_after IS NULL OR retire_after > $1"
                " LIMIT 1",
                now,
            )
            if live is not None:
                return False
            await self._insert(conn, key)
            return True

    async def rotate(
        self, key: StoredKey, *, retire_old_after: datetime, unless_newer_than: datetime | None
    ) -> bool:
        async with self._db.transaction() as conn:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _KEY_LOCK)
            if unless_newer_than is not None:
                newest = await conn.fetchval(
                    "SELECT max(created_at) FROM auth.signing_keys"
                    " WHERE retire_after IS NULL OR retire_after > $1",
                    key.created_at,
                )
                if newest is not None and newest > unless_newer_than:
                    return False
            await conn.execute(
                "UPDATE auth.signing_keys SET retire_after = $1 WHERE retire_after IS NULL",
                retire_old_after,
            )
            await self._insert(conn, key)
            return True

    @staticmethod
    async def _insert(conn: asyncpg.Connection, key: StoredKey) -> None:
        await conn.execute(
            "INSERT INTO auth.signing_keys (kid, private_key, public_jwk, created_at, activates_at,"
            " retire_after) VALUES ($1, $2, $3::jsonb, $4, $5, $6)",
            key.kid, key.encrypted_private_key, json.dumps(key.public_jwk), key.created_at,
            key.activates_at, key.retire_after,
        )  # fmt: skip

    async def purge(self, *, now: datetime) -> None:
        """Drop keys retired a day ago (no token they signed can still be live)."""
        async with self._db.connection(PURGE_TIMEOUT_S) as conn:
            await conn.execute(
                "DELETE FROM auth.signing_keys WHERE retire_after < $1 - interval '1 day'", now
            )
