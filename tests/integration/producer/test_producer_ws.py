"""The producer's WebSocket on real NATS and PostgreSQL: sends, acks, auth and close codes."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson
import pytest
import websockets.asyncio.client
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from websockets.exceptions import InvalidStatus

from rtm.producer.bootstrap import create_app
from rtm.producer.settings import ProducerSettings
from rtm.shared.contract import (
    READ_EVENTS,
    SESSION_REVOKED,
    STREAM,
    TYPING_EVENTS,
    AcceptedMessage,
    ReadEvent,
    SessionRevoked,
    TypingEvent,
)
from rtm.shared.ws import CloseCode
from tests.integration.producer.conftest import (
    NewUser,
    User,
    create_conversation,
    open_socket,
    wait_ready,
)
from tests.support.asgi import running_producer
from tests.support.tokens import TokenFactory

pytestmark = pytest.mark.asyncio(loop_scope="module")

ACK_KEYS = {"type", "client_msg_id", "message_id", "stream_seq", "duplicate", "accepted_at"}


async def direct(base: str, new_user: NewUser) -> tuple[User, User, str]:
    alice, bob = new_user(), new_user()
    conversation = await create_conversation(base, alice, "direct", bob)
    return alice, bob, conversation["id"]


async def test_send_is_acked_once_stored_in_jetstream(
    shared_producer: str, new_user: NewUser, shared_nc: NatsClient
) -> None:
    alice, _, conversation = await direct(shared_producer, new_user)
    async with open_socket(shared_producer, alice) as ws:
        client_msg_id = await ws.send_message(conversation, "<b>hello</b>")
        ack = await ws.recv()
        assert set(ack) == ACK_KEYS
        assert ack["type"] == "ack"
        assert ack["client_msg_id"] == client_msg_id
        assert ack["duplicate"] is False
        stored = await shared_nc.jetstream().get_msg(STREAM, seq=ack["stream_seq"])
        message = AcceptedMessage.decode(stored.data or b"")
        assert str(message.message_id) == ack["message_id"]
        assert message.body == "<b>hello</b>"
        await ws.ping()


async def test_first_frame_authentication_answers_auth_ok(
    shared_producer: str, new_user: NewUser
) -> None:
    alice, _, conversation = await direct(shared_producer, new_user)
    async with open_socket(shared_producer) as ws:
        await ws.send({"type": "auth", "token": alice.token})
        auth_ok = await ws.recv()
        assert auth_ok["type"] == "auth_ok"
        assert isinstance(auth_ok["exp"], int)
        await ws.send_message(conversation)
        assert (await ws.recv())["type"] == "ack"


async def test_pipelined_sends_are_acked_in_the_order_sent(
    shared_producer: str, new_user: NewUser, shared_nc: NatsClient
) -> None:
    """Sixty sends without waiting: acks come back in order, JetStream order matches."""
    alice, _, conversation = await direct(shared_producer, new_user)
    async with open_socket(shared_producer, alice) as ws:
        sent = [await ws.send_message(conversation, f"m{i}") for i in range(40)]
        acks = [await ws.recv() for _ in sent]
        await asyncio.sleep(2.0)  # refill the bucket: 40 frames was the whole burst
        sent2 = [await ws.send_message(conversation, f"n{i}") for i in range(20)]
        acks += [await ws.recv() for _ in sent2]
    assert [a["client_msg_id"] for a in acks] == sent + sent2
    seqs = [a["stream_seq"] for a in acks]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 60
    bodies = [
        AcceptedMessage.decode(
            (await shared_nc.jetstream().get_msg(STREAM, seq=seq)).data or b""
        ).body
        for seq in seqs
    ]
    assert bodies == [f"m{i}" for i in range(40)] + [f"n{i}" for i in range(20)]


async def test_resending_a_client_msg_id_acks_the_original(
    shared_producer: str, new_user: NewUser
) -> None:
    alice, _, conversation = await direct(shared_producer, new_user)
    async with open_socket(shared_producer, alice) as ws:
        key = await ws.send_message(conversation, "original")
        first = await ws.recv()
        await ws.send_message(conversation, "something else", client_msg_id=key)
        again = await ws.recv()
    assert again == {**first, "duplicate": True}


async def test_a_later_auth_frame_refreshes_the_token(
    shared_producer: str, new_user: NewUser, tokens: TokenFactory
) -> None:
    alice, _, conversation = await direct(shared_producer, new_user)
    async with open_socket(shared_producer, alice) as ws:
        fresh = tokens.token(alice.id, alice.session_id, ttl=900)
        await ws.send({"type": "auth", "token": fresh})
        assert (await ws.recv())["type"] == "auth_ok"
        await ws.send({"type": "auth", "token": new_user().token})
        error = await ws.recv()
        assert (error["type"], error["code"], error["ref"]) == ("error", "unauthorized", None)
        await ws.send_message(conversation)
        assert (await ws.recv())["type"] == "ack"


async def test_no_auth_frame_in_time_closes_4502(shared_producer: str) -> None:
    async with open_socket(shared_producer) as ws:
        assert await ws.closed_with(timeout=5) == CloseCode.AUTH_TIMEOUT


@pytest.mark.parametrize(
    "first_frame", ['{"type":"auth","token":"not-a-jwt"}', '{"type":"ping"}', "garbage"]
)
async def test_a_bad_first_frame_closes_4500(shared_producer: str, first_frame: str) -> None:
    async with open_socket(shared_producer) as ws:
        await ws.send_raw(first_frame)
        assert await ws.closed_with() == CloseCode.INVALID_TOKEN


async def test_a_forged_header_token_closes_4500(shared_producer: str, new_user: NewUser) -> None:
    forged = new_user().token[:-4] + "AAAA"
    async with open_socket(shared_producer, headers={"Authorization": f"Bearer {forged}"}) as ws:
        assert await ws.closed_with() == CloseCode.INVALID_TOKEN


async def test_an_expiring_token_closes_4505(shared_producer: str, new_user: NewUser) -> None:
    user = new_user(ttl=1)
    async with open_socket(shared_producer, user) as ws:
        await ws.ping()
        assert await ws.closed_with(timeout=5) == CloseCode.TOKEN_EXPIRED


async def test_refreshing_before_expiry_keeps_the_connection(
    shared_producer: str, tokens: TokenFactory
) -> None:
    user, session = uuid.uuid4(), uuid.uuid4()
    short = tokens.token(user, session, ttl=3)  # outlives connecting on a loaded machine
    async with open_socket(shared_producer, headers={"Authorization": f"Bearer {short}"}) as ws:
        await ws.send({"type": "auth", "token": tokens.token(user, session, ttl=600)})
        assert (await ws.recv())["type"] == "auth_ok"
        await asyncio.sleep(3.5)
        await ws.ping()


async def test_a_refresh_with_a_shorter_lived_token_closes_4505_at_its_expiry(
    shared_producer: str, tokens: TokenFactory
) -> None:
    user, session = uuid.uuid4(), uuid.uuid4()
    long = tokens.token(user, session, ttl=600)
    async with open_socket(shared_producer, headers={"Authorization": f"Bearer {long}"}) as ws:
        await ws.send({"type": "auth", "token": tokens.token(user, session, ttl=3)})
        assert (await ws.recv())["type"] == "auth_ok"
        assert await ws.closed_with(timeout=5) == CloseCode.TOKEN_EXPIRED


async def test_an_expired_token_is_refused_with_4505(
    shared_producer: str, tokens: TokenFactory
) -> None:
    user = uuid.uuid4()
    expired = tokens.token(user, ttl=-60)
    async with open_socket(shared_producer, headers={"Authorization": f"Bearer {expired}"}) as ws:
        assert await ws.closed_with() == CloseCode.TOKEN_EXPIRED


async def test_revoked_session_is_closed_4503_and_its_tokens_refused(
    shared_producer: str, new_user: NewUser, shared_nc: NatsClient
) -> None:
    alice = new_user()
    async with (
        open_socket(shared_producer, alice) as ws,
        open_socket(shared_producer, new_user()) as other,
    ):
        await ws.ping()
        await other.ping()
        await shared_nc.publish(
            SESSION_REVOKED, SessionRevoked(alice.session_id, alice.id).encode()
        )
        started = asyncio.get_running_loop().time()
        assert await ws.closed_with(timeout=5) == CloseCode.SESSION_REVOKED
        assert asyncio.get_running_loop().time() - started < 5
        await other.ping()
    async with open_socket(shared_producer, alice) as again:
        assert await again.closed_with() == CloseCode.SESSION_REVOKED


async def test_eleventh_connection_of_a_user_closes_4504(
    shared_producer: str, new_user: NewUser
) -> None:
    alice = new_user()
    sockets = [open_socket(shared_producer, alice) for _ in range(10)]
    opened = [await s.__aenter__() for s in sockets]
    try:
        for ws in opened:
            await ws.ping()
        async with open_socket(shared_producer, alice) as extra:
            assert await extra.closed_with() == CloseCode.TOO_MANY_CONNECTIONS
        await opened[0].ping()
    finally:
        for s in sockets:
            await s.__aexit__(None, None, None)
    async with open_socket(shared_producer, alice) as ws:  # freed again
        await ws.ping()


async def test_frames_over_the_rate_are_refused_with_a_retry_delay(
    shared_producer: str, new_user: NewUser
) -> None:
    """A burst of 60 pings: 40 pongs, then `rate_limited` errors; the connection stays."""
    async with open_socket(shared_producer, new_user()) as ws:
        for _ in range(60):
            await ws.send({"type": "ping"})
        answers = [await ws.recv() for _ in range(60)]
        assert answers.count({"type": "pong"}) >= 40  # the burst (plus what refilled meanwhile)
        limited = [a for a in answers if a["type"] == "error"]
        assert limited
        assert {a["code"] for a in limited} == {"rate_limited"}
        retry = max(a["retry_after_ms"] for a in limited)
        await asyncio.sleep(retry / 1000)
        await ws.ping()


async def test_sustained_flood_closes_4013(shared_producer: str, new_user: NewUser) -> None:
    async with open_socket(shared_producer, new_user()) as ws:
        for _ in range(300):
            await ws.send({"type": "ping"})
        assert await ws.closed_with() == CloseCode.FLOOD


async def test_ten_protocol_errors_close_4501(shared_producer: str, new_user: NewUser) -> None:
    async with open_socket(shared_producer, new_user()) as ws:
        for _ in range(9):
            await ws.send_raw("nope")
            assert (await ws.recv())["code"] == "invalid_json"
        await ws.ping()
        await ws.send_raw("nope")
        assert (await ws.recv())["code"] == "invalid_json"
        assert await ws.closed_with() == CloseCode.PROTOCOL_ERRORS


async def test_oversized_frame_closes_1009(shared_producer: str, new_user: NewUser) -> None:
    async with open_socket(shared_producer, new_user()) as ws:
        await ws.send_raw(orjson.dumps({"type": "ping", "pad": "x" * 70_000}).decode())
        assert await ws.closed_with() == CloseCode.TOO_BIG


async def test_invalid_utf8_closes_1007(shared_producer: str, new_user: NewUser) -> None:
    async with open_socket(shared_producer, new_user()) as ws:
        await ws.send_raw(b'{"type":"ping","x":"\xff\xfe"}', text=True)
        assert await ws.closed_with() == CloseCode.INVALID_UTF8


async def test_disallowed_origin_closes_1008(
    shared_settings: ProducerSettings, new_user: NewUser
) -> None:
    """With `allowed_origins` restricted, a browser from elsewhere is refused (1008)."""
    settings = shared_settings.model_copy(update={"allowed_origins": ["https://ok.example"]})
    async with running_producer(
        create_app(settings), ws_max_size=settings.max_frame_bytes
    ) as producer:
        await wait_ready(producer)
        async with open_socket(
            producer, new_user(), headers={"Origin": "https://evil.example"}
        ) as ws:
            assert await ws.closed_with() == CloseCode.POLICY
        async with open_socket(
            producer, new_user(), headers={"Origin": "https://ok.example"}
        ) as ws:
            await ws.ping()


async def collect(nc: NatsClient, subject: str) -> tuple[asyncio.Queue[bytes], Any]:
    queue: asyncio.Queue[bytes] = asyncio.Queue()

    async def put(msg: Msg) -> None:
        queue.put_nowait(msg.data)

    subscription = await nc.subscribe(subject, cb=put)
    await nc.flush()
    return queue, subscription


async def test_typing_is_published_once_per_interval_and_read_markers_always(
    shared_producer: str, new_user: NewUser, shared_nc: NatsClient
) -> None:
    alice, _, conversation = await direct(shared_producer, new_user)
    typing, typing_sub = await collect(shared_nc, TYPING_EVENTS)
    reads, reads_sub = await collect(shared_nc, READ_EVENTS)
    async with open_socket(shared_producer, alice) as ws:
        for _ in range(3):
            await ws.send({"type": "typing", "conversation_id": conversation})
        await ws.send({"type": "read", "conversation_id": conversation, "seq": 3})
        await ws.ping()
        event = TypingEvent.decode(await asyncio.wait_for(typing.get(), 5))
        assert (str(event.conversation_id), event.user_id) == (conversation, alice.id)
        read = ReadEvent.decode(await asyncio.wait_for(reads.get(), 5))
        assert (str(read.conversation_id), read.user_id, read.seq) == (conversation, alice.id, 3)
        await asyncio.sleep(0.2)
        assert typing.empty()
    await typing_sub.unsubscribe()
    await reads_sub.unsubscribe()


async def test_a_read_frame_is_answered_read_ok_once_handed_on(
    shared_producer: str, new_user: NewUser, shared_nc: NatsClient
) -> None:
    # Issue 14: a `read` gets a reply, `read_ok` with the conversation and seq it named (after
    # the marker event is published); a refused one still gets an error frame instead.
    alice, _, conversation = await direct(shared_producer, new_user)
    reads, reads_sub = await collect(shared_nc, READ_EVENTS)
    foreign = str(uuid.uuid4())
    async with open_socket(shared_producer, alice) as ws:
        await ws.send({"type": "read", "conversation_id": conversation, "seq": 7})
        assert await ws.recv() == {"type": "read_ok", "conversation_id": conversation, "seq": 7}
        event = ReadEvent.decode(await asyncio.wait_for(reads.get(), 5))
        assert (str(event.conversation_id), event.user_id, event.seq) == (conversation, alice.id, 7)
        await ws.send({"type": "read", "conversation_id": foreign, "seq": 1})
        refused = await ws.recv()
        assert (refused["type"], refused["code"]) == ("error", "forbidden")
        await ws.ping()
    await reads_sub.unsubscribe()


async def test_plain_http_on_the_socket_path_is_not_a_websocket(shared_producer: str) -> None:
    with pytest.raises(InvalidStatus):
        await websockets.asyncio.client.connect(
            f"ws://{shared_producer}/v1/nope", proxy=None, open_timeout=5
        )
