"""Token matrix of producer and consumer: every WebSocket frame type and every HTTP route that
needs a bearer token refuses every bad access token (issue 3; docs/protocol.md,
"3. Authentication").

Bad tokens, all for a real user (a member of real conversations, so an accepted token would
visibly do something): none, malformed, expired, not yet valid, living longer than the
access-token TTL (issue 11), `alg: none`, HS256 keyed with the public key, wrong `aud`, wrong
`iss`, a refresh token used as access token, the token of a revoked session (revoked by a
`SessionRevoked` event on NATS, as auth publishes it), the token of a deleted user, a `typ` other
than `at+jwt`, an unknown `kid`, and another key using the known `kid`.

Expected: WebSocket handshakes close 4500 (4505 when expired, 4503 when revoked) without any
frame (no `auth_ok`, `ack`, `pong`, `ready`, `resumed`) and nothing reaches NATS; a later `auth`
frame on an open connection is refused (producer: `error` frame, consumer: closed) and never
answered `auth_ok`; HTTP answers 401 with the error envelope, code `unauthorized`. Each shape
has a control case with a valid token that must be accepted, so the matrix can fail.

The deleted user is the victim's friend: an account of a real auth service (on the module's
database and NATS) with a live session, whose token both services accept until the account is
deleted through auth's `delete_user`; the `SessionRevoked` events auth then publishes must make
both refuse it within 5 s (producer and consumer verify tokens locally: revocations are all they
learn). Its tokens are signed with the matrix's key for that real session.

One producer, one consumer, one nats-server and one database serve the whole module.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import nats
import pytest
import pytest_asyncio
import websockets
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from rtm.auth.bootstrap import Auth, build
from rtm.auth.domain.model import ClientInfo
from rtm.auth.domain.tokens import new_refresh_token
from rtm.consumer import bootstrap as consumer_bootstrap
from rtm.consumer.entrypoints import ws_session as consumer_ws
from rtm.consumer.settings import ConsumerSettings
from rtm.local.nats import EmbeddedNats
from rtm.local.postgres import EmbeddedPostgres
from rtm.producer import bootstrap as producer_bootstrap
from rtm.producer.entrypoints import ws_connection as producer_ws
from rtm.shared.contract import (
    CONVERSATION_EVENTS,
    MESSAGE_SUBJECT_PREFIX,
    READ_EVENTS,
    SESSION_REVOKED,
    TYPING_EVENTS,
    SessionRevoked,
)
from tests.integration.auth.conftest import make_settings
from tests.integration.auth.test_auth_token_matrix import b64, unsigned
from tests.integration.consumer.conftest import wait_ready as consumer_ready
from tests.integration.producer.conftest import settings_for
from tests.integration.producer.conftest import wait_ready as producer_ready
from tests.support.asgi import running, running_consumer
from tests.support.db import register_users
from tests.support.servers import migrated_database, running_nats
from tests.support.tokens import TokenFactory, serve_jwks

pytestmark = pytest.mark.asyncio(loop_scope="module")

BAD = [
    "no_token", "malformed", "expired", "not_yet_valid", "alg_none", "hs256_public_key",
    "wrong_aud", "wrong_iss", "refresh_as_access", "revoked_session", "deleted_user",
    "wrong_typ", "unknown_kid", "same_kid_other_key", "too_long_lived",
]  # fmt: skip
# The close code of a refused handshake: 4505 says "refresh and retry", 4503 "log in again".
CLOSE_CODE = {"expired": 4505, "revoked_session": 4503, "deleted_user": 4503}
PRODUCER_ACTIONS = ["send", "typing", "read", "ping"]
CONSUMER_ACTIONS = ["ping", "resume"]
# How the bad token is presented: on the upgrade request, or as the first `auth` frame.
TRANSPORTS = ["header", "auth_frame"]
# What a service answers to an action once authenticated (None: nothing, only a NATS event).
PRODUCER_REPLY = {"send": "ack", "typing": None, "read": None, "ping": "pong"}
CONSUMER_REPLY = {"ping": "pong", "resume": "resumed"}
CLIENT = ClientInfo(address="192.0.2.1", user_agent="token-matrix")
OBSERVED_SUBJECTS = [f"{MESSAGE_SUBJECT_PREFIX}.>", TYPING_EVENTS, READ_EVENTS, CONVERSATION_EVENTS]


# -- the module's system ---------------------------------------------------------------------


@dataclass
class Observer:
    """Everything published on the subjects a producer writes to, in arrival order."""

    client: NatsClient
    seen: list[tuple[str, bytes]] = field(default_factory=list)

    async def on_message(self, msg: Msg) -> None:
        self.seen.append((msg.subject, msg.data))

    async def about(self, marker: uuid.UUID, since: int) -> list[tuple[str, bytes]]:
        """What was published since `since` that mentions `marker` (after a NATS round trip)."""
        await self.client.flush()
        needle = str(marker).encode()
        return [(subject, data) for subject, data in self.seen[since:] if needle in data]

    async def wait_for(
        self, subject: str, marker: uuid.UUID, since: int, ws: ClientConnection
    ) -> None:
        """Until something mentioning `marker` is published on a subject starting `subject`;
        what `ws` receives meanwhile is in the failure message."""
        deadline = time.monotonic() + 10
        frames: list[str | bytes] = []
        while not any(s.startswith(subject) for s, _ in await self.about(marker, since)):
            assert time.monotonic() < deadline, f"nothing about {marker} on {subject}: {frames}"
            with contextlib.suppress(TimeoutError):
                frames.append(await asyncio.wait_for(ws.recv(), 0.05))


@dataclass
class System:
    tokens: TokenFactory
    producer: str
    consumer: str
    producer_app: FastAPI
    consumer_app: FastAPI
    observer: Observer
    user: uuid.UUID  # the victim: every token below claims to be this user
    session: uuid.UUID  # a live session of the user
    revoked: uuid.UUID  # a revoked session of the user
    friend: uuid.UUID  # a member of `direct` and `group`: the deleted user
    friend_session: uuid.UUID  # the friend's session before the deletion
    bystander: uuid.UUID  # a member of `group`, the target of the member-removal attempts
    direct: uuid.UUID  # direct conversation user + friend
    group: uuid.UUID  # group of user, friend, bystander
    database_url: str

    def registered(self) -> uuid.UUID:
        """A new user auth knows: conversation members must be users (migration 0006)."""
        user = uuid.uuid4()
        register_users(self.database_url, [user])
        return user

    def valid(self, **claims: Any) -> str:
        return self.tokens.token(self.user, self.session, **claims)

    def claimant(self, kind: str) -> uuid.UUID:
        """The user a bad token of `kind` claims to be."""
        return self.friend if kind == "deleted_user" else self.user

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.valid())


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token is not None else {}


@pytest.fixture(scope="module")
def database_url_for_module(pg_server: EmbeddedPostgres) -> Iterator[str]:
    with migrated_database(pg_server, "tm_") as url:
        yield url


@pytest.fixture(scope="module")
def nats_for_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    with running_nats(tmp_path_factory.mktemp("nats-token-matrix")) as server:
        yield server


@pytest.fixture(scope="module")
def tokens() -> TokenFactory:
    return TokenFactory()


@pytest.fixture(scope="module")
def jwks_url(tokens: TokenFactory) -> Iterator[str]:
    with serve_jwks(tokens) as url:
        yield url


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def auth(database_url_for_module: str, nats_for_module: EmbeddedNats) -> AsyncIterator[Auth]:
    """Auth on the module's database and NATS: the deleted user's account and its deletion."""
    runtime = build(make_settings(database_url_for_module, nats_for_module.url))
    await runtime.start(serve_http=False)
    await runtime.wait_ready()
    yield runtime
    await runtime.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def system(
    database_url_for_module: str,
    nats_for_module: EmbeddedNats,
    jwks_url: str,
    tokens: TokenFactory,
    auth: Auth,
) -> AsyncIterator[System]:
    # Many conversations of one user: the throttle of conversation commands out of the way.
    producer_settings = settings_for(
        database_url_for_module, nats_for_module.url, jwks_url, conversation_burst=100_000
    )
    consumer_settings = ConsumerSettings(
        database_url=database_url_for_module,
        nats_url=nats_for_module.url,
        auth_url=jwks_url,
        partitions=producer_settings.partitions,
        lease_ttl_s=2.0,
        instance_id="token-matrix",
        migrate_on_start=False,
        fetch_timeout_s=0.2,
    )
    producer_app = producer_bootstrap.create_app(producer_settings)
    consumer_app = consumer_bootstrap.create_app(consumer_settings)
    client = await nats.connect(nats_for_module.url)
    observer = Observer(client)
    for subject in OBSERVED_SUBJECTS:
        await client.subscribe(subject, cb=observer.on_message)
    async with (
        running(producer_app, ws_max_size=producer_settings.max_frame_bytes) as producer,
        running_consumer(consumer_app) as consumer,
    ):
        await asyncio.gather(producer_ready(producer), consumer_ready(consumer))
        user, bystander = uuid.uuid4(), uuid.uuid4()
        register_users(database_url_for_module, [user, bystander])
        session, revoked = uuid.uuid4(), uuid.uuid4()
        friend = (await auth.context.accounts.register("friend", "password-1", None)).id
        friend_session = (
            await auth.context.logins.login("friend", "password-1", CLIENT)
        ).session_id
        headers = bearer(tokens.token(user, session))
        direct = await create_conversation(producer, headers, "direct", friend)
        group = await create_conversation(producer, headers, "group", friend, bystander)
        await revoke(client, producer, consumer, tokens.token(user, revoked), revoked, user)
        await delete(auth, producer, consumer, tokens.token(friend, friend_session), friend)
        yield System(
            tokens, producer, consumer, producer_app, consumer_app, observer,
            user, session, revoked, friend, friend_session, bystander, direct, group,
            database_url_for_module,
        )  # fmt: skip
    await client.close()


async def create_conversation(
    producer: str, headers: dict[str, str], kind: str, *members: uuid.UUID
) -> uuid.UUID:
    async with httpx.AsyncClient(base_url=f"http://{producer}", trust_env=False) as http:
        response = await http.post(
            "/v1/conversations",
            json={"kind": kind, "member_ids": [str(m) for m in members], "title": None},
            headers=headers,
        )
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["id"])


async def revoke(
    client: NatsClient,
    producer: str,
    consumer: str,
    token: str,
    session: uuid.UUID,
    user: uuid.UUID,
) -> None:
    """Publish auth's `SessionRevoked` until both services refuse the session's token (4503)."""

    async def publish() -> None:
        await client.publish(SESSION_REVOKED, SessionRevoked(session, user).encode())
        await client.flush()

    await until_refused(producer, consumer, token, within=10, before_each_try=publish)


async def delete(auth: Auth, producer: str, consumer: str, token: str, user: uuid.UUID) -> None:
    """Delete the user through auth while `token` holds an accepted socket on each service: the
    revocations auth publishes close both (4503) and make new handshakes fail (4503) within 5 s."""
    async with connected(producer, bearer(token)) as one, connected(consumer, bearer(token)) as two:
        async with asyncio.timeout(5):
            for ws in (one, two):
                await ws.send(json.dumps({"type": "ping"}))
                while json.loads(await ws.recv())["type"] != "pong":
                    pass
        deletion = await auth.context.accounts.delete_user(user)
        assert len(deletion.revoked) == 1
        async with asyncio.timeout(5):
            assert [await close_code(one), await close_code(two)] == [4503, 4503]
    await until_refused(producer, consumer, token, within=5)


async def close_code(ws: ClientConnection) -> int | None:
    """Read until the server closes the connection; the code it closed with."""
    try:
        while True:
            await ws.recv()
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None


async def until_refused(
    producer: str,
    consumer: str,
    token: str,
    *,
    within: float,
    before_each_try: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Until both services close a handshake with `token` 4503."""
    deadline = time.monotonic() + within
    pending = {producer, consumer}
    while pending:
        assert time.monotonic() < deadline, f"revocation not applied by {pending}"
        if before_each_try is not None:
            await before_each_try()
        for base in list(pending):
            outcome = await converse(base, bearer(token), [{"type": "ping"}], until="pong")
            if outcome.close_code == 4503:
                pending.discard(base)
        await asyncio.sleep(0.05)


