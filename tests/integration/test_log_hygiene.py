"""No secrets and no message bodies at INFO (issue 5, observability).

Real auth (gRPC + HTTP), producer and consumer run in this process on one nats-server and one
database, with every log record captured at DEBUG. Users register, log in (once with a wrong
password), refresh, create a conversation, send over WebSocket (authenticating by frame) and over
HTTP (once twice, a duplicate), receive live on the consumer's WebSocket, page the history and
log out. Then no record at INFO or above, formatted as the JSON formatter prints it (message,
extra fields, traceback), may contain a password, an access or refresh token, or a body.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import websockets

from rtm.auth.bootstrap import build
from rtm.consumer.bootstrap import create_app as create_consumer_app
from rtm.consumer.settings import ConsumerSettings
from rtm.producer.bootstrap import create_app as create_producer_app
from rtm.shared.logging import ContextFilter, JsonFormatter
from tests.e2e.client import next_frame
from tests.integration.auth.conftest import make_settings
from tests.integration.consumer.conftest import wait_ready as consumer_ready
from tests.integration.producer.conftest import PARTITIONS, settings_for
from tests.integration.producer.conftest import wait_ready as producer_ready
from tests.support.asgi import running, running_consumer


@dataclass
class Urls:
    auth: str
    producer: str
    consumer: str


@pytest.fixture
async def logs(caplog: pytest.LogCaptureFixture) -> AsyncIterator[pytest.LogCaptureFixture]:
    context = ContextFilter()
    caplog.handler.addFilter(context)
    caplog.set_level(logging.DEBUG)
    yield caplog
    caplog.handler.removeFilter(context)


@pytest.fixture
async def system(
    logs: pytest.LogCaptureFixture, database_url: str, nats_url: str
) -> AsyncIterator[Urls]:
    auth = build(make_settings(database_url, nats_url))
    await auth.start()
    try:
        await auth.wait_ready()
        auth_url = f"http://127.0.0.1:{auth.http_port}"
        producer = create_producer_app(settings_for(database_url, nats_url, auth_url))
        consumer = create_consumer_app(
            ConsumerSettings(
                database_url=database_url,
                nats_url=nats_url,
                auth_url=auth_url,
                partitions=PARTITIONS,
                instance_id="c1",
                migrate_on_start=False,
                fetch_timeout_s=0.2,
            )
        )
        async with running(producer) as producer_base, running_consumer(consumer) as consumer_base:
            await producer_ready(producer_base)
            await consumer_ready(consumer_base)
            yield Urls(auth_url, f"http://{producer_base}", f"http://{consumer_base}")
    finally:
        await auth.stop()


async def test_no_secret_and_no_body_is_logged_at_info(
    system: Urls, logs: pytest.LogCaptureFixture
) -> None:
    secrets: list[str] = []

    def secret(value: str) -> str:
        secrets.append(value)
        return value

    alice_pw = secret(f"alice-pw-{uuid.uuid4().hex}")
    bob_pw = secret(f"bob-pw-{uuid.uuid4().hex}")
    wrong_pw = secret(f"wrong-pw-{uuid.uuid4().hex}")
    ws_body = secret(f"ws-body-{uuid.uuid4().hex}")
    http_body = secret(f"http-body-{uuid.uuid4().hex}")

    async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
        for name, password in (("alice", alice_pw), ("bob", bob_pw)):
            created = await http.post(
                f"{system.auth}/v1/auth/register", json={"username": name, "password": password}
            )
            assert created.status_code == 201, created.text
        refused = await http.post(
            f"{system.auth}/v1/auth/login", json={"username": "alice", "password": wrong_pw}
        )
        assert refused.status_code == 401
        grants = {}
        for name, password in (("alice", alice_pw), ("bob", bob_pw)):
            login = await http.post(
                f"{system.auth}/v1/auth/login", json={"username": name, "password": password}
            )
            assert login.status_code == 200, login.text
            grants[name] = login.json()
            secret(grants[name]["access_token"])
            secret(grants[name]["refresh_token"])
        refreshed = await http.post(
            f"{system.auth}/v1/auth/refresh",
            json={"refresh_token": grants["alice"]["refresh_token"]},
        )
        assert refreshed.status_code == 200, refreshed.text
        alice = refreshed.json()
        secret(alice["access_token"])
        secret(alice["refresh_token"])
        alice_auth = {"Authorization": f"Bearer {alice['access_token']}"}
        bob_auth = {"Authorization": f"Bearer {grants['bob']['access_token']}"}

        created = await http.post(
            f"{system.producer}/v1/conversations",
            headers=alice_auth,
            json={"kind": "direct", "member_ids": [grants["bob"]["user"]["id"]]},
        )
        assert created.status_code == 201, created.text
        conversation = created.json()["id"]
        consumer_ws = system.consumer.replace("http://", "ws://") + "/v1/ws"
        producer_ws = system.producer.replace("http://", "ws://") + "/v1/ws"

        async with websockets.connect(consumer_ws, additional_headers=bob_auth) as bob_ws:
            await next_frame(bob_ws, "ready")
            await bob_ws.send(json.dumps({"type": "resume", "cursors": {conversation: 0}}))
            await next_frame(bob_ws, "resumed")
            async with websockets.connect(producer_ws) as alice_ws:
                await alice_ws.send(json.dumps({"type": "auth", "token": alice["access_token"]}))
                await next_frame(alice_ws, "auth_ok")
                await alice_ws.send(
                    json.dumps(
                        {
                            "type": "send",
                            "client_msg_id": str(uuid.uuid4()),
                            "conversation_id": conversation,
                            "body": ws_body,
                        }
                    )
                )
                assert (await next_frame(alice_ws, "ack"))["duplicate"] is False
            send = {
                "client_msg_id": str(uuid.uuid4()),
                "conversation_id": conversation,
                "body": http_body,
            }
            for duplicate in (False, True):
                sent = await http.post(
                    f"{system.producer}/v1/messages", headers=alice_auth, json=send
                )
                assert sent.status_code == 202, sent.text
                assert sent.json()["duplicate"] is duplicate
            received = [(await next_frame(bob_ws, "message"))["body"] for _ in range(2)]
        assert received == [ws_body, http_body]

        history = await http.get(
            f"{system.consumer}/v1/conversations/{conversation}/messages", headers=bob_auth
        )
        assert [m["body"] for m in history.json()["messages"]] == [ws_body, http_body]
        logout = await http.post(
            f"{system.auth}/v1/auth/logout",
            headers=alice_auth,
            json={"refresh_token": alice["refresh_token"]},
        )
        assert logout.status_code == 204, logout.text

    formatter = JsonFormatter("test")
    lines = [(r, formatter.format(r)) for r in logs.records]
    leaks = [
        f"{record.levelname} {record.name}: {line[:300]}"
        for record, line in lines
        if record.levelno >= logging.INFO and any(value in line for value in secrets)
    ]
    assert leaks == []
    # The capture saw the services at work, at INFO and below (the check is not vacuous).
    assert any(r.getMessage().startswith("registered user") for r, _ in lines)
    assert any(r.levelno == logging.DEBUG for r, _ in lines)
