"""How a `Client` resumes its cursors on the consumer socket when the server does not simply
answer `resumed`: the cursors of the URL refused (a server whose `RTM_MAX_RESUME_CONVERSATIONS`
is lower), and `unavailable` answers (PostgreSQL down). A scripted consumer records the URL and
every `resume` frame; a scripted producer only says `auth_ok`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from websockets.asyncio.server import ServerConnection

from rtm.client import Client, MemoryStore, Tokens
from tests.integration.client.test_client_connect_again import FAST, ready_as, token_for
from tests.integration.client.test_client_connection import Script, running

USER = "u1"


def conversation(i: int) -> str:
    return f"0193a0b0-0000-7000-8000-{i:012d}"


def base(ws_url: str) -> str:
    return ws_url.replace("ws://", "http://").removesuffix("/v1/ws")


@asynccontextmanager
async def client_over(consumer: Script, cursors: dict[str, int]) -> AsyncIterator[Client]:
    """A connected client whose store holds `cursors`, its consumer running `consumer`."""
    store = MemoryStore()
    await store.put_cursors(USER, cursors)
    async with running(ready_as("auth_ok")) as producer, running(consumer) as consumer_server:
        client = Client(
            "http://127.0.0.1:9",
            base(producer.url),
            base(consumer_server.url),
            store=store,
            timing=FAST,
        )
        client.use_tokens(Tokens(token_for(USER), None, time.time() + 900))
        try:
            await client.connect()
            yield client
        finally:
            await client.close()


async def resume_frames_of(socket: ServerConnection, frames: list[dict[str, Any]]) -> None:
    """Record the client's `resume` frames until it leaves."""
    async for raw in socket:
        frame = json.loads(raw)
        if frame["type"] == "resume":
            frames.append(frame)


async def test_cursors_refused_in_the_url_are_sent_again_as_a_resume_frame() -> None:
    """The server answers `validation_failed` for the URL's cursors and then holds live messages
    waiting for a `resume` frame (docs/protocol.md §6): the SDK sends the same cursors as one."""
    paths: list[str] = []
    frames: list[dict[str, Any]] = []

    async def refuse_the_url(socket: ServerConnection) -> None:
        assert socket.request is not None
        paths.append(socket.request.path)
        await socket.send(json.dumps({"type": "ready", "user_id": USER}))
        error = {"code": "validation_failed", "message": "cursors: at most 1", "field": "cursors"}
        await socket.send(json.dumps({"type": "error", **error}))
        await resume_frames_of(socket, frames)

    cursors = {conversation(1): 5, conversation(2): 7}
    async with client_over(refuse_the_url, cursors):
        await asyncio.sleep(0.5)
    assert "cursors=" in paths[0]
    assert frames[:1] == [{"type": "resume", "cursors": cursors}]


async def test_a_refused_resume_frame_is_split_until_the_server_takes_it() -> None:
    """A server whose limit is 2 conversations a resume: the URL's 5 are refused, then a frame
    of 5, then frames of 2 are taken; each frame is sent once its predecessor is answered."""
    frames: list[dict[str, Any]] = []

    async def at_most_two(socket: ServerConnection) -> None:
        await socket.send(json.dumps({"type": "ready", "user_id": USER}))
        refusal = {"type": "error", "code": "validation_failed", "message": "at most 2"}
        await socket.send(json.dumps({**refusal, "field": "cursors"}))
        async for raw in socket:
            frame = json.loads(raw)
            if frame["type"] != "resume":
                continue
            frames.append(frame)
            if len(frame["cursors"]) > 2:
                await socket.send(json.dumps({**refusal, "field": "cursors"}))
            else:
                answered = {
                    c: {"last_seq": s, "recovered": True} for c, s in frame["cursors"].items()
                }
                await socket.send(json.dumps({"type": "resumed", "conversations": answered}))

    cursors = {conversation(i): i for i in range(5)}
    async with client_over(at_most_two, cursors):
        await asyncio.sleep(0.5)
    sizes = [len(f["cursors"]) for f in frames]
    assert sizes[0] == 5
    assert all(size <= 2 for size in sizes[1:]), sizes
    resumed: dict[str, int] = {}
    for frame in frames[1:]:
        resumed.update(frame["cursors"])
    assert resumed == cursors


async def test_unavailable_answers_resend_each_resume_once_not_all_of_them_each_time() -> None:
    """3 resume frames (2,500 cursors), each answered `unavailable` the first time: every frame
    is sent twice in all, not N² times, and one retry runs at a time."""
    frames: list[dict[str, Any]] = []

    async def unavailable_once_each(socket: ServerConnection) -> None:
        await socket.send(json.dumps({"type": "ready", "user_id": USER}))
        seen: Counter[str] = Counter()
        async for raw in socket:
            frame = json.loads(raw)
            if frame["type"] != "resume":
                continue
            frames.append(frame)
            key = min(frame["cursors"])
            seen[key] += 1
            if seen[key] == 1:
                answer = {"type": "error", "code": "unavailable", "retry_after_ms": 50}
            else:
                answer = {"type": "resumed", "conversations": {}}
            await socket.send(json.dumps({**answer, "message": "database down"}))

    cursors = {conversation(i): i for i in range(2500)}
    async with client_over(unavailable_once_each, cursors):
        await asyncio.sleep(1.0)
    counts = Counter(min(f["cursors"]) for f in frames)
    assert len(counts) == 3
    assert set(counts.values()) == {2}, counts
