"""The consumer's HTTP API keeps the promises of its OpenAPI document (issue 11).

schemathesis (every check) runs over every operation of the document the app serves at
`/v1/openapi.json` against a real consumer on real PostgreSQL and NATS, authenticated with a
valid bearer token so the checks reach past 401. The conversation the document uses as its
example exists, with stored messages, and the token's user is a member, so the examples phase
gets real pages of history; random ids get 404. The run is bounded and deterministic (the
harness, tests/support/openapi_contract.py), so CI sees the same requests every time.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import nats
import pytest
import schemathesis

from rtm.consumer.bootstrap import create_app
from rtm.consumer.entrypoints.http import EXAMPLE_CONVERSATION
from rtm.consumer.settings import ConsumerSettings
from rtm.local.nats import EmbeddedNats
from tests.integration.consumer.conftest import publish, settings_for
from tests.support.asgi import running_consumer
from tests.support.db import create_conversation
from tests.support.openapi_contract import (
    CONTRACT_SETTINGS,
    call_and_check,
    contract_schema,
    served_from_thread,
)
from tests.support.tokens import TokenFactory

MESSAGES = 5


async def seed_example_conversation(database_url: str, nats_url: str, user: uuid.UUID) -> None:
    """The document's example conversation, `user` a member, with `MESSAGES` messages sent."""
    peer = uuid.uuid4()
    await create_conversation(database_url, [user, peer], conversation=EXAMPLE_CONVERSATION)
    client = await nats.connect(nats_url)
    try:
        for n in range(MESSAGES):
            await publish(client, EXAMPLE_CONVERSATION, peer, f"message {n}")
    finally:
        await client.close()


def wait_for_history(base_url: str, token: str) -> None:
    """Until the consumer has stored the seeded messages."""
    url = f"{base_url}/v1/conversations/{EXAMPLE_CONVERSATION}/messages"
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}) as client:
        for _ in range(200):
            response = client.get(url)
            if response.status_code == 200 and len(response.json()["messages"]) == MESSAGES:
                return
            time.sleep(0.05)
    raise TimeoutError("the example conversation's messages were not stored")


@pytest.fixture(scope="module")
def consumer_url(
    shared_database_url: str, shared_nats: EmbeddedNats, auth_url: str
) -> Iterator[str]:
    settings = settings_for(shared_database_url, shared_nats.url, auth_url)
    with served_from_thread(running_consumer(create_app(settings))) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def member_token(
    consumer_url: str, shared_database_url: str, shared_nats: EmbeddedNats, tokens: TokenFactory
) -> str:
    """The token of a member of the example conversation, its messages stored."""
    user = uuid.uuid4()
    token = tokens.token(user, ttl=900)
    asyncio.run(seed_example_conversation(shared_database_url, shared_nats.url, user))
    wait_for_history(consumer_url, token)
    return token


# Building the app does no I/O: its document, with no NATS or PostgreSQL anywhere.
DOCUMENT = create_app(ConsumerSettings(migrate_on_start=False)).openapi()
schema = contract_schema(DOCUMENT)


def test_the_document_checked_is_the_one_served(consumer_url: str) -> None:
    assert httpx.get(f"{consumer_url}/v1/openapi.json").json() == DOCUMENT


@schema.parametrize()
@CONTRACT_SETTINGS
def test_every_operation_keeps_its_documented_promises(
    case: schemathesis.Case[Any], consumer_url: str, member_token: str
) -> None:
    call_and_check(case, consumer_url, lambda: member_token)
