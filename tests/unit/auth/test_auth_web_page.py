"""The web chat page on auth's HTTP front (`rtm.auth.entrypoints.web_page`): served only when
`RTM_AUTH_WEB_DIR` is set, with where the page finds the producer and consumers, a build hint
while it is not built, and a Content-Security-Policy allowing exactly the services it talks to."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import FastAPI

from rtm.auth.entrypoints.web_page import BUILD_HINT, add_web_page
from rtm.auth.settings import AuthSettings

PRODUCERS = ["http://127.0.0.1:8081"]
CONSUMERS = ["http://127.0.0.1:8082", "http://127.0.0.1:8083"]


def client(web_dir: Path | None) -> httpx.AsyncClient:
    settings = AuthSettings(
        env="dev",
        web_dir=web_dir,
        web_producer_urls=",".join(PRODUCERS),  # as `rtm up` sets them: comma lists
        web_consumer_urls=",".join(CONSUMERS),
    )
    app = FastAPI()
    add_web_page(app, settings)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://rtm")


def built(folder: Path) -> Path:
    (folder / "index.html").write_text("<!doctype html><title>rtm chat</title>")
    (folder / "app.js").write_text("console.log('rtm')")
    return folder


async def test_nothing_is_served_without_a_web_dir() -> None:
    """A deployment serves its own front end: auth alone has no /chat/."""
    async with client(None) as http:
        assert (await http.get("/chat/")).status_code == 404
        assert (await http.get("/chat/config.json")).status_code == 404


async def test_the_page_learns_where_the_producers_and_consumers_are(tmp_path: Path) -> None:
    async with client(built(tmp_path)) as http:
        answer = await http.get("/chat/config.json")
    assert answer.status_code == 200
    assert answer.json() == {"producerUrls": PRODUCERS, "consumerUrls": CONSUMERS}


async def test_the_built_page_is_served_with_its_policy(tmp_path: Path) -> None:
    """Files revalidated on every load (a rebuilt page shows on reload); connections only to
    the page's origin and the services, over HTTP and WebSocket."""
    async with client(built(tmp_path)) as http:
        page = await http.get("/chat/")
        script = await http.get("/chat/app.js")
        moved = await http.get("/chat", follow_redirects=False)
    assert page.status_code == 200
    assert "rtm chat" in page.text
    assert page.headers["cache-control"] == "no-cache"
    policy = page.headers["content-security-policy"]
    connect = next(p for p in policy.split("; ") if p.startswith("connect-src")).split()[1:]
    assert connect == [
        "'self'",
        "http://127.0.0.1:8081",
        "ws://127.0.0.1:8081",
        "http://127.0.0.1:8082",
        "ws://127.0.0.1:8082",
        "http://127.0.0.1:8083",
        "ws://127.0.0.1:8083",
    ]
    assert "default-src 'self'" in policy
    assert script.text == "console.log('rtm')"
    assert moved.headers["location"] == "/chat/"


async def test_a_page_not_built_says_how_to_build_it(tmp_path: Path) -> None:
    """`rtm up` on a machine without node: everything runs, the page says `make web`."""
    async with client(tmp_path / "dist") as http:
        answer = await http.get("/chat/")
    assert answer.status_code == 404
    assert answer.text == BUILD_HINT
    assert "make web" in BUILD_HINT
