"""The consumer's HTTP API keeps the promises of its OpenAPI document (issue 11).

schemathesis (every check) runs over every operation of `/v1/openapi.json` against a real
consumer on real PostgreSQL and NATS, authenticated with a valid bearer token so the checks reach
past 401. The conversation the document uses as its example exists, with messages, and the
token's user is a member, so the examples phase gets real pages of history; random ids get 404.
The run is deterministic (fixed seed, deterministic generation, no example database) and bounded
(`MAX_EXAMPLES` per operation), so CI sees the same requests every time.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import httpx
import nats
import pytest

from rtm.consumer.entrypoints.http import EXAMPLE_CONVERSATION
from rtm.local.nats import EmbeddedNats
from tests.integration.consumer.conftest import publish
from tests.support.tokens import TokenFactory

pytestmark = pytest.mark.asyncio(loop_scope="module")

MAX_EXAMPLES = 30
MESSAGES = 5


async def seed_example_conversation(database_url: str, nats_url: str, user: uuid.UUID) -> None:
    """The document's example conversation, `user` a member, with `MESSAGES` stored messages."""
    peer = uuid.uuid4()
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO messaging.conversations (id, kind, title, created_by)"
            " VALUES ($1, 'group', 'example', $2)",
            EXAMPLE_CONVERSATION,
            user,
        )
        await conn.executemany(
            "INSERT INTO messaging.members (conversation_id, user_id) VALUES ($1, $2)",
            [(EXAMPLE_CONVERSATION, user), (EXAMPLE_CONVERSATION, peer)],
        )
    finally:
        await conn.close()
    client = await nats.connect(nats_url)
    try:
        for n in range(MESSAGES):
            await publish(client, EXAMPLE_CONVERSATION, peer, f"message {n}")
    finally:
        await client.close()


async def wait_for_history(base: str, token: str) -> None:
    url = f"http://{base}/v1/conversations/{EXAMPLE_CONVERSATION}/messages"
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as client:
        for _ in range(200):
            response = await client.get(url)
            if response.status_code == 200 and len(response.json()["messages"]) == MESSAGES:
                return
            await asyncio.sleep(0.05)
    raise TimeoutError("the example conversation's messages were not stored")


async def test_every_operation_keeps_its_documented_promises(
    shared_consumer: str,
    shared_database_url: str,
    shared_nats: EmbeddedNats,
    tokens: TokenFactory,
    tmp_path: Path,
) -> None:
    user = uuid.uuid4()
    token = tokens.token(user, ttl=3600)
    await seed_example_conversation(shared_database_url, shared_nats.url, user)
    await wait_for_history(shared_consumer, token)
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"http://{shared_consumer}/v1/openapi.json",
        "--checks=all",
        f"--max-examples={MAX_EXAMPLES}",
        "--generation-deterministic",
        "--workers=1",
        "--no-color",
        "--request-timeout=10",
        f"--header=Authorization: Bearer {token}",
        f"--report-dir={tmp_path}",
    ]
    # A subprocess: schemathesis's requests are blocking, and the consumer runs on this loop.
    result = await asyncio.to_thread(
        subprocess.run,
        command,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,  # its caches stay out of the repository
    )
    print(result.stdout)  # the run's summary, for -rP
    assert result.returncode == 0, result.stdout[-12_000:] + result.stderr[-2_000:]
    assert "No issues found" in result.stdout or "passed" in result.stdout, result.stdout[-4_000:]
