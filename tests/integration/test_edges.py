"""The edge limits of every HTTP/WebSocket port (rtm.shared.serving), over real sockets.

One server per test, uvicorn with `uvicorn_edge_options` (what auth, producer and consumer pass)
on 127.0.0.1, with short timeouts so the tests stay fast. The per-address cap is tested with
loopback taken off the exempt list (it is exempt by default).
"""

from __future__ import annotations

import asyncio
import io
import logging
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
import picows
import pytest
import websockets
from fastapi import WebSocket
from prometheus_client import REGISTRY

from rtm.shared.health import Readiness
from rtm.shared.http import create_http_app
from rtm.shared.logging import setup_logging
from rtm.shared.picows_server import PicowsSocket, picows_protocol
from rtm.shared.serving import uvicorn_edge_options
from rtm.shared.settings import CommonSettings
from tests.support.asgi import running

TIMEOUT_S = 0.5


def edge_settings(**values: Any) -> CommonSettings:
    base: dict[str, Any] = {
        "http_header_timeout_s": TIMEOUT_S,
        "http_keep_alive_s": TIMEOUT_S,
        "migrate_on_start": False,
    }
    return CommonSettings(**(base | values))


async def picows_echo(socket: PicowsSocket) -> None:
    while True:
        await socket.send_text(await socket.receive_text())


def picows_ws_protocol(app: Any, settings: CommonSettings) -> type:
    """The consumer's WebSocket stack: picows inside uvicorn (rtm.shared.picows_server)."""

    def route(request: picows.WSUpgradeRequest) -> PicowsSocket:
        return PicowsSocket(request, picows_echo, app=app, max_message_bytes=1024)

    return picows_protocol(
        route,
        max_frame_bytes=1024,
        ping_interval=settings.ws_ping_interval_s,
        ping_timeout=settings.ws_ping_timeout_s,
    )


@asynccontextmanager
async def edge_server(settings: CommonSettings, *, picows_ws: bool = False) -> AsyncIterator[int]:
    """A service-like app (health routes, a WebSocket echo) served as the services serve."""
    app = create_http_app(
        title="edge", version="1", description="", settings=settings, readiness=Readiness()
    )

    @app.websocket("/v1/ws")
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        while True:
            await websocket.send_text(await websocket.receive_text())

    async with running(
        app,
        ws=picows_ws_protocol(app, settings) if picows_ws else "websockets-sansio",
        lifespan="off",
        timeout_graceful_shutdown=1,
        **uvicorn_edge_options(settings),
    ) as address:
        yield int(address.rsplit(":", 1)[1])


async def closed_after(reader: asyncio.StreamReader, limit_s: float) -> float:
    """Seconds until the server closes the connection (EOF or reset); fails past `limit_s`."""
    started = time.monotonic()
    try:
        data = await asyncio.wait_for(reader.read(), limit_s)
    except ConnectionResetError:
        data = b""
    assert data == b"", data
    return time.monotonic() - started


def closed_metric(reason: str) -> float:
    value = REGISTRY.get_sample_value("rtm_edge_connections_closed_total", {"reason": reason})
    return value or 0.0


async def test_an_idle_connection_is_closed_after_the_header_timeout() -> None:
    async with edge_server(edge_settings()) as port:
        before = closed_metric("header_timeout")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        elapsed = await closed_after(reader, 5)
        writer.close()
    assert TIMEOUT_S * 0.8 <= elapsed < TIMEOUT_S + 1
    assert closed_metric("header_timeout") == before + 1


async def test_headers_sent_a_byte_at_a_time_are_cut_off_at_the_header_timeout() -> None:
    async with edge_server(edge_settings()) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.monotonic()
        request = b"GET /health HTTP/1.1\r\nhost: x\r\nx-padding: " + b"a" * 100
        closed = False
        for byte in request:  # each byte would re-arm a timer that data resets
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                closed = True
                break
            if reader.at_eof() or writer.is_closing():
                closed = True
                break
            await asyncio.sleep(TIMEOUT_S / 5)
            if reader.at_eof():
                closed = True
                break
        elapsed = time.monotonic() - started
        writer.close()
    assert closed
    assert elapsed < TIMEOUT_S + 1


async def test_a_slow_second_request_on_a_kept_alive_connection_is_cut_off_too() -> None:
    async with edge_server(edge_settings()) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        await reader.readexactly(len(b'{"status":"ok"}'))
        started = time.monotonic()
        for byte in b"GET /health HTTP/1.1\r\n":  # data cancels uvicorn's keep-alive timer
            if reader.at_eof():
                break
            writer.write(bytes([byte]))
            await asyncio.sleep(TIMEOUT_S / 5)
        elapsed = await closed_after(reader, 5) + (time.monotonic() - started)
        writer.close()
    assert elapsed < 2 * TIMEOUT_S + 1.5


