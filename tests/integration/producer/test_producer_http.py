"""The producer's HTTP API on real NATS and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import httpx
import orjson
import pytest
import pytest_asyncio
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from rtm.shared.contract import (
    CONVERSATION_EVENTS,
    STREAM,
    AcceptedMessage,
    ConversationEvent,
    message_subject,
    msg_id_header,
    partition_of,
)
from tests.integration.producer.conftest import PARTITIONS, NewUser, create_conversation

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module")
async def http(shared_producer: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://{shared_producer}") as client:
        yield client


def send_body(
    conversation: str, body: str = "hello", client_msg_id: str | None = None
) -> dict[str, str]:
    return {
        "client_msg_id": client_msg_id or str(uuid.uuid4()),
        "conversation_id": conversation,
        "body": body,
    }


async def test_direct_conversation_is_created_once_per_pair(
    shared_producer: str, http: httpx.AsyncClient, new_user: NewUser
) -> None:
    """201 the first time; 200 with the same conversation after, from either side."""
    alice, bob = new_user(), new_user()
    first = await http.post(
        "/v1/conversations",
        headers=alice.headers,
        json={"kind": "direct", "member_ids": [str(bob.id)]},
    )
    assert first.status_code == 201
    conversation = first.json()
    assert conversation["kind"] == "direct"
    assert sorted(conversation["members"]) == sorted([str(alice.id), str(bob.id)])
    assert conversation["last_seq"] == 0
    assert conversation["created_at"].endswith("Z")
    again = await http.post(
        "/v1/conversations",
        headers=bob.headers,
        json={"kind": "direct", "member_ids": [str(alice.id)]},
    )
    assert again.status_code == 200
    assert again.json()["id"] == conversation["id"]


async def test_conversation_is_usable_at_once_and_the_send_is_acked_after_jetstream(
    shared_producer: str, http: httpx.AsyncClient, new_user: NewUser, shared_nc: NatsClient
) -> None:
    """Read-your-writes: create then send immediately; the ack matches the stored message."""
    alice, bob = new_user(), new_user()
    conversation = await create_conversation(shared_producer, alice, "group", bob, title="Team")
    body = send_body(conversation["id"], "  '; DROP TABLE messages; -- <script>x</script> ")
    response = await http.post("/v1/messages", json=body, headers=alice.headers)
    assert response.status_code == 202, response.text
    ack = response.json()
    assert set(ack) == {
        "type",
        "client_msg_id",
        "message_id",
        "stream_seq",
        "duplicate",
        "accepted_at",
    }
    assert ack["type"] == "ack"
    assert ack["duplicate"] is False
    assert ack["client_msg_id"] == body["client_msg_id"]
    stored = await shared_nc.jetstream().get_msg(STREAM, seq=ack["stream_seq"])
    conversation_id = uuid.UUID(conversation["id"])
    assert stored.subject == message_subject(
        partition_of(conversation_id, PARTITIONS), conversation_id
    )
    assert stored.headers is not None
    assert stored.headers["Nats-Msg-Id"] == msg_id_header(
        alice.id, uuid.UUID(body["client_msg_id"])
    )
    message = AcceptedMessage.decode(stored.data or b"")
    assert str(message.message_id) == ack["message_id"]
    assert message.body == "'; DROP TABLE messages; -- <script>x</script>"
    assert message.sender_id == alice.id


async def test_resend_returns_the_original_ack_whatever_the_body(
    shared_producer: str, http: httpx.AsyncClient, new_user: NewUser
) -> None:
    alice, bob = new_user(), new_user()
    conversation = await create_conversation(shared_producer, alice, "direct", bob)
    body = send_body(conversation["id"], "first")
    first = (await http.post("/v1/messages", json=body, headers=alice.headers)).json()
    again = await http.post("/v1/messages", json={**body, "body": "changed"}, headers=alice.headers)
    assert again.status_code == 202
    assert again.json() == {**first, "duplicate": True}


async def test_resend_after_the_window_is_decided_by_postgresql(
    shared_producer: str, http: httpx.AsyncClient, new_user: NewUser, shared_database_url: str
) -> None:
    """A send the consumer already stored is acked from the database, never republished."""
    alice, bob = new_user(), new_user()
    conversation = await create_conversation(shared_producer, alice, "direct", bob)
    client_msg_id, message_id = uuid.uuid4(), uuid.uuid4()
    sent_at = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    conn = await asyncpg.connect(shared_database_url)
    try:
        await conn.execute(
            "INSERT INTO messaging.messages (message_id, conversation_id, seq, sender_id,"
            " client_msg_id, body, sent_at, stream_seq) VALUES ($1, $2, 1, $3, $4, 'x', $5, 999)",
            message_id,
            uuid.UUID(conversation["id"]),
            alice.id,
            client_msg_id,
            sent_at,
        )
    finally:
        await conn.close()
    response = await http.post(
        "/v1/messages",
        json=send_body(conversation["id"], "y", str(client_msg_id)),
        headers=alice.headers,
    )
    assert response.json() == {
        "type": "ack",
        "client_msg_id": str(client_msg_id),
        "message_id": str(message_id),
        "stream_seq": 999,
        "duplicate": True,
        "accepted_at": "2026-01-02T03:04:05.678Z",
    }


async def test_non_member_and_missing_conversation_get_the_same_answer(
    shared_producer: str, http: httpx.AsyncClient, new_user: NewUser
) -> None:
    alice, bob, eve = new_user(), new_user(), new_user()
    conversation = await create_conversation(shared_producer, alice, "direct", bob)
    existing = await http.post(
        "/v1/messages", json=send_body(conversation["id"]), headers=eve.headers
    )
    missing = await http.post(
        "/v1/messages", json=send_body(str(uuid.uuid4())), headers=eve.headers
    )
    assert existing.status_code == missing.status_code == 404
    assert existing.json() == missing.json()
    assert existing.json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b'{"client_msg_id": "x", ', 400, "invalid_json"),
        (b"[1, 2]", 400, "invalid_message"),
        (b'{"a": 1, "a": 2}', 422, "validation_failed"),
        (b'{"body": NaN}', 422, "validation_failed"),
        (b"[" * 200 + b"]" * 200, 400, "invalid_json"),
        (b"\xff\xfe", 400, "invalid_json"),
        (b'{"conversation_id": "nope"}', 422, "validation_failed"),
    ],
)
async def test_malformed_bodies_get_the_documented_codes(
    http: httpx.AsyncClient, new_user: NewUser, raw: bytes, status: int, code: str
) -> None:
    response = await http.post(
        "/v1/messages",
        content=raw,
        headers={**new_user().headers, "Content-Type": "application/json"},
    )
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


@pytest.mark.parametrize(
    ("body", "field"),
    [("", "body"), ("\x00", "body"), ("a" * 4097, "body")],
)
async def test_invalid_message_bodies_name_the_field(
    shared_producer: str, http: httpx.AsyncClient, new_user: NewUser, body: str, field: str
) -> None:
    alice, bob = new_user(), new_user()
    conversation = await create_conversation(shared_producer, alice, "direct", bob)
    response = await http.post(
        "/v1/messages", json=send_body(conversation["id"], body), headers=alice.headers
    )
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field


@pytest.mark.parametrize("authorization", [None, "Bearer nonsense", "Basic abc"])
async def test_requests_without_a_valid_token_are_unauthorized(
    http: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = await http.post(
        "/v1/conversations", headers=headers, json={"kind": "group", "member_ids": []}
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


async def test_direct_conversation_needs_exactly_one_other_member(
    http: httpx.AsyncClient, new_user: NewUser
) -> None:
    alice = new_user()
    response = await http.post(
        "/v1/conversations",
        headers=alice.headers,
        json={"kind": "direct", "member_ids": [str(alice.id)]},
    )
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "member_ids"


async def next_event(queue: asyncio.Queue[ConversationEvent]) -> ConversationEvent:
    return await asyncio.wait_for(queue.get(), 5)


async def test_membership_changes_are_applied_and_announced(
    shared_producer: str, http: httpx.AsyncClient, new_user: NewUser, shared_nc: NatsClient
) -> None:
    """created, member_added, member_removed, each with the conversation after the change."""
    events: asyncio.Queue[ConversationEvent] = asyncio.Queue()

    alice, bob, carol = new_user(), new_user(), new_user()

    async def collect(msg: Msg) -> None:
        event = ConversationEvent.decode(msg.data)
        if alice.id in event.conversation.members:  # modules share the bus: ours only
            events.put_nowait(event)

    subscription = await shared_nc.subscribe(CONVERSATION_EVENTS, cb=collect)
    await shared_nc.flush()
    conversation = await create_conversation(shared_producer, alice, "group", bob, title="Team")
    created = await next_event(events)
    assert created.event == "created"
    assert str(created.conversation.id) == conversation["id"]
    assert set(created.user_ids) == {alice.id, bob.id}
    assert created.conversation.title == "Team"

    path = f"/v1/conversations/{conversation['id']}/members"
    added = await http.post(path, json={"user_id": str(carol.id)}, headers=bob.headers)
    assert added.status_code == 204
    event = await next_event(events)
    assert (event.event, event.user_ids) == ("member_added", (carol.id,))
    assert carol.id in event.conversation.members

    sent = await http.post(
        "/v1/messages", json=send_body(conversation["id"]), headers=carol.headers
    )
    assert sent.status_code == 202

    removed = await http.delete(f"{path}/{carol.id}", headers=alice.headers)
    assert removed.status_code == 204
    event = await next_event(events)
    assert (event.event, event.user_ids) == ("member_removed", (carol.id,))
    assert carol.id not in event.conversation.members

    refused = await http.post(
        "/v1/messages", json=send_body(conversation["id"]), headers=carol.headers
    )
    assert refused.status_code == 404

    left = await http.delete(f"{path}/{bob.id}", headers=bob.headers)
    assert left.status_code == 204
    assert (await next_event(events)).event == "member_removed"
    await subscription.unsubscribe()


async def test_only_members_change_membership_and_only_of_groups(
    shared_producer: str, http: httpx.AsyncClient, new_user: NewUser
) -> None:
    alice, bob, eve = new_user(), new_user(), new_user()
    group = await create_conversation(shared_producer, alice, "group", bob)
    direct = await create_conversation(shared_producer, alice, "direct", bob)
    outsider = await http.post(
        f"/v1/conversations/{group['id']}/members",
        json={"user_id": str(eve.id)},
        headers=eve.headers,
    )
    to_direct = await http.post(
        f"/v1/conversations/{direct['id']}/members",
        json={"user_id": str(eve.id)},
        headers=alice.headers,
    )
    kick_in_direct = await http.delete(
        f"/v1/conversations/{direct['id']}/members/{bob.id}", headers=alice.headers
    )
    missing = await http.delete(
        f"/v1/conversations/{uuid.uuid4()}/members/{eve.id}", headers=eve.headers
    )
    for response in (outsider, to_direct, kick_in_direct, missing):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "forbidden"


async def test_http_sends_are_rate_limited_per_user(
    shared_producer: str, http: httpx.AsyncClient, new_user: NewUser
) -> None:
    alice, bob = new_user(), new_user()
    conversation = await create_conversation(shared_producer, alice, "direct", bob)
    responses = await asyncio.gather(
        *(
            http.post("/v1/messages", json=send_body(conversation["id"]), headers=alice.headers)
            for _ in range(60)
        )
    )
    limited = [r for r in responses if r.status_code == 429]
    assert limited
    assert all(r.json()["error"]["code"] == "rate_limited" for r in limited)
    assert all(r.json()["error"]["retry_after_ms"] > 0 for r in limited)
    assert all("Retry-After" in r.headers for r in limited)


async def test_openapi_documents_operations_and_errors(http: httpx.AsyncClient) -> None:
    document = (await http.get("/v1/openapi.json")).json()
    operations = {
        operation["operationId"]
        for path in document["paths"].values()
        for operation in path.values()
    }
    assert {
        "send_message",
        "create_conversation",
        "add_conversation_member",
        "remove_conversation_member",
    } <= operations
    send = document["paths"]["/v1/messages"]["post"]
    assert {"202", "401", "404", "422", "429", "503"} <= set(send["responses"])
    swagger = await http.get("/v1/swagger")
    assert swagger.status_code == 200
    assert b"cdn" not in swagger.content.lower()
    ready = await http.get("/health/ready")
    assert orjson.loads(ready.content) == {"status": "ok"}
