"""`create_app`: auth's HTTP front under any ASGI server, its lifespan running the rest."""

from __future__ import annotations

import asyncio

import httpx

from rtm.auth.bootstrap import create_app
from tests.integration.auth.conftest import make_settings
from tests.support.asgi import running


async def test_the_apps_lifespan_connects_postgres_and_loads_the_signing_keys(db_url: str) -> None:
    """Served by a plain uvicorn (lifespan on), the app answers JWKS once its keys are loaded."""
    async with (
        running(create_app(make_settings(db_url))) as address,
        httpx.AsyncClient(base_url=f"http://{address}") as http,
    ):
        for _ in range(200):
            response = await http.get("/.well-known/jwks.json")
            if response.status_code == 200:
                break
            assert response.status_code == 503  # not loaded yet
            await asyncio.sleep(0.05)
        assert response.status_code == 200
        assert response.json()["keys"]
