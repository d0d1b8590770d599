"""Hostile input at the producer's HTTP edge (issue 11), on real NATS JetStream and PostgreSQL.

Made-up user ids, floods of conversation commands, unknown fields and odd bodies each get their
documented answer and leave nothing behind; a token put in the WebSocket URL is never logged.
(Malformed JSON is covered by `test_producer_http.py`, hostile WebSocket frames by
`test_producer_hostile_frames.py`.)
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
import websockets
from websockets.exceptions import ConnectionClosed

from rtm.producer.settings import ProducerSettings
from rtm.shared.logging import ContextFilter, JsonFormatter
from tests.integration.producer.conftest import NewUser, User, create_conversation, settings_for
from tests.support.tokens import TokenFactory

pytestmark = pytest.mark.asyncio(loop_scope="module")

BURST = 5  # conversation commands a user may make at once in this module


@pytest.fixture(scope="module")
def shared_settings(shared_database_url: str, shared_nats: Any, auth_url: str) -> ProducerSettings:
    # A small burst that does not refill within the module: the limit is seen without waiting.
    return settings_for(
        shared_database_url,
        shared_nats.url,
        auth_url,
        conversation_burst=BURST,
        conversation_rate_per_second=0.001,
    )


@pytest_asyncio.fixture(loop_scope="module")
async def http(shared_producer: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://{shared_producer}") as client:
        yield client


@pytest_asyncio.fixture(loop_scope="module")
async def db(shared_database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(shared_database_url)
    yield conn
    await conn.close()


async def created_by(db: asyncpg.Connection, user: User) -> int:
    count: int = await db.fetchval(
        "SELECT count(*) FROM messaging.conversations WHERE created_by = $1", user.id
    )
    return count


def assert_not_found(response: httpx.Response, field: str, *unknown: uuid.UUID) -> None:
    assert response.status_code == 404, response.text
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert error["field"] == field
    for user_id in unknown:
        assert str(user_id) in error["message"]


# -- unknown users ---------------------------------------------------------------------------


async def test_a_group_with_unknown_user_ids_is_not_created_and_they_are_named(
    http: httpx.AsyncClient, db: asyncpg.Connection, new_user: NewUser
) -> None:
    alice, bob = new_user(), new_user()
    ghosts = [uuid.uuid4(), uuid.uuid4()]
    response = await http.post(
        "/v1/conversations",
        headers=alice.headers,
        json={"kind": "group", "member_ids": [str(bob.id), *map(str, ghosts)], "title": "x"},
    )
    assert_not_found(response, "member_ids", *ghosts)
    assert str(bob.id) not in response.json()["error"]["message"]
    assert await created_by(db, alice) == 0


async def test_a_direct_conversation_with_an_unknown_peer_is_not_created(
    http: httpx.AsyncClient, db: asyncpg.Connection, new_user: NewUser
) -> None:
    alice, ghost = new_user(), uuid.uuid4()
    response = await http.post(
        "/v1/conversations",
        headers=alice.headers,
        json={"kind": "direct", "member_ids": [str(ghost)]},
    )
    assert_not_found(response, "member_ids", ghost)
    assert await created_by(db, alice) == 0


async def test_a_deleted_account_counts_as_unknown(
    http: httpx.AsyncClient, db: asyncpg.Connection, new_user: NewUser
) -> None:
    alice, gone = new_user(), new_user()
    await db.execute("UPDATE auth.users SET deleted_at = now() WHERE id = $1", gone.id)
    response = await http.post(
        "/v1/conversations",
        headers=alice.headers,
        json={"kind": "direct", "member_ids": [str(gone.id)]},
    )
    assert_not_found(response, "member_ids", gone.id)
    assert await created_by(db, alice) == 0


async def test_adding_an_unknown_user_changes_nothing(
    shared_producer: str, http: httpx.AsyncClient, db: asyncpg.Connection, new_user: NewUser
) -> None:
    alice, bob, ghost = new_user(), new_user(), uuid.uuid4()
    group = await create_conversation(shared_producer, alice, "group", bob)
    response = await http.post(
        f"/v1/conversations/{group['id']}/members",
        headers=alice.headers,
        json={"user_id": str(ghost)},
    )
    assert_not_found(response, "user_id", ghost)
    members = await db.fetch(
        "SELECT user_id FROM messaging.members WHERE conversation_id = $1",
        uuid.UUID(group["id"]),
    )
    assert {row["user_id"] for row in members} == {alice.id, bob.id}


async def test_the_database_refuses_a_member_who_is_no_user(
    shared_producer: str, db: asyncpg.Connection, new_user: NewUser
) -> None:
    """By construction: whatever path writes a membership, the user must exist."""
    alice, bob = new_user(), new_user()
    group = await create_conversation(shared_producer, alice, "group", bob)
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await db.execute(
            "INSERT INTO messaging.members (conversation_id, user_id) VALUES ($1, $2)",
            uuid.UUID(group["id"]),
            uuid.uuid4(),
        )


# -- throttling ------------------------------------------------------------------------------


async def test_conversation_commands_are_rate_limited_per_user(
    shared_producer: str, http: httpx.AsyncClient, new_user: NewUser
) -> None:
    alice, bob, carol, dave = new_user(), new_user(), new_user(), new_user()
    group = await create_conversation(shared_producer, alice, "group", bob)
    for _ in range(BURST - 2):
        await create_conversation(shared_producer, alice, "group", bob)
    added = await http.post(
        f"/v1/conversations/{group['id']}/members",
        headers=alice.headers,
        json={"user_id": str(carol.id)},
    )
    assert added.status_code == 204  # the burst's last token
    for response in (
        await http.post(
            "/v1/conversations",
            headers=alice.headers,
            json={"kind": "group", "member_ids": [str(bob.id)]},
        ),
        await http.post(
            f"/v1/conversations/{group['id']}/members",
            headers=alice.headers,
            json={"user_id": str(dave.id)},
        ),
    ):
        assert response.status_code == 429, response.text
        error = response.json()["error"]
        assert error["code"] == "rate_limited"
        assert error["retry_after_ms"] > 0
        assert int(response.headers["Retry-After"]) >= 1
    # Another user is not affected, and leaving is never throttled.
    await create_conversation(shared_producer, bob, "group", carol)
    left = await http.delete(
        f"/v1/conversations/{group['id']}/members/{alice.id}", headers=alice.headers
    )
    assert left.status_code == 204


# -- bodies ----------------------------------------------------------------------------------

BODY_OPERATIONS = [
    (
        "/v1/messages",
        {"client_msg_id": str(uuid.uuid4()), "conversation_id": "{group}", "body": "hi"},
    ),
    ("/v1/conversations", {"kind": "group", "member_ids": []}),
    ("/v1/conversations/{group}/members", {"user_id": str(uuid.uuid4())}),
]


@pytest.mark.parametrize(("path", "body"), BODY_OPERATIONS, ids=["send", "create", "add"])
async def test_an_unknown_field_is_refused_and_named(
    shared_producer: str, http: httpx.AsyncClient, new_user: NewUser, path: str, body: Any
) -> None:
    alice, bob = new_user(), new_user()
    group = await create_conversation(shared_producer, alice, "group", bob)
    filled = {k: v.format(group=group["id"]) if isinstance(v, str) else v for k, v in body.items()}
    response = await http.post(
        path.format(group=group["id"]), headers=alice.headers, json={**filled, "is_admin": True}
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("validation_failed", "is_admin")


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b"", 422, "validation_failed"),
        (b"   ", 400, "invalid_json"),
        (b"null", 400, "invalid_message"),
        (b'"group"', 400, "invalid_message"),
        (b"[]", 400, "invalid_message"),
        (b'{"kind": "group", "member_ids": [' + b'"x",' * 20_000 + b'"x"]}', 422, None),
    ],
    ids=["empty", "blank", "null", "string", "array", "over-64KiB"],
)
async def test_odd_bodies_get_their_documented_answer(
    http: httpx.AsyncClient, new_user: NewUser, raw: bytes, status: int, code: str | None
) -> None:
    response = await http.post(
        "/v1/conversations",
        content=raw,
        headers={**new_user().headers, "Content-Type": "application/json"},
    )
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == (code or "validation_failed")


async def test_a_missing_body_is_named_and_asked_for_a_token_first(
    http: httpx.AsyncClient, new_user: NewUser
) -> None:
    for path in ("/v1/messages", "/v1/conversations", f"/v1/conversations/{uuid.uuid4()}/members"):
        anonymous = await http.post(path)
        assert anonymous.status_code == 401, anonymous.text
        missing = await http.post(path, headers=new_user().headers)
        assert missing.status_code == 422, missing.text
        assert missing.json()["error"]["field"] == "body"


async def test_the_openapi_document_names_every_answer(http: httpx.AsyncClient) -> None:
    paths = (await http.get("/v1/openapi.json")).json()["paths"]
    expected = {
        ("/v1/messages", "post"): {"202", "400", "401", "404", "422", "429", "503"},
        ("/v1/conversations", "post"): {"200", "201", "400", "401", "404", "422", "429", "503"},
        ("/v1/conversations/{conversation_id}/members", "post"): {
            "204", "400", "401", "404", "422", "429", "503",
        },
        ("/v1/conversations/{conversation_id}/members/{user_id}", "delete"): {
            "204", "401", "404", "422", "503",
        },
    }  # fmt: skip
    for (path, method), statuses in expected.items():
        assert set(paths[path][method]["responses"]) == statuses, (path, method)
    schema = (await http.get("/v1/openapi.json")).json()["components"]["schemas"]
    for body in ("SendMessageBody", "CreateConversationBody", "AddMemberBody"):
        assert schema[body]["additionalProperties"] is False, body


# -- logs ------------------------------------------------------------------------------------

SECRET = "SECRET-token-in-the-url"


@pytest.mark.parametrize("parameter", ["token", "access_token"])
async def test_a_token_in_the_websocket_url_is_ignored_and_never_logged(
    shared_producer: str,
    new_user: NewUser,
    tokens: TokenFactory,
    caplog: pytest.LogCaptureFixture,
    parameter: str,
) -> None:
    caplog.handler.addFilter(ContextFilter())
    caplog.set_level(logging.DEBUG)
    secret = f"{SECRET}-{tokens.token(new_user().id)}"
    url = f"ws://{shared_producer}/v1/ws?{parameter}={secret}&x=1"
    # With a header token the socket works; the URL's token is not even looked at.
    async with websockets.connect(
        url, additional_headers=new_user().headers, proxy=None, open_timeout=5
    ) as ws:
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await ws.recv()) == {"type": "pong"}
    # Without one, the URL's (valid) token does not authenticate: no auth frame in time, 4502.
    async with websockets.connect(url, proxy=None, open_timeout=5) as ws:
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 4502
    # Every line the service logs at INFO and above (what it logs in production), and its own at
    # any level. (At DEBUG, the websockets library's wire trace shows the request line and
    # headers, Authorization included: not a level to run production at.)
    formatter = JsonFormatter("producer")
    lines = [
        formatter.format(record)
        for record in caplog.records
        if record.levelno >= logging.INFO or record.name.startswith("rtm.")
    ]
    assert any("/v1/ws" in line for line in lines)  # the connection was logged, but not its URL
    assert not [line for line in lines if SECRET in line or "x=1" in line]
