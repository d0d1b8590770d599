"""Revocations reach NATS (core subject and KV bucket), even when NATS was down at the time."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import grpc
import nats
import pytest
from nats.aio.msg import Msg

from rtm.auth.bootstrap import build
from rtm.auth.proto import auth_pb2 as pb
from rtm.auth.proto.auth_pb2_grpc import AuthServiceStub
from rtm.local.nats import EmbeddedNats
from rtm.local.process import free_port
from rtm.shared.contract import SESSION_REVOKED, SessionRevoked
from tests.integration.auth.conftest import make_settings


async def test_logout_and_revocation_publish_session_revoked(db_url: str, nats_url: str) -> None:
    runtime = build(make_settings(db_url, nats_url))
    await runtime.start(serve_http=False)
    nc = await nats.connect(nats_url)
    received: asyncio.Queue[SessionRevoked] = asyncio.Queue()

    async def on_message(msg: Msg) -> None:
        await received.put(SessionRevoked.decode(msg.data))

    await nc.subscribe(SESSION_REVOKED, cb=on_message)
    try:
        await runtime.wait_ready()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{runtime.grpc_port}") as channel:
            stub = AuthServiceStub(channel)
            await stub.Register(pb.RegisterRequest(username="alice", password="password-1"))
            one = await stub.Login(pb.LoginRequest(username="alice", password="password-1"))
            two = await stub.Login(pb.LoginRequest(username="alice", password="password-1"))
            await stub.Logout(pb.LogoutRequest(refresh_token=one.refresh_token))
            await stub.RevokeSession(
                pb.RevokeSessionRequest(session_id=two.session_id),
                metadata=(("authorization", f"Bearer {two.access_token}"),),
            )
        events = [await asyncio.wait_for(received.get(), 5.0) for _ in range(2)]
        assert {e.session_id for e in events} == {
            uuid.UUID(one.session_id),
            uuid.UUID(two.session_id),
        }
        assert {e.user_id for e in events} == {uuid.UUID(one.user.id)}
        for _ in range(100):  # the KV put follows the core publish: it may not be there yet
            try:  # (nor the bucket itself, on a first revocation)
                kv = await nc.jetstream().key_value("rtm_revoked_sessions")
                entry = await kv.get(one.session_id)
                break
            except (nats.js.errors.NotFoundError, nats.js.errors.BucketNotFoundError):
                await asyncio.sleep(0.05)
        else:
            pytest.fail("revocation not in the KV bucket")
        assert SessionRevoked.decode(entry.value or b"").session_id == uuid.UUID(one.session_id)
        status = await kv.status()
        assert status.ttl == pytest.approx(905, abs=1)  # access TTL + leeway
    finally:
        await nc.close()
        await runtime.stop()


async def test_revocations_made_while_nats_is_down_are_delivered_when_it_returns(
    db_url: str, tmp_path: Path
) -> None:
    server = EmbeddedNats(tmp_path / "nats", free_port(), free_port())
    runtime = build(make_settings(db_url, server.url))
    await runtime.start(serve_http=False)  # NATS is not running: auth starts anyway
    try:
        await runtime.wait_ready()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{runtime.grpc_port}") as channel:
            stub = AuthServiceStub(channel)
            await stub.Register(pb.RegisterRequest(username="alice", password="password-1"))
            grant = await stub.Login(pb.LoginRequest(username="alice", password="password-1"))
            await stub.Logout(pb.LogoutRequest(refresh_token=grant.refresh_token))
        assert not runtime.bus.connected
        await asyncio.to_thread(server.start)
        nc = await nats.connect(server.url)
        try:
            kv = None
            for _ in range(100):  # the relay creates the bucket and writes the entry
                try:
                    kv = await nc.jetstream().key_value("rtm_revoked_sessions")
                    entry = await kv.get(grant.session_id)
                    break
                except nats.js.errors.NotFoundError:
                    await asyncio.sleep(0.1)
            else:
                pytest.fail("revocation not delivered after NATS came back")
            assert SessionRevoked.decode(entry.value or b"").session_id == uuid.UUID(
                grant.session_id
            )
        finally:
            await nc.close()
    finally:
        await runtime.stop()
        await asyncio.to_thread(server.stop)