async def test_a_prompt_client_is_served_and_kept_alive_within_the_limits() -> None:
    async with edge_server(edge_settings()) as port, httpx.AsyncClient() as client:
        for _ in range(3):
            response = await client.get(f"http://127.0.0.1:{port}/health")
            assert response.status_code == 200
            await asyncio.sleep(TIMEOUT_S / 3)


@pytest.mark.parametrize("on_picows", [False, True], ids=["websockets", "picows"])
async def test_a_quiet_websocket_that_answers_pings_stays_open(on_picows: bool) -> None:
    settings = edge_settings(ws_ping_interval_s=0.3, ws_ping_timeout_s=0.2)
    async with (
        edge_server(settings, picows_ws=on_picows) as port,
        websockets.connect(f"ws://127.0.0.1:{port}/v1/ws") as ws,
    ):
        await asyncio.sleep(3 * TIMEOUT_S)  # past the HTTP header and keep-alive timeouts
        await ws.send("still here")
        assert await ws.recv() == "still here"


@pytest.mark.parametrize("on_picows", [False, True], ids=["websockets", "picows"])
async def test_a_websocket_whose_peer_stops_answering_pings_is_closed(on_picows: bool) -> None:
    settings = edge_settings(ws_ping_interval_s=0.3, ws_ping_timeout_s=0.2)
    async with edge_server(settings, picows_ws=on_picows) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"GET /v1/ws HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
            b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n"
        )
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
        started = time.monotonic()
        while True:  # read the pings, never answer them
            chunk = await asyncio.wait_for(reader.read(1024), 5)
            if not chunk:
                break
        writer.close()
    assert time.monotonic() - started < 0.3 + 0.2 + 1


@pytest.fixture
def capped() -> CommonSettings:
    return edge_settings(max_connections_per_address=3, connection_cap_exempt="10.255.255.0/24")


async def test_connections_over_the_per_address_cap_are_answered_429(
    capped: CommonSettings,
) -> None:
    async with edge_server(capped) as port, httpx.AsyncClient() as other:
        before = closed_metric("per_address_cap")
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 2)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 429")
        assert b"retry-after: 1" in head.lower()
        error = orjson.loads(body)["error"]
        assert error["code"] == "rate_limited"
        assert error["retry_after_ms"] == 1000
        assert closed_metric("per_address_cap") == before + 1
        writer.close()
        for _, held_writer in held:
            held_writer.close()
        await asyncio.sleep(0.1)
        # the slots are free again once those connections are closed
        response = await other.get(f"http://127.0.0.1:{port}/health")
        assert response.status_code == 200


async def test_a_websocket_upgrade_over_the_cap_gets_the_same_answer(
    capped: CommonSettings,
) -> None:
    async with edge_server(capped) as port:
        sockets = [
            await websockets.connect(f"ws://127.0.0.1:{port}/v1/ws") for _ in range(3)
        ]  # upgraded WebSockets count too
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(f"ws://127.0.0.1:{port}/v1/ws")
        assert refused.value.response.status_code == 429
        assert orjson.loads(refused.value.response.body)["error"]["code"] == "rate_limited"
        await sockets[0].close()
        await asyncio.sleep(0.1)
        async with websockets.connect(f"ws://127.0.0.1:{port}/v1/ws") as again:
            await again.send("in")
            assert await again.recv() == "in"
        for ws in sockets[1:]:
            await ws.close()


async def test_loopback_is_exempt_from_the_cap_by_default() -> None:
    async with edge_server(edge_settings(max_connections_per_address=2)) as port:
        held = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://127.0.0.1:{port}/health")).status_code == 200
        for sock in held:
            sock.close()


async def test_a_token_in_a_websocket_url_never_reaches_the_log() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    setup_logging("edge", "DEBUG", "json")  # uvicorn logs each connection at DEBUG
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    output = io.StringIO()
    handler.setStream(output)
    try:
        async with edge_server(edge_settings()) as port:
            url = f"ws://127.0.0.1:{port}/v1/ws?token=SECRET-TOKEN&x=1"
            async with websockets.connect(url) as ws:
                await ws.send("hi")
                assert await ws.recv() == "hi"
            async with httpx.AsyncClient() as client:
                await client.get(f"http://127.0.0.1:{port}/nowhere?token=SECRET-TOKEN")
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    logged = output.getvalue()
    assert "/v1/ws?token=***&x=***" in logged  # the line is there, the token is not
    assert "SECRET-TOKEN" not in logged
