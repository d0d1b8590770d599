"""Hostile frames on the producer WebSocket: each gets its documented error code, and afterwards
the same connection still sends (and gets its ack), and a control connection is undisturbed."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio

from tests.integration.producer.conftest import (
    NewUser,
    Socket,
    User,
    create_conversation,
    open_socket,
)
from tests.support.tokens import TokenFactory

pytestmark = pytest.mark.asyncio(loop_scope="module")

CONV = "{conv}"  # placeholder: the connection's own conversation
FOREIGN = "{foreign}"  # placeholder: a conversation the user is not a member of
CLIENT = "5b0e8c2a-1f3d-4e5a-9b7c-2d4f6a8c0e1b"


@dataclass(frozen=True)
class Case:
    id: str
    frame: str | bytes
    code: str
    field: str | None = None
    ref: str | None = None


def send(body: str, *, conversation: str = CONV, client: str = CLIENT) -> str:
    return (
        f'{{"type":"send","client_msg_id":"{client}","conversation_id":"{conversation}",'
        f'"body":{body}}}'
    )


CASES = [
    Case("not-json", "hello?", "invalid_json"),
    Case("truncated-json", '{"type":"send",', "invalid_json"),
    Case("empty-frame", "", "invalid_json"),
    Case("nesting-bomb", '{"type":"ping","x":' + "[" * 5000 + "]" * 5000 + "}", "invalid_json"),
    Case("array", '[{"type":"ping"}]', "invalid_message"),
    Case("string", '"ping"', "invalid_message"),
    Case("number", "42", "invalid_message"),
    Case("null", "null", "invalid_message"),
    Case("no-type", '{"body":"hi"}', "invalid_message", "type"),
    Case("type-not-string", '{"type":7}', "invalid_message", "type"),
    Case("unknown-type", '{"type":"resume","cursors":{}}', "unknown_type", "type"),
    Case("binary-frame", b'{"type":"ping"}', "invalid_message"),
    Case("duplicate-keys", '{"type":"ping","type":"send"}', "validation_failed"),
    Case("nan", f'{{"type":"read","conversation_id":"{CONV}","seq":NaN}}', "validation_failed"),
    Case(
        "infinity",
        f'{{"type":"read","conversation_id":"{CONV}","seq":-Infinity}}',
        "validation_failed",
    ),
    Case(
        "missing-body",
        f'{{"type":"send","client_msg_id":"{CLIENT}","conversation_id":"{CONV}"}}',
        "validation_failed",
        "body",
        CLIENT,
    ),
    Case("body-not-string", send("123"), "validation_failed", "body", CLIENT),
    Case("body-null", send("null"), "validation_failed", "body", CLIENT),
    Case("body-empty", send('""'), "validation_failed", "body", CLIENT),
    Case("body-whitespace", send('"  \\n\\t "'), "validation_failed", "body", CLIENT),
    Case("body-too-long", send('"' + "a" * 4097 + '"'), "validation_failed", "body", CLIENT),
    Case("body-nul", send('"a\\u0000b"'), "validation_failed", "body", CLIENT),
    Case("body-lone-surrogate", send('"\\ud800 x"'), "validation_failed", "body", CLIENT),
    Case(
        "client-msg-id-not-uuid",
        send('"hi"', client="'; DROP TABLE--"),
        "validation_failed",
        "client_msg_id",
        "'; DROP TABLE--",
    ),
    Case(
        "conversation-not-uuid",
        send('"hi"', conversation="abc"),
        "validation_failed",
        "conversation_id",
        CLIENT,
    ),
    Case("foreign-conversation", send('"hi"', conversation=FOREIGN), "forbidden", None, CLIENT),
    Case(
        "missing-conversation",
        send('"hi"', conversation=str(uuid.uuid4())),
        "forbidden",
        None,
        CLIENT,
    ),
    Case("typing-foreign", f'{{"type":"typing","conversation_id":"{FOREIGN}"}}', "forbidden"),
    Case("typing-no-conversation", '{"type":"typing"}', "validation_failed", "conversation_id"),
    Case(
        "read-negative",
        f'{{"type":"read","conversation_id":"{CONV}","seq":-1}}',
        "validation_failed",
        "seq",
    ),
    Case(
        "read-string-seq",
        f'{{"type":"read","conversation_id":"{CONV}","seq":"5"}}',
        "validation_failed",
        "seq",
    ),
    Case(
        "read-bool-seq",
        f'{{"type":"read","conversation_id":"{CONV}","seq":true}}',
        "validation_failed",
        "seq",
    ),
    Case(
        "read-float-seq",
        f'{{"type":"read","conversation_id":"{CONV}","seq":1.5}}',
        "validation_failed",
        "seq",
    ),
    Case(
        "read-huge-seq",
        f'{{"type":"read","conversation_id":"{CONV}","seq":{2**64}}}',
        "validation_failed",
        "seq",
    ),
    Case("read-foreign", f'{{"type":"read","conversation_id":"{FOREIGN}","seq":1}}', "forbidden"),
    Case("auth-garbage", '{"type":"auth","token":"x.y.z"}', "unauthorized"),
    Case("auth-token-not-string", '{"type":"auth","token":12}', "validation_failed", "token"),
]


@dataclass
class Setting:
    user: User
    conversation: str
    foreign: str


@pytest_asyncio.fixture(loop_scope="module")
async def setting(shared_producer: str, new_user: NewUser) -> Setting:
    user, peer, stranger = new_user(), new_user(), new_user()
    mine = await create_conversation(shared_producer, user, "direct", peer)
    foreign = await create_conversation(shared_producer, stranger, "group", peer)
    return Setting(user, mine["id"], foreign["id"])


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def control(shared_producer: str, tokens: TokenFactory) -> AsyncIterator[Socket]:
    """A connection of another user that must notice nothing of the hostile ones."""
    user = uuid.uuid4()
    token = tokens.token(user, ttl=900)
    async with open_socket(shared_producer, headers={"Authorization": f"Bearer {token}"}) as ws:
        yield ws


async def test_the_table_is_big_enough() -> None:
    """At least 20 hostile frames, each with its own id."""
    assert len(CASES) >= 20
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_hostile_frame_gets_its_code_and_the_connection_keeps_working(
    shared_producer: str, setting: Setting, control: Socket, case: Case
) -> None:
    frame = case.frame
    if isinstance(frame, str):
        frame = frame.replace(CONV, setting.conversation).replace(FOREIGN, setting.foreign)
    async with open_socket(shared_producer, setting.user) as ws:
        await ws.send_raw(frame)
        error = await ws.recv()
        assert error["type"] == "error"
        assert error["code"] == case.code, error
        assert error["ref"] == case.ref
        assert isinstance(error["message"], str)
        assert error.get("field") == case.field or case.field is None
        client_msg_id = await ws.send_message(setting.conversation, "still here")
        ack = await ws.recv()
        assert (ack["type"], ack["client_msg_id"]) == ("ack", client_msg_id)
    await control.ping()


async def test_sql_and_markup_are_accepted_verbatim(shared_producer: str, setting: Setting) -> None:
    """Hostile-looking but valid bodies are messages like any other."""
    async with open_socket(shared_producer, setting.user) as ws:
        for body in (
            "'); DROP TABLE messaging.messages; --",
            "<script>alert(1)</script>",
            "\u202etxt.exe",
            "😀" * 1000,
        ):
            await ws.send_message(setting.conversation, body)
            assert (await ws.recv())["type"] == "ack"
