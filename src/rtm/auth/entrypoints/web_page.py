"""The web chat page (clients/web) on auth's HTTP front, at `/chat/`.

Auth's HTTP front is already the browsers' entry (sign-up, login, refresh), so it serves the
built page too: no extra process or port for `rtm up`, and the page's calls to auth are
same-origin. The page learns where the producer and consumers are from `/chat/config.json`
(`RTM_AUTH_WEB_PRODUCER_URLS`, `RTM_AUTH_WEB_CONSUMER_URLS`, which `rtm up` sets); they are other
origins, allowed by `RTM_ALLOWED_ORIGINS` (CORS and WebSocket Origin, `*` by default).

Nothing is served unless `RTM_AUTH_WEB_DIR` is set (a deployment serves its own front end). When
it is set but the page is not built, `/chat/` answers 404 saying how to build it, so `rtm up` on a
machine without node still runs everything else. The routes are not in the OpenAPI document:
they are not the API.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from rtm.auth.settings import AuthSettings

PREFIX = "/chat"
BUILD_HINT = "the web chat page is not built: run `make web` (node >= 20 and npm), then reload"


def page_built(web_dir: Path) -> bool:
    """Whether `web_dir` holds a built page (`npm run build` writes index.html last)."""
    return (web_dir / "index.html").is_file()


def content_security_policy(settings: AuthSettings) -> str:
    """Scripts, styles and images from the page's own origin only; connections to auth (same
    origin) and to the producer and consumer instances, over HTTP and WebSocket."""
    sources = ["'self'"]
    for base in [*settings.web_producer_urls, *settings.web_consumer_urls]:
        parts = urlsplit(base)
        websocket = "wss" if parts.scheme == "https" else "ws"
        sources += [f"{parts.scheme}://{parts.netloc}", f"{websocket}://{parts.netloc}"]
    return (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        f"frame-ancestors 'none'; connect-src {' '.join(dict.fromkeys(sources))}"
    )


class _PageFiles:
    """The built files, never cached without revalidation (a rebuilt page shows on reload),
    with the page's Content-Security-Policy; 404 with `BUILD_HINT` while there is no build."""

    def __init__(self, web_dir: Path, policy: str) -> None:
        self._web_dir = web_dir
        self._files = StaticFiles(directory=web_dir, html=True, check_dir=False)
        self._policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not page_built(self._web_dir):
            await PlainTextResponse(BUILD_HINT, status_code=404)(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    *message.get("headers", []),
                    (b"cache-control", b"no-cache"),
                    (b"content-security-policy", self._policy.encode()),
                    (b"x-content-type-options", b"nosniff"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self._files(scope, receive, send_with_headers)


def add_web_page(app: FastAPI, settings: AuthSettings) -> None:
    """Serve the chat page at `/chat/` and its `/chat/config.json` when `web_dir` is set."""
    if settings.web_dir is None:
        return
    config = {
        "producerUrls": settings.web_producer_urls,
        "consumerUrls": settings.web_consumer_urls,
    }

    async def page_config() -> Response:
        """Where the page finds the producer and consumers (auth is the page's own origin)."""
        return JSONResponse(config, headers={"Cache-Control": "no-cache"})

    async def to_page() -> Response:
        return RedirectResponse(f"{PREFIX}/")

    app.add_api_route(f"{PREFIX}/config.json", page_config, include_in_schema=False)
    app.add_api_route(PREFIX, to_page, include_in_schema=False)
    app.mount(PREFIX, _PageFiles(settings.web_dir, content_security_policy(settings)))
