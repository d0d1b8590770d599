"""`"wait":"stored"` (issue 14) on a real producer and consumer (NATS, PostgreSQL).

The ack of a send that asks to wait comes once PostgreSQL holds the message, with its `seq`, so
history read right after the ack has it. With no consumer running, the wait ends in
`not_stored_yet`; the message is not lost: once a consumer runs, the same `client_msg_id` resent
is acked `duplicate: true` with its seq. A send that does not ask is acked as before, no `seq`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from rtm.consumer.bootstrap import create_app as create_consumer
from rtm.producer.settings import ProducerSettings
from tests.integration.consumer.conftest import settings_for as consumer_settings_for
from tests.integration.consumer.conftest import wait_ready as consumer_ready
from tests.integration.producer.conftest import NewUser, open_socket, settings_for
from tests.integration.producer.test_producer_ws import direct
from tests.support.asgi import running_consumer

WAIT_S = 0.5


@pytest.fixture
def producer_settings(database_url: str, nats_url: str, auth_url: str) -> ProducerSettings:
    return settings_for(database_url, nats_url, auth_url, stored_wait_s=WAIT_S)


@asynccontextmanager
async def consumer(database_url: str, nats_url: str, auth_url: str) -> AsyncIterator[str]:
    settings = consumer_settings_for(database_url, nats_url, auth_url)
    async with running_consumer(create_consumer(settings)) as base:
        await consumer_ready(base)
        yield base


async def history(consumer_base: str, token: str, conversation: str) -> list[tuple[int, str]]:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http:
        page = await http.get(f"http://{consumer_base}/v1/conversations/{conversation}/messages")
    assert page.status_code == 200, page.text
    return [(m["seq"], m["message_id"]) for m in page.json()["messages"]]


def send(conversation: str, client_msg_id: str, **extra: str) -> dict[str, str]:
    return {
        "type": "send",
        "client_msg_id": client_msg_id,
        "conversation_id": conversation,
        "body": "hi",
        **extra,
    }


async def test_a_send_that_waits_is_acked_with_its_seq_once_history_holds_it(
    producer: str, new_user: NewUser, database_url: str, nats_url: str, auth_url: str
) -> None:
    alice, _, conversation = await direct(producer, new_user)
    async with (
        consumer(database_url, nats_url, auth_url) as receiver,
        open_socket(producer, alice) as ws,
    ):
        plain = str(uuid.uuid4())
        await ws.send(send(conversation, plain))
        first = await ws.recv()
        assert first["type"] == "ack"
        assert "seq" not in first  # the default ack is unchanged

        waited = str(uuid.uuid4())
        await ws.send(send(conversation, waited, wait="stored"))
        ack = await ws.recv()
        assert (ack["type"], ack["client_msg_id"], ack["duplicate"]) == ("ack", waited, False)
        assert ack["seq"] == 2
        assert (2, ack["message_id"]) in await history(receiver, alice.token, conversation)

        async with httpx.AsyncClient(headers=alice.headers) as http:
            posted = await http.post(
                f"http://{producer}/v1/messages",
                json={
                    "client_msg_id": str(uuid.uuid4()),
                    "conversation_id": conversation,
                    "body": "over http",
                    "wait": "stored",
                },
            )
            assert posted.status_code == 202, posted.text
            assert posted.json()["seq"] == 3
            assert (3, posted.json()["message_id"]) in await history(
                receiver, alice.token, conversation
            )
            unknown = await http.post(
                f"http://{producer}/v1/messages",
                json={
                    "client_msg_id": str(uuid.uuid4()),
                    "conversation_id": conversation,
                    "body": "x",
                    "wait": "forever",
                },
            )
            assert unknown.status_code == 422
            assert unknown.json()["error"]["field"] == "wait"

        await ws.send(send(conversation, waited, wait="stored"))  # a resend
        again = await ws.recv()
        assert (again["message_id"], again["duplicate"], again["seq"]) == (
            ack["message_id"],
            True,
            2,
        )


async def test_without_a_consumer_the_wait_ends_not_stored_yet_and_nothing_is_lost(
    producer: str, new_user: NewUser, database_url: str, nats_url: str, auth_url: str
) -> None:
    alice, _, conversation = await direct(producer, new_user)
    client_msg_id = str(uuid.uuid4())
    async with open_socket(producer, alice) as ws:
        await ws.send(send(conversation, client_msg_id, wait="stored"))
        late = await ws.recv()
        assert (late["type"], late["code"], late["ref"]) == (
            "error",
            "not_stored_yet",
            client_msg_id,
        )
        assert late["retry_after_ms"] > 0
        await ws.ping()  # the connection stays open

        async with consumer(database_url, nats_url, auth_url):
            await ws.send(send(conversation, client_msg_id, wait="stored"))
            ack = await ws.recv(timeout=15)
    assert (ack["type"], ack["duplicate"], ack["seq"]) == ("ack", True, 1)
