"""PostgreSQL adapter of `ThrottleStore`: failed-login records shared by every auth process
(the rules that read them are `rtm.auth.domain.throttle`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from rtm.auth.domain.throttle import FailureRecord
from rtm.shared.postgres import PostgresDatabase

_MAX_FAILURES = 1_000_000


class PostgresThrottleStore:
    """`ThrottleStore` on `auth.login_throttle`, shared by every auth process."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def records(self, keys: Sequence[str]) -> dict[str, FailureRecord]:
        async with self._db.connection() as conn:
            rows = await conn.fetch(
                "SELECT key, failures, last_failure_at FROM auth.login_throttle"
                " WHERE key = ANY($1::text[])",
                list(keys),
            )
        return {row["key"]: FailureRecord(row["failures"], row["last_failure_at"]) for row in rows}

    async def record_failure(self, keys: Sequence[str], *, now: datetime, window_s: float) -> None:
        # Sorted keys: two logins upserting the same pair lock rows in one order (no deadlock).
        async with self._db.connection() as conn:
            await conn.execute(
                "INSERT INTO auth.login_throttle AS t (key, failures, last_failure_at)"
                " SELECT k, 1, $2 FROM unnest($1::text[]) AS k ORDER BY k"
                " ON CONFLICT (key) DO UPDATE SET"
                " failures = CASE WHEN t.last_failure_at <= $2 - make_interval(secs => $3)"
                " THEN 1 ELSE least(t.failures + 1, $4) END,"
                " last_failure_at = $2",
                sorted(set(keys)), now, window_s, _MAX_FAILURES,
            )  # fmt: skip

    async def clear(self, key: str) -> None:
        async with self._db.connection() as conn:
            await conn.execute("DELETE FROM auth.login_throttle WHERE key = $1", key)