# -- tokens ----------------------------------------------------------------------------------


def bad_token(kind: str, system: System) -> str | None:
    """A token of `kind` claiming to be `system.user` (None: no token at all)."""
    factory = system.tokens
    user, session = system.user, system.session
    now = int(time.time())
    claims = jwt.decode(system.valid(), options={"verify_signature": False})
    header = {"alg": "EdDSA", "typ": "at+jwt", "kid": factory.kid}
    if kind == "no_token":
        return None
    if kind == "malformed":
        return "not.a.jwt"
    if kind == "expired":
        return factory.token(user, session, iat=now - 2000, exp=now - 1000)
    if kind == "too_long_lived":  # signed with the real key, but living longer than the TTL
        return factory.token(user, session, iat=now, exp=now + 900 + 3600)
    if kind == "not_yet_valid":
        return factory.token(user, session, iat=now + 600, exp=now + 1500)
    if kind == "alg_none":
        return unsigned({**header, "alg": "none"}, claims) + "."
    if kind == "hs256_public_key":
        pem = factory.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        body = unsigned({**header, "alg": "HS256"}, claims)
        return body + "." + b64(hmac.new(pem, body.encode(), hashlib.sha256).digest())
    if kind == "wrong_aud":
        return factory.token(user, session, aud="someone-else")
    if kind == "wrong_iss":
        return factory.token(user, session, iss="https://evil.example")
    if kind == "refresh_as_access":
        return new_refresh_token()
    if kind == "revoked_session":
        return factory.token(user, system.revoked)
    if kind == "deleted_user":
        return factory.token(system.friend, system.friend_session)
    if kind == "wrong_typ":
        return jwt.encode(
            claims, factory.key, algorithm="EdDSA", headers={"kid": factory.kid, "typ": "JWT"}
        )
    if kind == "unknown_kid":
        return TokenFactory().token(user, session)
    if kind == "same_kid_other_key":
        return TokenFactory(kid=factory.kid).token(user, session)
    raise AssertionError(kind)


