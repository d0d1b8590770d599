"""`rtm.client.connection.Connection` against scripted WebSocket servers on free ports.

Each server runs one script per accepted socket (the first socket gets the first script...), so
a test says what the server does and checks what the SDK does next: reconnect where, with which
token, or stop for good (docs/protocol.md, "8. WebSocket close codes").
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import ServerConnection, serve

from rtm.client import Backoff, ConnectionState, RtmError, Timing
from rtm.client.connection import Connection

Script = Callable[[ServerConnection], Awaitable[None]]
FAST = Timing(ping_interval_s=0.2, pong_timeout_s=0.2, handshake_timeout_s=0.5)
NO_WAIT = Backoff(base_s=0.01, cap_s=0.02)


@dataclass
class ScriptedServer:
    scripts: list[Script]
    url: str = ""
    auth_tokens: list[str] = field(default_factory=list)

    async def handle(self, socket: ServerConnection) -> None:
        index = len(self.auth_tokens)
        first = json.loads(await socket.recv())
        assert first["type"] == "auth"
        self.auth_tokens.append(first["token"])
        script = self.scripts[min(index, len(self.scripts) - 1)]
        await script(socket)


@asynccontextmanager
async def running(*scripts: Script) -> AsyncIterator[ScriptedServer]:
    server = ScriptedServer(list(scripts))
    async with serve(server.handle, "127.0.0.1", 0) as listening:
        port = listening.sockets[0].getsockname()[1]
        server.url = f"ws://127.0.0.1:{port}/v1/ws"
        yield server


def ready_then(then: Script) -> Script:
    async def script(socket: ServerConnection) -> None:
        await socket.send(json.dumps({"type": "ready", "user_id": "u"}))
        await then(socket)

    return script


def close_with(code: int) -> Script:
    async def script(socket: ServerConnection) -> None:
        await socket.close(code, "scripted")

    return script


async def stay_open(socket: ServerConnection) -> None:
    async for raw in socket:
        if json.loads(raw)["type"] == "ping":
            await socket.send(json.dumps({"type": "pong"}))


async def silent(socket: ServerConnection) -> None:
    """Answer nothing (a frozen server) until the client drops the socket."""
    await socket.wait_closed()


class Harness:
    """A consumer-like Connection recording its states, the frames and refreshes."""

    def __init__(
        self, urls: list[str], refresh_fails: bool = False, backoff: Backoff = NO_WAIT
    ) -> None:
        self.states: list[tuple[ConnectionState, int | None]] = []
        self.frames: list[dict[str, Any]] = []
        self.opened = 0
        self.downs = 0
        self.token = "token-1"
        self.refreshes = 0
        self._refresh_fails = refresh_fails
        self.connection = Connection(
            "consumer",
            urls,
            ready_type="ready",
            token=self._token,
            refresh=self._refresh,
            on_frame=self._on_frame,
            on_open=self._on_open,
            on_down=self._on_down,
            on_state=lambda state, code, _reason: self.states.append((state, code)),
            backoff=backoff,
            timing=FAST,
        )

    def _on_frame(self, frame: dict[str, Any]) -> None:
        if frame["type"] == "message":
            int(frame["seq"])  # what the client's handler reads: a KeyError when it is missing
        self.frames.append(frame)

    async def _token(self) -> str:
        return self.token

    async def _refresh(self) -> str:
        self.refreshes += 1
        if self._refresh_fails:
            raise RtmError("session_ended", "refused")
        self.token = f"token-{self.refreshes + 1}"
        return self.token

    async def _on_open(self) -> None:
        self.opened += 1

    def _on_down(self) -> None:
        self.downs += 1

    async def until(self, check: Callable[[], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not check():  # noqa: ASYNC110 (polls what the callbacks record)
                await asyncio.sleep(0.01)


async def test_a_server_restart_1012_reconnects_to_the_next_instance() -> None:
    async with (
        running(ready_then(close_with(1012))) as first,
        running(ready_then(stay_open)) as second,
    ):
        harness = Harness([first.url, second.url])
        harness.connection.start()
        await harness.until(lambda: harness.opened == 2)
        assert (len(first.auth_tokens), len(second.auth_tokens)) == (1, 1)
        assert harness.downs == 1
        assert [s for s, _ in harness.states] == [
            ConnectionState.CONNECTING,
            ConnectionState.OPEN,
            ConnectionState.RECONNECTING,
            ConnectionState.OPEN,
        ]
        await harness.connection.close()


async def test_a_revoked_session_4503_is_final() -> None:
    async with running(ready_then(close_with(4503))) as server:
        harness = Harness([server.url])
        harness.connection.start()
        await harness.until(lambda: harness.connection.state is ConnectionState.FAILED)
        await asyncio.sleep(0.2)
        assert len(server.auth_tokens) == 1, "no reconnect after 4503"
        assert harness.states[-1] == (ConnectionState.FAILED, 4503)


async def test_an_expired_token_4505_is_refreshed_before_reconnecting() -> None:
    async with running(close_with(4505), ready_then(stay_open)) as server:
        harness = Harness([server.url])
        harness.connection.start()
        await harness.until(lambda: harness.opened == 1)
        assert server.auth_tokens == ["token-1", "token-2"]
        await harness.connection.close()


async def test_an_invalid_token_4500_is_final_without_a_refresh() -> None:
    """Issue 14: never reconnect after 4500 (a refreshed token is no answer to a token the
    server cannot verify); the state is failed with the code, as after 4503/4504."""
    async with running(ready_then(close_with(4500))) as server:
        harness = Harness([server.url])
        harness.connection.start()
        await harness.until(lambda: harness.connection.state is ConnectionState.FAILED)
        await asyncio.sleep(0.2)
        assert server.auth_tokens == ["token-1"], "no reconnect after 4500"
        assert harness.refreshes == 0
        assert harness.states[-1] == (ConnectionState.FAILED, 4500)


async def test_a_4505_again_right_after_the_refresh_backs_off() -> None:
    """A server that answers every token 4505 (a clock far off, a key rotation) must not get a
    tight refresh/connect loop: the reconnects after the refresh wait as the backoff says."""
    async with running(close_with(4505)) as server:
        harness = Harness([server.url], backoff=Backoff(base_s=0.2, cap_s=0.2))
        harness.connection.start()
        await asyncio.sleep(1.0)
        await harness.connection.close()
        assert harness.refreshes >= 1
        assert len(server.auth_tokens) <= 30, f"{len(server.auth_tokens)} sockets in 1 s"


async def test_a_refused_refresh_ends_the_connection() -> None:
    async with running(close_with(4505)) as server:
        harness = Harness([server.url], refresh_fails=True)
        harness.connection.start()
        await harness.until(lambda: harness.connection.state is ConnectionState.FAILED)
        assert len(server.auth_tokens) == 1


async def test_a_silent_socket_is_pinged_then_replaced() -> None:
    """No frame for ping_interval, a ping, still nothing within pong_timeout: a new socket."""
    async with running(ready_then(silent), ready_then(stay_open)) as server:
        harness = Harness([server.url])
        harness.connection.start()
        await harness.until(lambda: harness.opened == 2, timeout=3)
        assert (ConnectionState.RECONNECTING, 1006) in harness.states
        await asyncio.sleep(0.5)  # the second server answers pings: it is kept
        assert harness.opened == 2
        await harness.connection.close()


async def test_a_server_that_never_says_ready_is_replaced() -> None:
    async with running(silent, ready_then(stay_open)) as server:
        harness = Harness([server.url])
        harness.connection.start()
        await harness.until(lambda: harness.opened == 1, timeout=3)
        assert len(server.auth_tokens) == 2
        await harness.connection.close()


async def test_nothing_listening_is_retried_with_backoff_until_closed() -> None:
    async with running(silent) as server:
        url = server.url
    harness = Harness([url])
    harness.connection.start()
    await harness.until(lambda: harness.connection.state is ConnectionState.RECONNECTING)
    await harness.connection.close()
    assert harness.connection.state is ConnectionState.CLOSED


async def test_a_malformed_frame_is_skipped_and_the_socket_kept() -> None:
    async def malformed_then_fine(socket: ServerConnection) -> None:
        await socket.send(json.dumps({"type": "message", "body": "no seq"}))
        await socket.send(json.dumps({"type": "message", "seq": 1}))
        await stay_open(socket)

    async with running(ready_then(malformed_then_fine)) as server:
        harness = Harness([server.url])
        harness.connection.start()
        await harness.until(lambda: any(f.get("seq") == 1 for f in harness.frames))
        assert len(server.auth_tokens) == 1
        assert harness.connection.state is ConnectionState.OPEN
        await harness.connection.close()
