"""`PostgresDatabase.connection` after a failure that is neither an outage nor PostgreSQL's own
error (a bug, or a value asyncpg cannot encode): that request fails, and the next ones are
served as before — the terminated connection must not cost the pool a slot."""

from __future__ import annotations

import asyncpg
import pytest

from rtm.shared.errors import ErrorCode, RtmError
from tests.support.db import opened_database

pytestmark = pytest.mark.asyncio


class _Unavailable(RtmError):
    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.UNAVAILABLE, message)


@pytest.mark.parametrize("pool_size", [1, 2])
async def test_a_value_asyncpg_cannot_encode_fails_only_its_own_request(
    database_url: str, pool_size: int
) -> None:
    async with opened_database(
        database_url, _Unavailable, pool_size=pool_size, timeout=5.0
    ) as database:
        for _ in range(3 * pool_size):
            with pytest.raises(asyncpg.DataError):
                async with database.connection() as conn:
                    await conn.fetchval("SELECT $1::bigint", 2**70)
        for _ in range(3 * pool_size):
            async with database.connection() as conn:
                assert await conn.fetchval("SELECT $1::bigint", 2**62) == 2**62
        assert await database.check() is None
