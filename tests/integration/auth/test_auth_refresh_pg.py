"""Refresh-token rotation on PostgreSQL: spent tokens, reuse detection, concurrent refreshes."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import asyncpg
import grpc
import pytest

from rtm.auth.proto import auth_pb2 as pb
from tests.integration.auth.conftest import Stub
from tests.support.clock import FakeClock


async def session_row(db_url: str, session_id: str) -> asyncpg.Record:
    conn = await asyncpg.connect(db_url)
    try:
        row = await conn.fetchrow(
            "SELECT revoked_at, revoke_reason FROM auth.sessions WHERE id = $1",
            uuid.UUID(session_id),
        )
    finally:
        await conn.close()
    assert row is not None
    return row


async def logged_in(stub: Stub) -> pb.TokenGrant:
    await stub.Register(pb.RegisterRequest(username="alice", password="password-1"))
    return await stub.Login(pb.LoginRequest(username="alice", password="password-1"))


async def test_each_refresh_spends_the_token_it_used(stub: Stub) -> None:
    grant = await logged_in(stub)
    tokens = [grant.refresh_token]
    for _ in range(3):
        reply = await stub.Refresh(pb.RefreshRequest(refresh_token=tokens[-1]))
        assert reply.session_id == grant.session_id
        tokens.append(reply.refresh_token)
    assert len(set(tokens)) == 4
    checked = await stub.ValidateToken(pb.ValidateTokenRequest(access_token=reply.access_token))
    assert checked.session_id == grant.session_id


async def test_reuse_of_a_spent_token_revokes_the_whole_session(stub: Stub, db_url: str) -> None:
    grant = await logged_in(stub)
    current = await stub.Refresh(pb.RefreshRequest(refresh_token=grant.refresh_token))
    with pytest.raises(grpc.aio.AioRpcError) as reuse:
        await stub.Refresh(pb.RefreshRequest(refresh_token=grant.refresh_token))
    assert reuse.value.code() is grpc.StatusCode.UNAUTHENTICATED
    row = await session_row(db_url, grant.session_id)
    assert row["revoke_reason"] == "refresh_reuse"
    with pytest.raises(grpc.aio.AioRpcError) as latest:
        await stub.Refresh(pb.RefreshRequest(refresh_token=current.refresh_token))
    assert latest.value.code() is grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.ValidateToken(pb.ValidateTokenRequest(access_token=current.access_token))


async def test_twenty_concurrent_refreshes_of_one_token_give_exactly_one_success(
    stub: Stub, db_url: str
) -> None:
    """PostgreSQL picks one winner; the other 19 present a spent token, i.e. reuse (which, as the
    protocol says, ends the session: a client must not refresh one token concurrently)."""
    grant = await logged_in(stub)
    outcomes = await asyncio.gather(
        *(stub.Refresh(pb.RefreshRequest(refresh_token=grant.refresh_token)) for _ in range(20)),
        return_exceptions=True,
    )
    winners = [o for o in outcomes if isinstance(o, pb.TokenGrant)]
    losers = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(winners) == 1
    assert len(losers) == 19
    assert {e.code() for e in losers} == {grpc.StatusCode.UNAUTHENTICATED}
    assert (await session_row(db_url, grant.session_id))["revoke_reason"] == "refresh_reuse"


async def test_an_expired_refresh_token_is_refused(
    stub: Stub, db_url: str, clock: FakeClock
) -> None:
    grant = await logged_in(stub)
    conn = await asyncpg.connect(db_url)
    try:  # expired by auth's clock (a fake one, started at the real time, truncated)
        await conn.execute(
            "UPDATE auth.refresh_tokens SET expires_at = $1", clock.now() - timedelta(seconds=1)
        )
    finally:
        await conn.close()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Refresh(pb.RefreshRequest(refresh_token=grant.refresh_token))
    assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert (await session_row(db_url, grant.session_id))["revoked_at"] is None  # not a reuse
