"""A small rtm client for e2e tests: what an app would do, over HTTP and WebSocket."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import websockets

from rtm.local.plan import SystemUrls


@dataclass
class User:
    id: str
    username: str
    access_token: str
    refresh_token: str
    session_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


async def sign_up(urls: SystemUrls, name: str | None = None) -> User:
    """Register and log in a fresh user through auth's HTTP front."""
    username = name or f"u{uuid.uuid4().hex[:12]}"
    password = "correct horse battery staple"
    async with httpx.AsyncClient(base_url=urls.auth, trust_env=False, timeout=10) as client:
        created = await client.post(
            "/v1/auth/register", json={"username": username, "password": password}
        )
        assert created.status_code == 201, created.text
        login = await client.post(
            "/v1/auth/login", json={"username": username, "password": password}
        )
        assert login.status_code == 200, login.text
        body = login.json()
    return User(
        body["user"]["id"],
        username,
        body["access_token"],
        body["refresh_token"],
        body["session_id"],
    )


async def next_frame(
    ws: websockets.ClientConnection, kind: str, timeout: float = 10
) -> dict[str, Any]:
    """The next frame of type `kind`, skipping others (presence, typing...)."""
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if frame["type"] == kind:
            return dict(frame)


def ws_url(base: str) -> str:
    return SystemUrls.websocket(base) + "/v1/ws"