def auth_frame(token: str | None) -> dict[str, Any]:
    return {"type": "auth", "token": token} if token is not None else {"type": "auth"}


# -- WebSocket -------------------------------------------------------------------------------


@dataclass
class Outcome:
    frames: list[dict[str, Any]]
    close_code: int | None  # None: still open when the awaited frame arrived

    @property
    def types(self) -> list[str]:
        return [frame["type"] for frame in self.frames]


@contextlib.asynccontextmanager
async def connected(base: str, headers: dict[str, str]) -> AsyncIterator[ClientConnection]:
    async with websockets.connect(
        f"ws://{base}/v1/ws",
        additional_headers=headers,
        proxy=None,
        compression=None,
        open_timeout=5,
        close_timeout=2,
    ) as ws:
        yield ws


async def converse(
    base: str,
    headers: dict[str, str],
    frames: list[dict[str, Any]],
    *,
    until: str | None = None,
    timeout: float = 5.0,
) -> Outcome:
    """Connect, send `frames`, and read until the server closes (or a frame of type `until`)."""
    async with connected(base, headers) as ws:
        for frame in frames:
            with contextlib.suppress(ConnectionClosed):  # the server may have closed already
                await ws.send(json.dumps(frame))
        received: list[dict[str, Any]] = []
        try:
            async with asyncio.timeout(timeout):
                while True:
                    received.append(json.loads(await ws.recv()))
                    if received[-1]["type"] == until:
                        return Outcome(received, None)
        except ConnectionClosed as closed:
            return Outcome(received, closed.rcvd.code if closed.rcvd else None)
        except TimeoutError:
            raise AssertionError(f"neither closed nor answered {until}: {received}") from None


