"""Signing keys in PostgreSQL: one first key among racing processes; rotation seen by verifiers."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import pytest

from rtm.auth.adapters.key_store import PostgresKeyStore
from rtm.auth.bootstrap import build
from rtm.auth.domain.exceptions import Unavailable
from rtm.auth.domain.keys import KeyCipher
from rtm.auth.proto import auth_pb2 as pb
from rtm.auth.proto.auth_pb2_grpc import AuthServiceStub
from rtm.auth.services.keyring import KeyRing
from rtm.shared.clock import utcnow
from rtm.shared.postgres import PostgresDatabase
from rtm.shared.tokens import TokenError, TokenVerifier
from tests.integration.auth.conftest import KEY_SECRET, make_settings


async def test_processes_starting_together_create_one_key(db_url: str) -> None:
    databases = [
        PostgresDatabase(db_url, pool_size=2, timeout=5.0, unavailable=Unavailable)
        for _ in range(5)
    ]
    try:
        rings = []
        for db in databases:
            await db.open()
            rings.append(
                KeyRing(
                    PostgresKeyStore(db),
                    KeyCipher(KEY_SECRET),
                    utcnow,
                    access_ttl=timedelta(minutes=15),
                    leeway=timedelta(seconds=5),
                    publish_lead=timedelta(0),
                    rotation_interval=None,
                )
            )
        await asyncio.gather(*(ring.ensure() for ring in rings))
        assert len({ring.signing_key().kid for ring in rings}) == 1
        conn = await asyncpg.connect(db_url)
        try:
            assert await conn.fetchval("SELECT count(*) FROM auth.signing_keys") == 1
            stored = await conn.fetchval("SELECT private_key FROM auth.signing_keys")
        finally:
            await conn.close()
        raw = rings[0].signing_key().private_key.private_bytes_raw()
        assert raw not in bytes(stored)  # encrypted at rest
    finally:
        for db in databases:
            await db.close()


async def test_rotation_keeps_old_tokens_valid_and_verifiers_follow(db_url: str) -> None:
    """A verifier with a cached JWKS learns the new kid on first sight; old tokens still pass."""
    runtime = build(make_settings(db_url, key_publish_lead_seconds=0))
    await runtime.start(serve_http=True)
    try:
        await runtime.wait_ready()
        import grpc

        async with grpc.aio.insecure_channel(f"127.0.0.1:{runtime.grpc_port}") as channel:
            stub = AuthServiceStub(channel)
            await stub.Register(pb.RegisterRequest(username="alice", password="password-1"))
            old = await stub.Login(pb.LoginRequest(username="alice", password="password-1"))
            verifier = TokenVerifier(
                f"http://127.0.0.1:{runtime.http_port}/.well-known/jwks.json",
                "rtm-auth",
                refresh_interval=0.0,
            )
            await verifier.refresh()
            assert (
                await verifier.verify(old.access_token)
            ).session_id.hex == old.session_id.replace("-", "")

            old_kid = runtime.keys.signing_key().kid
            new_kid = await runtime.keys.rotate(lead=timedelta(0))
            assert new_kid is not None
            assert new_kid != old_kid
            new = await stub.Refresh(pb.RefreshRequest(refresh_token=old.refresh_token))
            import jwt

            assert jwt.get_unverified_header(new.access_token)["kid"] == new_kid
            await verifier.verify(new.access_token)  # unknown kid -> one JWKS refetch
            await verifier.verify(old.access_token)  # the old key is still published
            jwks = await stub.GetJwks(pb.GetJwksRequest())
            assert [k.kid for k in jwks.keys] == [new_kid, old_kid]
            await stub.ValidateToken(pb.ValidateTokenRequest(access_token=old.access_token))
            with pytest.raises(TokenError):
                await verifier.verify(old.access_token[:-4] + "AAAA")
    finally:
        await runtime.stop()
