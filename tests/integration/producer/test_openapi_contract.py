"""The producer's OpenAPI document tells the truth (issue 11): schemathesis, every built-in check,
over every operation of the HTTP API, against the real app on real NATS JetStream and PostgreSQL,
authenticated as a registered user so that the checks get past 401.

What it holds the document to: every status the service answers is documented, with a body of
the documented shape; what the schemas allow is accepted (so they state the service's rules:
lengths, NUL, blank bodies, the member count); what they refuse is refused (unknown fields
included). Bounded and deterministic (`derandomize`), so that CI is stable: a failure names the
request to replay.

The server runs in a thread of its own with its own event loop: schemathesis calls it with
blocking requests from the test's thread. The document is the app's own (`app.openapi()`, what
`/v1/openapi.json` serves), read at import so that pytest can list one test per operation.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings

from rtm.local.nats import EmbeddedNats
from rtm.producer.bootstrap import create_app
from rtm.producer.settings import ProducerSettings
from tests.integration.producer.conftest import settings_for
from tests.support.db import register_users
from tests.support.tokens import TokenFactory

MAX_EXAMPLES = 25


class ServerThread:
    """uvicorn serving an app on 127.0.0.1:<free port> in a thread with its own event loop."""

    def __init__(self, app: Any) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()))

    def __enter__(self) -> str:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the producer did not start")
            self.thread.join(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)


def wait_ready(base: str, timeout: float = 20.0) -> None:
    with httpx.Client(base_url=base) as client:
        for _ in range(int(timeout / 0.05)):
            if client.get("/health/ready").status_code == 200:
                return
            threading.Event().wait(0.05)
    raise TimeoutError("producer not ready")


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
    with ServerThread(create_app(settings)) as base:
        wait_ready(base)
        yield base


@pytest.fixture(scope="module")
def bearer(shared_database_url: str, tokens: TokenFactory) -> dict[str, str]:
    """A registered user's access token (valid for the whole module)."""
    user = uuid.uuid4()
    register_users(shared_database_url, [user])
    return {"Authorization": f"Bearer {tokens.token(user, ttl=3600)}"}


# Building the app does no I/O: its document, with no NATS or PostgreSQL anywhere.
DOCUMENT = create_app(ProducerSettings(migrate_on_start=False)).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)


def test_the_document_checked_is_the_one_served(producer_url: str) -> None:
    assert httpx.get(f"{producer_url}/v1/openapi.json").json() == DOCUMENT


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_producer_answers_as_its_openapi_document_says(
    case: schemathesis.Case[Any], producer_url: str, bearer: dict[str, str]
) -> None:
    case.call_and_validate(base_url=producer_url, headers=bearer)