def action_frame(action: str, conversation: uuid.UUID) -> dict[str, Any]:
    conversation_id = str(conversation)
    if action == "send":
        return {
            "type": "send",
            "client_msg_id": str(uuid.uuid4()),
            "conversation_id": conversation_id,
            "body": "let me in",
        }
    if action == "typing":
        return {"type": "typing", "conversation_id": conversation_id}
    if action == "read":
        return {"type": "read", "conversation_id": conversation_id, "seq": 0}
    if action == "ping":
        return {"type": "ping"}
    if action == "resume":
        return {"type": "resume", "cursors": {conversation_id: 0}}
    raise AssertionError(action)


def presented(
    transport: str, token: str | None, action: dict[str, Any]
) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Headers and frames presenting `token` by `transport`, then attempting `action`."""
    if transport == "header":
        return bearer(token), [action]
    return {}, [auth_frame(token), action]


@pytest.mark.parametrize("kind", BAD)
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("action", PRODUCER_ACTIONS)
async def test_producer_socket_refuses(
    system: System, action: str, transport: str, kind: str
) -> None:
    since = len(system.observer.seen)
    headers, frames = presented(
        transport, bad_token(kind, system), action_frame(action, system.direct)
    )
    outcome = await converse(system.producer, headers, frames)
    assert outcome.frames == []
    assert outcome.close_code == CLOSE_CODE.get(kind, 4500)
    assert await system.observer.about(system.claimant(kind), since) == []


@pytest.mark.parametrize("kind", BAD)
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("action", CONSUMER_ACTIONS)
async def test_consumer_socket_refuses(
    system: System, action: str, transport: str, kind: str
) -> None:
    headers, frames = presented(
        transport, bad_token(kind, system), action_frame(action, system.direct)
    )
    outcome = await converse(system.consumer, headers, frames)
    assert outcome.frames == []
    assert outcome.close_code == CLOSE_CODE.get(kind, 4500)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("action", PRODUCER_ACTIONS)
async def test_producer_socket_control_accepts_a_valid_token(
    system: System, action: str, transport: str
) -> None:
    # A conversation of its own: typing is throttled per user and conversation.
    conversation = await create_conversation(
        system.producer, system.headers, "direct", system.registered()
    )
    since = len(system.observer.seen)
    headers, frames = presented(transport, system.valid(), action_frame(action, conversation))
    reply = PRODUCER_REPLY[action]
    if reply is not None:
        outcome = await converse(system.producer, headers, frames, until=reply)
        assert outcome.close_code is None
        assert outcome.types == (["auth_ok"] if transport == "auth_frame" else []) + [reply]
    subject = {"send": MESSAGE_SUBJECT_PREFIX, "typing": TYPING_EVENTS, "read": READ_EVENTS}
    if action in subject:
        # typing and read answer nothing (but an error): their event on NATS is the proof
        async with connected(system.producer, headers) as ws:
            if reply is None:
                for frame in frames:
                    await ws.send(json.dumps(frame))
            await system.observer.wait_for(subject[action], conversation, since, ws)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("action", CONSUMER_ACTIONS)
async def test_consumer_socket_control_accepts_a_valid_token(
    system: System, action: str, transport: str
) -> None:
    headers, frames = presented(transport, system.valid(), action_frame(action, system.direct))
    outcome = await converse(system.consumer, headers, frames, until=CONSUMER_REPLY[action])
    assert outcome.close_code is None
    assert "ready" in outcome.types
    assert ("auth_ok" in outcome.types) == (transport == "auth_frame")
    if action == "resume":
        assert "error" not in outcome.frames[-1]["conversations"][str(system.direct)]


# A later `auth` frame on an open connection replaces its token: a bad one must not. (A deleted
# user has no open connection left to send one on: `delete` checks that the deletion closed them.)
LATER_BAD = [kind for kind in BAD if kind != "deleted_user"]


@pytest.mark.parametrize("kind", LATER_BAD)
async def test_producer_refuses_a_bad_token_in_a_later_auth_frame(
    system: System, kind: str
) -> None:
    frames = [auth_frame(bad_token(kind, system)), {"type": "ping"}]
    outcome = await converse(system.producer, system.headers, frames, until="pong")
    assert outcome.close_code is None
    assert "auth_ok" not in outcome.types
    [error, _pong] = outcome.frames
    assert error["type"] == "error"
    assert error["code"] == ("validation_failed" if kind == "no_token" else "unauthorized")


@pytest.mark.parametrize("kind", LATER_BAD)
async def test_consumer_refuses_a_bad_token_in_a_later_auth_frame(
    system: System, kind: str
) -> None:
    frames = [auth_frame(bad_token(kind, system)), {"type": "ping"}]
    outcome = await converse(system.consumer, system.headers, frames, until="pong")
    assert "auth_ok" not in outcome.types
    if kind == "no_token":  # a frame without a token is a protocol error, not a token
        assert outcome.close_code is None
        assert [f["code"] for f in outcome.frames if f["type"] == "error"] == ["validation_failed"]
    else:
        assert outcome.close_code == CLOSE_CODE.get(kind, 4500)
        assert "pong" not in outcome.types


@pytest.mark.parametrize("service", ["producer", "consumer"])
async def test_a_later_auth_frame_with_a_valid_token_is_accepted(
    system: System, service: str
) -> None:
    base = system.producer if service == "producer" else system.consumer
    frames = [auth_frame(system.valid(ttl=900)), {"type": "ping"}]
    outcome = await converse(base, system.headers, frames, until="pong")
    assert outcome.close_code is None
    assert "auth_ok" in outcome.types


# -- HTTP ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # with {direct}, {group}, {member} placeholders
    body: Callable[[System], dict[str, Any]] | None = None
    status: int = 200  # of the control request


PRODUCER_ROUTES = {
    "send_message": Route(
        "POST",
        "/v1/messages",
        lambda s: {
            "client_msg_id": str(uuid.uuid4()),
            "conversation_id": str(s.direct),
            "body": "let me in",
        },
        202,
    ),
    "create_conversation": Route(
        "POST",
        "/v1/conversations",
        lambda s: {"kind": "group", "member_ids": [str(s.bystander)], "title": "let me in"},
        201,
    ),
    "add_conversation_member": Route(
        "POST",
        "/v1/conversations/{group}/members",
        lambda s: {"user_id": str(s.registered())},
        204,
    ),
    "remove_conversation_member": Route(
        "DELETE", "/v1/conversations/{group}/members/{member}", status=204
    ),
}
CONSUMER_ROUTES = {
    "list_conversations": Route("GET", "/v1/conversations"),
    "get_conversation": Route("GET", "/v1/conversations/{direct}"),
    "list_messages": Route("GET", "/v1/conversations/{direct}/messages"),
    "mark_read": Route("POST", "/v1/conversations/{direct}/read", lambda s: {"seq": 0}),
}


async def call(
    base: str, route: Route, system: System, headers: dict[str, str], member: uuid.UUID
) -> httpx.Response:
    path = route.path.format(direct=system.direct, group=system.group, member=member)
    body = route.body(system) if route.body else None
    async with httpx.AsyncClient(base_url=f"http://{base}", trust_env=False) as http:
        return await http.request(route.method, path, json=body, headers=headers)


def assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == "unauthorized"
    assert isinstance(body["error"]["message"], str)


@pytest.mark.parametrize("kind", BAD)
@pytest.mark.parametrize("route", PRODUCER_ROUTES)
async def test_producer_http_refuses(system: System, route: str, kind: str) -> None:
    since = len(system.observer.seen)
    headers = bearer(bad_token(kind, system))
    response = await call(
        system.producer, PRODUCER_ROUTES[route], system, headers, system.bystander
    )
    assert_unauthorized(response)
    assert await system.observer.about(system.claimant(kind), since) == []


@pytest.mark.parametrize("kind", BAD)
@pytest.mark.parametrize("route", CONSUMER_ROUTES)
async def test_consumer_http_refuses(system: System, route: str, kind: str) -> None:
    headers = bearer(bad_token(kind, system))
    response = await call(system.consumer, CONSUMER_ROUTES[route], system, headers, system.user)
    assert_unauthorized(response)


@pytest.mark.parametrize("route", PRODUCER_ROUTES)
async def test_producer_http_control_accepts_a_valid_token(system: System, route: str) -> None:
    member = system.registered()
    if route == "remove_conversation_member":  # remove someone added for this test only
        add = PRODUCER_ROUTES["add_conversation_member"]
        async with httpx.AsyncClient(base_url=f"http://{system.producer}") as http:
            added = await http.post(
                add.path.format(group=system.group),
                json={"user_id": str(member)},
                headers=system.headers,
            )
        assert added.status_code == 204, added.text
    response = await call(system.producer, PRODUCER_ROUTES[route], system, system.headers, member)
    assert response.status_code == PRODUCER_ROUTES[route].status, response.text


@pytest.mark.parametrize("route", CONSUMER_ROUTES)
async def test_consumer_http_control_accepts_a_valid_token(system: System, route: str) -> None:
    response = await call(
        system.consumer, CONSUMER_ROUTES[route], system, system.headers, system.user
    )
    assert response.status_code == CONSUMER_ROUTES[route].status, response.text


# -- the matrix covers every authenticated route and frame type ------------------------------


async def operations_refusing_anonymous_calls(base: str, app: FastAPI) -> set[str]:
    """The operation ids of `app`'s OpenAPI document answering 401 to a call without a token
    (path parameters filled with a random id)."""
    refused = set()
    async with httpx.AsyncClient(base_url=f"http://{base}", trust_env=False) as http:
        for path, operations in app.openapi()["paths"].items():
            concrete = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
            for method, operation in operations.items():
                response = await http.request(method.upper(), concrete)
                if response.status_code == 401:
                    refused.add(operation["operationId"])
    return refused


async def test_the_matrix_covers_every_authenticated_route_and_frame(system: System) -> None:
    producer = await operations_refusing_anonymous_calls(system.producer, system.producer_app)
    consumer = await operations_refusing_anonymous_calls(system.consumer, system.consumer_app)
    assert producer == set(PRODUCER_ROUTES)
    assert consumer == set(CONSUMER_ROUTES)
    assert set(producer_ws.FRAME_TYPES) == {*PRODUCER_ACTIONS, "auth"}
    assert set(consumer_ws.FRAME_TYPES) == {*CONSUMER_ACTIONS, "auth"}
