"""Hostile input to the consumer: every frame and request gets its documented answer (issue 11).

Over-range integers, NUL and lone surrogates in ids, non-UUID ids, huge and binary frames, floods
of frames and of `resume` work: each is answered with its error frame or status (or the close
code protocol.md names), the connection stays open where the protocol says it does, and another
user's connection and history keep working meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio
import websockets
from websockets.exceptions import ConnectionClosed

from rtm.consumer.settings import ConsumerSettings
from tests.integration.consumer.test_delivery import next_frame
from tests.support.db import create_conversation
from tests.support.tokens import TokenFactory

pytestmark = pytest.mark.asyncio(loop_scope="module")

DEFAULTS = ConsumerSettings(env="test")
ID = "0195f3a1-0a2b-7c3d-8e4f-5a6b7c8d9e0f"
MAX = 2**63 - 1


def resume(cursor: object, key: str = ID) -> str:
    return f'{{"type":"resume","cursors":{{{json.dumps(key)}:{cursor}}}}}'


def many(count: int) -> str:
    cursors = {str(uuid.uuid4()): 0 for _ in range(count)}
    return json.dumps({"type": "resume", "cursors": cursors}, separators=(",", ":"))


@dataclass(frozen=True)
class Case:
    id: str
    frame: str | bytes
    code: str
    field: str | None = None


FIELD = f"cursors.{ID}"
CASES = [
    Case("not-json", "hello?", "invalid_json"),
    Case("empty", "", "invalid_json"),
    Case("nesting-bomb", '{"type":"ping","x":' + "[" * 5000 + "]" * 5000 + "}", "invalid_json"),
    Case("array", '[{"type":"ping"}]', "invalid_message"),
    Case("no-type", '{"cursors":{}}', "invalid_message", "type"),
    Case("type-number", '{"type":7}', "invalid_message", "type"),
    Case("type-nul", '{"type":"ping\\u0000"}', "unknown_type", "type"),
    Case("type-surrogate", '{"type":"\\ud800"}', "unknown_type", "type"),
    Case("producer-frame", '{"type":"send"}', "unknown_type", "type"),
    Case("binary", b'{"type":"ping"}', "invalid_message"),
    Case("duplicate-keys", '{"type":"ping","type":"resume"}', "validation_failed"),
    Case("cursor-nan", resume("NaN"), "validation_failed"),
    Case("cursor-2^63", resume(2**63), "validation_failed", FIELD),
    Case("cursor-2^70", resume(2**70), "validation_failed", FIELD),
    Case("cursor-10^400", resume("1" + "0" * 400), "validation_failed", FIELD),
    Case("cursor-negative", resume(-1), "validation_failed", FIELD),
    Case("cursor-float", resume(1.5), "validation_failed", FIELD),
    Case("cursor-exponent", resume("1e3"), "validation_failed", FIELD),
    Case("cursor-string", resume('"5"'), "validation_failed", FIELD),
    Case("cursor-bool", resume("true"), "validation_failed", FIELD),
    Case("cursor-null", resume("null"), "validation_failed", FIELD),
    Case("cursors-array", '{"type":"resume","cursors":[1]}', "validation_failed", "cursors"),
    Case("cursors-missing", '{"type":"resume"}', "validation_failed", "cursors"),
    Case("id-not-uuid", resume(1, "abc"), "validation_failed", "cursors"),
    Case("id-nul", resume(1, "\x00"), "validation_failed", "cursors"),
    Case(
        "id-surrogate", '{"type":"resume","cursors":{"\\ud800":1}}', "validation_failed", "cursors"
    ),
    Case(
        "id-sql", resume(1, "'; DROP TABLE messaging.messages; --"), "validation_failed", "cursors"
    ),
    Case("id-long", resume(1, "a" * 10_000), "validation_failed", "cursors"),
    Case(
        "too-many-conversations",
        many(DEFAULTS.max_resume_conversations + 1),
        "validation_failed",
        "cursors",
    ),
    Case("auth-token-number", '{"type":"auth","token":12}', "validation_failed", "token"),
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def control(shared_consumer: str, tokens: TokenFactory) -> AsyncIterator[Any]:
    """Another user's connection, which must notice nothing of the hostile ones."""
    headers = {"Authorization": f"Bearer {tokens.token(uuid.uuid4(), ttl=900)}"}
    async with websockets.connect(
        f"ws://{shared_consumer}/v1/ws", additional_headers=headers
    ) as ws:
        await next_frame(ws, "ready")
        yield ws


async def still_answers(ws: Any) -> None:
    await ws.send('{"type":"ping"}')
    await next_frame(ws, "pong")


def connect(base: str, tokens: TokenFactory, user: uuid.UUID | None = None) -> Any:
    headers = {"Authorization": f"Bearer {tokens.token(user or uuid.uuid4())}"}
    return websockets.connect(f"ws://{base}/v1/ws", additional_headers=headers, max_size=None)


