"""Serving a service's AsyncAPI document, and a page that renders it, with no CDN.

GET /v1/asyncapi.json          the document (`rtm.shared.asyncapi`), its server the host the
                               request reached, `wss` behind https
GET /v1/asyncapi               an HTML page rendering it with the standalone bundle of
                               `@asyncapi/react-component`
GET /v1/asyncapi/static/...    that bundle and its stylesheet, vendored in
                               `rtm/shared/static/asyncapi` (its README says which version;
                               `scripts/vendor_asyncapi.sh` fetches them again)

`ServiceDocument` is what the producer's and the consumer's `entrypoints/asyncapi.py` share: each
declares only its frames, its description (with its own settings' limits) and where its settings
are on a request; the document's shape and the routes are the same for both.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from rtm.shared.asyncapi import FrameDoc, asyncapi_document

SettingsT = TypeVar("SettingsT")

STATIC_DIR = Path(__file__).resolve().parent / "static" / "asyncapi"
STATIC_PATH = "/v1/asyncapi/static"
BUNDLE = "index.js"
STYLESHEET = "default.min.css"
_MAX_HOST = 255

# Paths are relative to /v1/asyncapi, so the page also works behind a proxy that adds a prefix.
_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}: WebSocket protocol (AsyncAPI)</title>
<link rel="stylesheet" href="asyncapi/static/{stylesheet}">
</head>
<body>
<div id="asyncapi"><noscript>This page needs JavaScript; the document itself is at
<a href="asyncapi.json">asyncapi.json</a>.</noscript></div>
<script src="asyncapi/static/{bundle}"></script>
<script>
AsyncApiStandalone.render(
  {{
    schema: {{ url: "asyncapi.json", requestOptions: {{ method: "GET" }} }},
    config: {{ show: {{ sidebar: true }} }},
  }},
  document.getElementById("asyncapi"),
);
</script>
</body>
</html>
"""


class DocumentSource(Protocol):
    """Builds a service's AsyncAPI document for a request (the service's settings are on
    `request.app`); `host` and `protocol` say where clients reach its WebSocket."""

    def __call__(self, request: Request, *, host: str, protocol: str) -> dict[str, Any]: ...


def reached_as(request: Request) -> tuple[str, str]:
    """`(host[:port], ws|wss)` of the WebSocket, as the client reached this request."""
    host = request.headers.get("host") or request.url.netloc or "localhost"
    protocol = "wss" if request.url.scheme in ("https", "wss") else "ws"
    return host[:_MAX_HOST], protocol


def render_page(title: str) -> str:
    """The HTML page that renders `asyncapi.json` with the vendored bundle."""
    return _PAGE.format(title=html.escape(title), stylesheet=STYLESHEET, bundle=BUNDLE)


def asyncapi_router(document: DocumentSource, *, title: str) -> APIRouter:
    """The routes of the module docstring, for one service."""
    router = APIRouter(tags=["docs"])
    page = render_page(title)

    @router.get(
        "/v1/asyncapi.json",
        operation_id="asyncapi",
        response_class=JSONResponse,
        responses={200: {"description": "an AsyncAPI 3.0.0 document"}},
    )
    async def asyncapi(request: Request) -> JSONResponse:
        """The AsyncAPI 3.0 document of this service's WebSocket `/v1/ws`: every frame a client
        may send or receive, generated from the models that validate them, with the close and
        error codes."""
        host, protocol = reached_as(request)
        return JSONResponse(document(request, host=host, protocol=protocol))

    @router.get("/v1/asyncapi", operation_id="asyncapi_page", response_class=HTMLResponse)
    async def asyncapi_page() -> HTMLResponse:
        """The AsyncAPI document rendered for people (works offline: no CDN)."""
        return HTMLResponse(page)

    static = StaticFiles(directory=STATIC_DIR, check_dir=False)
    router.mount(STATIC_PATH, static, name="asyncapi_static")
    return router


@dataclass(frozen=True, slots=True)
class ServiceDocument(Generic[SettingsT]):
    """One service's WebSocket protocol: `receives` (the frames clients send it), `sends` (the
    frames it sends them), and `describe`, the prose with the deployment's limits from its
    settings. It builds the AsyncAPI document and the routes that serve it."""

    title: str
    describe: Callable[[SettingsT], str]
    receives: Sequence[FrameDoc]
    sends: Sequence[FrameDoc]

    def document(
        self, settings: SettingsT, *, version: str, host: str, protocol: str = "ws"
    ) -> dict[str, Any]:
        """The service's AsyncAPI 3.0 document, its server `protocol://host`."""
        return asyncapi_document(
            title=f"{self.title} WebSocket",
            version=version,
            description=self.describe(settings),
            host=host,
            protocol=protocol,
            receives=self.receives,
            sends=self.sends,
        )

    def router(self, settings_of: Callable[[Request], SettingsT]) -> APIRouter:
        """The routes of the module docstring; `settings_of` finds the settings on a request."""

        def for_request(request: Request, *, host: str, protocol: str) -> dict[str, Any]:
            settings = settings_of(request)
            return self.document(
                settings, version=request.app.version, host=host, protocol=protocol
            )

        return asyncapi_router(for_request, title=self.title)
