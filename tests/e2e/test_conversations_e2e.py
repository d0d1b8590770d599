"""Conversations over real processes: direct uniqueness, group membership changes announced to
the affected users, typing, and no oracle for non-members."""

from __future__ import annotations

import json
import uuid

import httpx
import websockets

from rtm.local.runner import LocalSystem
from tests.e2e.client import next_frame, sign_up, ws_url


async def test_conversation_lifecycle_and_typing(system: LocalSystem) -> None:
    urls = system.urls
    alice, bob, carol = await sign_up(urls), await sign_up(urls), await sign_up(urls)
    async with httpx.AsyncClient(base_url=urls.producer, trust_env=False, timeout=10) as http:
        first = await http.post(
            "/v1/conversations",
            headers=alice.headers,
            json={"kind": "direct", "member_ids": [bob.id]},
        )
        again = await http.post(
            "/v1/conversations",
            headers=bob.headers,
            json={"kind": "direct", "member_ids": [alice.id]},
        )
        assert (first.status_code, again.status_code) == (201, 200)
        assert first.json()["id"] == again.json()["id"]

        async with (
            websockets.connect(
                ws_url(urls.consumers[1]), additional_headers=carol.headers
            ) as carol_ws,
            websockets.connect(ws_url(urls.consumers[0]), additional_headers=bob.headers) as bob_ws,
        ):
            await next_frame(carol_ws, "ready")
            await next_frame(bob_ws, "ready")
            group = await http.post(
                "/v1/conversations",
                headers=alice.headers,
                json={"kind": "group", "member_ids": [bob.id], "title": "team"},
            )
            assert group.status_code == 201, group.text
            group_id = group.json()["id"]
            created = await next_frame(bob_ws, "conversation")
            assert (created["event"], created["conversation"]["id"]) == ("created", group_id)

            added = await http.post(
                f"/v1/conversations/{group_id}/members",
                headers=alice.headers,
                json={"user_id": carol.id},
            )
            assert added.status_code == 204, added.text
            joined = await next_frame(carol_ws, "conversation")
            assert joined["event"] == "member_added"
            assert carol.id in joined["conversation"]["members"]

            async with websockets.connect(
                ws_url(urls.producer), additional_headers=alice.headers
            ) as alice_ws:
                await alice_ws.send(json.dumps({"type": "typing", "conversation_id": group_id}))
                typing = await next_frame(carol_ws, "typing")
            assert typing == {"type": "typing", "conversation_id": group_id, "user_id": alice.id}

            removed = await http.delete(
                f"/v1/conversations/{group_id}/members/{carol.id}", headers=alice.headers
            )
            assert removed.status_code == 204, removed.text
            left = await next_frame(carol_ws, "conversation")
            assert left["event"] == "member_removed"
            assert carol.id not in left["conversation"]["members"]

        # carol is out now: the group and a conversation that never existed look the same
        async with httpx.AsyncClient(base_url=urls.consumers[0], trust_env=False) as reader:
            hidden = await reader.get(f"/v1/conversations/{group_id}", headers=carol.headers)
            missing = await reader.get(f"/v1/conversations/{uuid.uuid4()}", headers=carol.headers)
        assert hidden.status_code == missing.status_code == 404
        assert hidden.json()["error"]["code"] == missing.json()["error"]["code"] == "forbidden"
        sent = await http.post(
            "/v1/messages",
            headers=carol.headers,
            json={
                "client_msg_id": str(uuid.uuid4()),
                "conversation_id": group_id,
                "body": "let me in",
            },
        )
        assert sent.status_code == 404
        assert sent.json()["error"]["code"] == "forbidden"