async def read_until_closed(ws: Any, timeout: float = 10) -> tuple[list[dict[str, Any]], int]:
    """Every frame until the server closes, and its close code (a close frame is required)."""
    frames: list[dict[str, Any]] = []
    received = None
    try:
        while True:
            frames.append(json.loads(await asyncio.wait_for(ws.recv(), timeout)))
    except ConnectionClosed as closed:
        received = closed.rcvd
    assert received is not None, "dropped without a close frame"
    return frames, received.code


async def close_code(ws: Any) -> int:
    return (await read_until_closed(ws))[1]


async def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 25
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_hostile_frame_gets_its_code_and_the_connection_stays(
    shared_consumer: str, tokens: TokenFactory, control: Any, case: Case
) -> None:
    async with connect(shared_consumer, tokens) as ws:
        await next_frame(ws, "ready")
        await ws.send(case.frame)
        error = await next_frame(ws, "error")
        assert (error["code"], error.get("field")) == (case.code, case.field), error
        assert error["ref"] is None
        assert isinstance(error["message"], str)
        await still_answers(ws)
    await still_answers(control)


async def test_the_largest_cursor_is_accepted(shared_consumer: str, tokens: TokenFactory) -> None:
    """2^63-1 is in range: answered `resumed` (the conversation is not the user's)."""
    async with connect(shared_consumer, tokens) as ws:
        await next_frame(ws, "ready")
        await ws.send(resume(MAX))
        resumed = await next_frame(ws, "resumed")
    assert resumed["conversations"] == {
        ID: {"last_seq": MAX, "recovered": False, "error": "forbidden"}
    }


async def test_a_frame_over_the_size_limit_closes_1009(
    shared_consumer: str, tokens: TokenFactory, control: Any
) -> None:
    async with connect(shared_consumer, tokens) as ws:
        await next_frame(ws, "ready")
        await ws.send(json.dumps({"type": "ping", "pad": "x" * DEFAULTS.max_frame_bytes}))
        assert await close_code(ws) == 1009
    await still_answers(control)


async def test_invalid_utf8_closes_1007(
    shared_consumer: str, tokens: TokenFactory, control: Any
) -> None:
    async with connect(shared_consumer, tokens) as ws:
        await next_frame(ws, "ready")
        await ws.send(b'{"type":"ping","x":"\xff"}', text=True)
        assert await close_code(ws) == 1007
    await still_answers(control)


async def test_the_burst_is_answered_then_rate_limited_with_retry_after(
    shared_consumer: str, tokens: TokenFactory
) -> None:
    """`rate_burst` pings at once are all answered; the next is `rate_limited` (not handled),
    and after `retry_after_ms` a ping is answered again."""
    async with connect(shared_consumer, tokens) as ws:
        await next_frame(ws, "ready")
        for _ in range(DEFAULTS.rate_burst + 1):
            await ws.send('{"type":"ping"}')
        answers = [json.loads(await ws.recv()) for _ in range(DEFAULTS.rate_burst + 1)]
        kinds = [frame["type"] for frame in answers]
        assert kinds.count("pong") >= DEFAULTS.rate_burst
        limited = [frame for frame in answers if frame["type"] == "error"]
        assert [frame["code"] for frame in limited] in ([], ["rate_limited"])
        if not limited:  # a token refilled while the burst was sent: take them all now
            for _ in range(DEFAULTS.rate_burst):
                await ws.send('{"type":"ping"}')
            limited = [await next_frame(ws, "error")]
        assert limited[0]["code"] == "rate_limited"
        assert 0 < limited[0]["retry_after_ms"] <= 1000 / DEFAULTS.rate_per_second + 1
        await asyncio.sleep(limited[0]["retry_after_ms"] / 1000 * 2)
        await still_answers(ws)


async def test_a_ping_flood_is_limited_then_closed_4013(
    shared_consumer: str, tokens: TokenFactory, control: Any
) -> None:
    """The issue's 3,000 pings: at most the burst plus the refill are answered, the rest are
    `rate_limited`, and `flood_limit` of those close the socket 4013."""
    async with connect(shared_consumer, tokens) as ws:
        await next_frame(ws, "ready")
        started = asyncio.get_running_loop().time()
        for _ in range(3000):
            await ws.send('{"type":"ping"}')
        frames, code = await read_until_closed(ws)
        elapsed = asyncio.get_running_loop().time() - started
    assert code == 4013
    pongs = sum(frame["type"] == "pong" for frame in frames)
    limited = [frame for frame in frames if frame.get("code") == "rate_limited"]
    assert pongs <= DEFAULTS.rate_burst + DEFAULTS.rate_per_second * elapsed + 1
    assert len(limited) >= DEFAULTS.flood_limit - 1
    assert all(frame["retry_after_ms"] > 0 for frame in limited)
    await still_answers(control)


