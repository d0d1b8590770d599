"""The producer's OpenAPI document tells the truth (issue 11): schemathesis, every built-in check,
over every operation of the HTTP API, against the real app on real NATS JetStream and PostgreSQL,
authenticated as a registered user so that the checks get past 401.

What it holds the document to: every status the service answers is documented, with a body of
the documented shape; what the schemas allow is accepted (so they state the service's rules:
lengths, NUL, blank bodies, the member count); what they refuse is refused (unknown fields
included). Bounded and deterministic (the harness, tests/support/openapi_contract.py), so that
CI is stable: a failure names the request to replay. The throttles are raised out of the way:
each operation is exercised, not its rate limit (test_producer_hostile_http.py covers those).

The server runs on the harness's thread with its own event loop: schemathesis calls it with
blocking requests from the test's thread. The document is the app's own (`app.openapi()`, what
`/v1/openapi.json` serves), read at import so that pytest can list one test per operation.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis

from rtm.local.nats import EmbeddedNats
from rtm.producer.bootstrap import create_app
from rtm.producer.settings import ProducerSettings
from tests.integration.producer.conftest import settings_for
from tests.support.asgi import running_producer
from tests.support.db import register_users
from tests.support.openapi_contract import (
    CONTRACT_SETTINGS,
    call_and_check,
    contract_schema,
    served_from_thread,
)
from tests.support.tokens import TokenFactory


@pytest.fixture(scope="module")
def producer_url(
    shared_database_url: str, shared_nats: EmbeddedNats, auth_url: str
) -> Iterator[str]:
    # Limits out of the way: each operation is exercised, not its throttle.
    settings = settings_for(
        shared_database_url,
        shared_nats.url,
        auth_url,
        rate_burst=100_000,
        conversation_burst=100_000,
    )
    with served_from_thread(running_producer(create_app(settings))) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def bearer(shared_database_url: str, tokens: TokenFactory) -> str:
    """A registered user's access token (valid for the whole module)."""
    user = uuid.uuid4()
    register_users(shared_database_url, [user])
    return tokens.token(user, ttl=900)


# Building the app does no I/O: its document, with no NATS or PostgreSQL anywhere.
DOCUMENT = create_app(ProducerSettings(migrate_on_start=False)).openapi()
schema = contract_schema(DOCUMENT)


def test_the_document_checked_is_the_one_served(producer_url: str) -> None:
    assert httpx.get(f"{producer_url}/v1/openapi.json").json() == DOCUMENT


@schema.parametrize()
@CONTRACT_SETTINGS
def test_the_producer_answers_as_its_openapi_document_says(
    case: schemathesis.Case[Any], producer_url: str, bearer: str
) -> None:
    call_and_check(case, producer_url, lambda: bearer)
