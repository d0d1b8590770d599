"""picows inside uvicorn (`rtm.shared.picows_server`): one port serves the HTTP API and `/v1/ws`.

A real uvicorn server (uvloop) with a small echo endpoint, driven by the `websockets` client: the
WebSocket rules the consumer relies on hold on this stack too.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator

import httpx
import picows
import pytest
import websockets
from fastapi import FastAPI
from websockets.exceptions import ConnectionClosed, InvalidStatus

from rtm.shared.picows_handover import Handover
from rtm.shared.picows_server import PicowsSocket, picows_protocol
from rtm.shared.serving import _EdgeProtocol, edge_http_protocol
from rtm.shared.settings import CommonSettings
from rtm.shared.ws import Outbox
from tests.support.asgi import running

MAX_FRAME = 1000


async def echo(socket: PicowsSocket) -> None:
    """Echo text, say "binary" for binary frames, "headers:<origin>,<x-test>" for "headers",
    and close with the code a frame "close <code>" asks for."""
    outbox = Outbox(socket, limit_bytes=10_000)
    while True:
        message = await socket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None:
            outbox.put("binary")
        elif text == "headers":
            outbox.put(f"headers:{socket.headers.get('origin')},{socket.headers.get('x-test')}")
        elif text.startswith("close "):
            await socket.close(int(text.split()[1]), "asked to")
            return
        elif text.startswith("flood "):
            for _ in range(int(text.split()[1])):
                if not outbox.put("x" * 900):
                    await socket.close(4008, "slow consumer")
                    return
        else:
            outbox.put(f"echo:{text}")


@pytest.fixture
async def base() -> AsyncIterator[str]:
    app = FastAPI()

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    def route(request: picows.WSUpgradeRequest) -> PicowsSocket | None:
        if request.path.split(b"?", 1)[0] != b"/v1/ws":
            return None
        return PicowsSocket(request, echo, app=app, max_message_bytes=MAX_FRAME)

    async with running(app, ws=picows_protocol(route, max_frame_bytes=MAX_FRAME)) as address:
        yield address


async def test_http_and_the_websocket_share_the_port(base: str) -> None:
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"http://{base}/hello")).json() == {"hello": "world"}
    async with websockets.connect(
        f"ws://{base}/v1/ws?token=x", additional_headers={"Origin": "http://a", "X-Test": "yes"}
    ) as ws:
        await ws.send("hi")
        assert await asyncio.wait_for(ws.recv(), 5) == "echo:hi"
        await ws.send("headers")
        # Only the headers the endpoints read are kept (any case), not the rest: memory.
        assert await asyncio.wait_for(ws.recv(), 5) == "headers:http://a,None"


async def test_other_paths_are_not_upgraded(base: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(f"ws://{base}/elsewhere"):
            pass
    assert refused.value.response.status_code == 404


async def test_fragmented_messages_are_reassembled_and_binary_is_reported(base: str) -> None:
    async with websockets.connect(f"ws://{base}/v1/ws") as ws:
        await ws.send(["one ", "two ", "three"])
        assert await asyncio.wait_for(ws.recv(), 5) == "echo:one two three"
        await ws.send(b"\x00\x01")
        assert await asyncio.wait_for(ws.recv(), 5) == "binary"


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ("x" * (MAX_FRAME + 1), 1009),  # one frame over the limit
        (["x" * 600, "x" * 600], 1009),  # fragments that add up to more than the limit
    ],
)
async def test_too_big_messages_close_1009(base: str, payload: str | list[str], code: int) -> None:
    async with websockets.connect(f"ws://{base}/v1/ws", max_size=None) as ws:
        await ws.send(payload)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == code


async def test_invalid_utf8_text_closes_1007(base: str) -> None:
    reader, writer = await asyncio.open_connection(*base.split(":"))
    host = base
    writer.write(
        f"GET /v1/ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    response = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert response.startswith(b"HTTP/1.1 101")
    mask = b"\x01\x02\x03\x04"
    payload = b"\xff\xfe"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    writer.write(bytes([0x81, 0x80 | len(payload)]) + mask + masked)  # a masked text frame
    frame = await asyncio.wait_for(reader.read(100), 5)
    writer.close()
    assert frame[0] == 0x88  # close
    assert int.from_bytes(frame[2:4], "big") == 1007


async def test_server_close_codes_reach_the_client(base: str) -> None:
    async with websockets.connect(f"ws://{base}/v1/ws") as ws:
        await ws.send("close 4505")
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4505, "asked to")


async def test_a_reader_that_stops_reading_overflows_its_outbox(base: str) -> None:
    """Writes are direct, so the limit is on the socket's own buffer: a client that reads
    nothing fills it and gets 4008 instead of the server buffering without end."""
    async with websockets.connect(f"ws://{base}/v1/ws", max_queue=1) as ws:
        ws.transport.pause_reading()  # stop reading at the TCP level
        await ws.send("flood 5000")  # 4.5 MB of frames against a 10 kB limit
        await asyncio.sleep(1)
        ws.transport.resume_reading()
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(drain(ws), 10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4008


async def drain(ws: websockets.ClientConnection) -> None:
    while True:
        await ws.recv()


async def test_a_client_close_is_answered_with_its_code(base: str) -> None:
    async with websockets.connect(f"ws://{base}/v1/ws") as ws:
        await ws.close(4000, "bye")
        assert ws.close_code == 4000


async def test_a_closed_connection_is_not_held_for_the_close_linger(base: str) -> None:
    """The timer that would abort a close the peer never answered goes when the connection
    does: it held the connection's transport and buffers for 30 s after every close."""

    def transports() -> set[int]:
        gc.collect()
        return {id(o) for o in gc.get_objects() if type(o) is picows.WSTransport}

    before = transports()  # other tests' (none expected, but not this test's business)
    async with websockets.connect(f"ws://{base}/v1/ws") as ws:
        await ws.send("close 4000")
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
    for _ in range(50):  # the server sees the end of the connection a moment after the client
        if not transports() - before:
            return
        await asyncio.sleep(0.1)
    pytest.fail("a closed connection's transport is still held")


async def test_an_upgraded_connection_leaves_no_http_protocol_behind(
    base_settings_app: str,
) -> None:
    """uvicorn's HTTP protocol of an upgraded connection is freed at once, not left as cyclic
    garbage for a full collection (which raised thresholds make rare): ~4 KB of an idle socket."""
    gc.collect()
    gc.disable()
    try:
        async with websockets.connect(f"ws://{base_settings_app}/v1/ws") as ws:
            await ws.send("hi")
            assert await asyncio.wait_for(ws.recv(), 5) == "echo:hi"
            # By type, not isinstance: `isinstance` of a weak proxy whose object is gone raises.
            alive = [type(o) for o in gc.get_objects()]
            assert [t for t in alive if issubclass(t, _EdgeProtocol)] == []
            handovers = [o for o in gc.get_objects() if issubclass(type(o), Handover)]
            assert all(o._inner is None for o in handovers)  # it drops what it held
    finally:
        gc.enable()


@pytest.fixture
async def base_settings_app() -> AsyncIterator[str]:
    """The `base` endpoint behind the services' edge HTTP protocol (`rtm.shared.serving`)."""
    app = FastAPI()

    def route(request: picows.WSUpgradeRequest) -> PicowsSocket | None:
        return PicowsSocket(request, echo, app=app, max_message_bytes=MAX_FRAME)

    async with running(
        app,
        ws=picows_protocol(route, max_frame_bytes=MAX_FRAME),
        http=edge_http_protocol(CommonSettings()),
    ) as address:
        yield address
