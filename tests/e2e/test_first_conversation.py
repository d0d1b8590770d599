"""Foundation, point 3: the first real conversation through the real path."""

from __future__ import annotations

import json
import uuid

import httpx
import psycopg
import websockets

from rtm.local.runner import LocalSystem
from tests.e2e.client import next_frame, sign_up, ws_url


async def test_a_sends_b_receives_seq_1_stored_and_in_history(system: LocalSystem) -> None:
    urls = system.urls
    alice, bob = await sign_up(urls), await sign_up(urls)
    async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
        created = await http.post(
            f"{urls.producer}/v1/conversations",
            headers=alice.headers,
            json={"kind": "direct", "member_ids": [bob.id]},
        )
        assert created.status_code == 201, created.text
        conversation = created.json()["id"]

        async with websockets.connect(
            ws_url(urls.consumers[0]), additional_headers=bob.headers
        ) as bob_ws:
            assert (await next_frame(bob_ws, "ready"))["user_id"] == bob.id
            async with websockets.connect(
                ws_url(urls.producer), additional_headers=alice.headers
            ) as alice_ws:
                client_msg_id = str(uuid.uuid4())
                await alice_ws.send(
                    json.dumps(
                        {
                            "type": "send",
                            "client_msg_id": client_msg_id,
                            "conversation_id": conversation,
                            "body": "hello, bob",
                        }
                    )
                )
                ack = await next_frame(alice_ws, "ack")
            message = await next_frame(bob_ws, "message")

        history = await http.get(
            f"{urls.consumers[0]}/v1/conversations/{conversation}/messages", headers=bob.headers
        )
    assert ack["client_msg_id"] == client_msg_id
    assert ack["duplicate"] is False
    assert ack["stream_seq"] >= 1
    assert message["seq"] == 1
    assert message["body"] == "hello, bob"
    assert message["message_id"] == ack["message_id"]
    assert message["sender_id"] == alice.id
    with psycopg.connect(system.database_url) as conn:
        row = conn.execute(
            "SELECT seq, body, stream_seq FROM messaging.messages WHERE message_id = %s",
            (ack["message_id"],),
        ).fetchone()
    assert row == (1, "hello, bob", ack["stream_seq"])
    assert history.status_code == 200
    assert [m["message_id"] for m in history.json()["messages"]] == [ack["message_id"]]


async def test_a_receiver_on_the_other_consumer_instance_gets_it_too(system: LocalSystem) -> None:
    urls = system.urls
    alice, bob = await sign_up(urls), await sign_up(urls)
    async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
        created = await http.post(
            f"{urls.producer}/v1/conversations",
            headers=alice.headers,
            json={"kind": "group", "member_ids": [bob.id], "title": "t"},
        )
        conversation = created.json()["id"]
    async with websockets.connect(
        ws_url(urls.consumers[1]), additional_headers=bob.headers
    ) as bob_ws:
        await next_frame(bob_ws, "ready")
        async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
            for n in range(1, 4):
                sent = await http.post(
                    f"{urls.producer}/v1/messages",
                    headers=alice.headers,
                    json={
                        "client_msg_id": str(uuid.uuid4()),
                        "conversation_id": conversation,
                        "body": f"n{n}",
                    },
                )
                assert sent.status_code == 202, sent.text
        seqs = [(await next_frame(bob_ws, "message"))["seq"] for _ in range(3)]
    assert seqs == [1, 2, 3]