async def test_resume_floods_cost_one_query_each_and_others_keep_their_history(
    shared_consumer: str, shared_database_url: str, tokens: TokenFactory
) -> None:
    """20 resumes over the cap are refused, 20 at the cap of unknown ids are answered (every
    id `forbidden`), and another user's history answers meanwhile."""
    alice, bob = uuid.uuid4(), uuid.uuid4()
    conversation = await create_conversation(shared_database_url, [alice, bob])
    cap = DEFAULTS.max_resume_conversations
    history = f"http://{shared_consumer}/v1/conversations/{conversation}/messages"

    async def resume_flood(count: int) -> dict[str, Any]:
        """The answer to a resume of `count` unknown ids; sent again after `unavailable` (the
        database too busy, as on a loaded machine), as docs/protocol.md tells clients to."""
        async with connect(shared_consumer, tokens) as ws:
            await next_frame(ws, "ready")
            frame = many(count)
            await ws.send(frame)
            while True:
                answer = json.loads(await asyncio.wait_for(ws.recv(), 60))
                if answer["type"] == "error" and answer["code"] == "unavailable":
                    await asyncio.sleep(answer.get("retry_after_ms", 500) / 1000)
                    await ws.send(frame)
                elif answer["type"] in ("resumed", "error"):
                    return dict(answer)

    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {tokens.token(bob)}"}) as c:
        flood = asyncio.gather(*(resume_flood(n) for n in [cap + 1] * 20 + [cap] * 20))
        while not flood.done():
            assert (await c.get(history)).status_code == 200
            await asyncio.sleep(0.05)
        answers = await flood
    refused, resumed = answers[:20], answers[20:]
    assert {(a["type"], a["code"], a["field"]) for a in refused} == {
        ("error", "validation_failed", "cursors")
    }
    for answer in resumed:
        assert answer["type"] == "resumed", answer
        entries = answer["conversations"].values()
        assert len(entries) == cap
        assert {e["error"] for e in entries} == {"forbidden"}


HTTP_CASES = [
    ("after_seq=9223372036854775808", 422, "after_seq"),
    (f"before_seq={2**70}", 422, "before_seq"),
    (f"limit={2**70}", 422, "limit"),
    ("after_seq=-1", 422, "after_seq"),
    ("before_seq=0", 422, "before_seq"),
    ("limit=0", 422, "limit"),
    (f"limit={DEFAULTS.history_max_limit + 1}", 422, "limit"),
    ("after_seq=1.5", 422, "after_seq"),
    ("after_seq=1e3", 422, "after_seq"),
    ("after_seq=abc", 422, "after_seq"),
    ("after_seq=%00", 422, "after_seq"),
    ("after_seq=", 422, "after_seq"),
    ("after_seq=9223372036854775807", 200, None),
    ("before_seq=9223372036854775807", 200, None),
    ("after_seq=0&before_seq=9223372036854775807", 200, None),
]


@pytest.mark.parametrize(("query", "status", "field"), HTTP_CASES)
async def test_history_parameters_out_of_range_are_422(
    shared_consumer: str,
    shared_database_url: str,
    tokens: TokenFactory,
    query: str,
    status: int,
    field: str | None,
) -> None:
    user = uuid.uuid4()
    conversation = await create_conversation(shared_database_url, [user, uuid.uuid4()])
    url = f"http://{shared_consumer}/v1/conversations/{conversation}/messages?{query}"
    async with httpx.AsyncClient() as client:
        response = await client.get(url, headers={"Authorization": f"Bearer {tokens.token(user)}"})
    assert response.status_code == status, response.text
    if status == 422:
        assert response.json()["error"]["code"] == "validation_failed"
        assert response.json()["error"]["field"] == field


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("not-a-uuid", 422),
        ("%00", 422),
        ("%ED%A0%80", 422),  # the UTF-8 encoding of a lone surrogate
        ("'%3B%20DROP%20TABLE%20messaging.messages%3B--", 422),
        ("a" * 4000, 422),
        (str(uuid.uuid4()), 404),
    ],
    ids=["not-uuid", "nul", "surrogate", "sql", "long", "unknown"],
)
async def test_bad_conversation_ids_get_their_status(
    shared_consumer: str, tokens: TokenFactory, path: str, status: int
) -> None:
    headers = {"Authorization": f"Bearer {tokens.token(uuid.uuid4())}"}
    async with httpx.AsyncClient(headers=headers) as client:
        for suffix in ("", "/messages"):
            response = await client.get(f"http://{shared_consumer}/v1/conversations/{path}{suffix}")
            assert response.status_code == status, (suffix, response.text)
            code = response.json()["error"]["code"]
            assert code == ("validation_failed" if status == 422 else "forbidden")


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer x.y.z", "Basic eA==", "Bearer \u00e9".encode("latin-1")],
)
async def test_bad_credentials_are_401(shared_consumer: str, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://{shared_consumer}/v1/conversations", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
