"""The FastAPI base every HTTP service builds on.

It gives each service the same operational surface (docs/protocol.md, "2. Services and ports"):
`/health`, `/health/live`, `/health/ready`, `/metrics`, Swagger UI at `/v1/swagger` served from
local assets (works offline), the OpenAPI document at `/v1/openapi.json`, CORS for
`allowed_origins`, one error envelope `{"error": {"code", "message", "field"?}}` for every failure,
including FastAPI's own validation errors and unparseable JSON, and a correlation id per request:
the client's `X-Request-Id` when it is a sane token, else a fresh one, echoed in the response's
`X-Request-Id`, logged as `cid` on every line logged while the request is handled, and named by an
internal error's message.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBearer
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rtm.shared.errors import ErrorCode, RtmError, http_status
from rtm.shared.frames import parse_json
from rtm.shared.health import Readiness
from rtm.shared.logging import correlation_id, log_context
from rtm.shared.settings import CommonSettings

logger = logging.getLogger(__name__)

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[Any]] | None

REQUEST_ID_HEADER = "X-Request-Id"
# Where the request's id is kept in the ASGI scope, for the internal-error handler: Starlette runs
# it outside every middleware, after `RequestIdMiddleware` has left the request.
_SCOPE_KEY = "rtm.request_id"


class RequestIdMiddleware:
    """Gives each HTTP request its correlation id (see the module docstring). WebSockets pass
    through: their handlers set a per-connection id
    (`rtm.shared.ws.bind_connection_log_context`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = correlation_id(Headers(scope=scope).get(REQUEST_ID_HEADER))
        scope[_SCOPE_KEY] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        with log_context(cid=request_id):
            await self.app(scope, receive, send_with_id)


def request_id(request: Request) -> str:
    """The correlation id of `request` (a fresh one outside `RequestIdMiddleware`)."""
    found = request.scope.get(_SCOPE_KEY)
    if not isinstance(found, str):
        found = request.scope[_SCOPE_KEY] = correlation_id(None)
    return found


ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "enum": [code.value for code in ErrorCode]},
                "message": {"type": "string"},
                "field": {"type": "string"},
                "retry_after_ms": {"type": "integer"},
            },
            "required": ["code", "message"],
        }
    },
    "required": ["error"],
}


async def check_json_body(request: Request, max_bytes: int) -> None:
    """Hold HTTP bodies to the WebSocket's JSON rules before FastAPI parses them: duplicate keys
    and NaN/Infinity are refused (FastAPI's parser accepts them), nesting bombs are `invalid_json`,
    and bodies larger than a frame are refused (docs/protocol.md, "7. Error codes")."""
    body = await request.body()  # cached: FastAPI reads the same bytes afterwards
    if len(body) > max_bytes:
        raise RtmError(
            ErrorCode.VALIDATION_FAILED, f"request body larger than {max_bytes} bytes", field="body"
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RtmError(ErrorCode.INVALID_JSON, "body is not valid UTF-8") from exc
    if text.strip():  # no body at all is FastAPI's: 401 without a token, else 422 `body`
        parse_json(text)


class RequestBody(BaseModel):
    """Base of every HTTP request body. A field the model does not know is refused (422
    `validation_failed`, `field` naming it), not dropped: a misspelt optional field would
    otherwise be ignored without the client ever learning why it had no effect. (WebSocket
    frames stay lenient: protocol.md lets newer clients send fields older servers ignore.)"""

    model_config = ConfigDict(extra="forbid")


def error_response(error: RtmError) -> JSONResponse:
    headers = {}
    if error.retry_after_ms is not None:
        headers["Retry-After"] = str(max(1, -(-error.retry_after_ms // 1000)))
    return JSONResponse(
        {"error": error.to_wire()}, status_code=http_status(error.code), headers=headers
    )


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting our error envelope for the given statuses."""
    return {
        code: {"description": "error", "content": {"application/json": {"schema": ERROR_SCHEMA}}}
        for code in codes
    }


def _field_of(loc: Sequence[Any]) -> str:
    parts = [str(part) for part in loc if part not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


async def _on_rtm_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RtmError)
    return error_response(exc)


async def _on_validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {"loc": ("body",), "msg": "invalid", "type": "invalid"}
    if first.get("type") == "json_invalid":
        return error_response(RtmError(ErrorCode.INVALID_JSON, "body is not valid JSON"))
    if first.get("type") == "model_attributes_type" or (
        first.get("type") in ("dict_type", "model_type")
        and tuple(first.get("loc", ())) == ("body",)
    ):
        return error_response(RtmError(ErrorCode.INVALID_MESSAGE, "body must be a JSON object"))
    field = _field_of(first.get("loc", ()))
    return error_response(
        RtmError(
            ErrorCode.VALIDATION_FAILED, f"{field}: {first.get('msg', 'invalid')}", field=field
        )
    )


async def _on_http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = {
        401: ErrorCode.UNAUTHORIZED,
        403: ErrorCode.FORBIDDEN,
        404: ErrorCode.NOT_FOUND,
        405: ErrorCode.INVALID_MESSAGE,
        429: ErrorCode.RATE_LIMITED,
        503: ErrorCode.UNAVAILABLE,
    }.get(exc.status_code, ErrorCode.INVALID_MESSAGE)
    body = {"error": {"code": code.value, "message": str(exc.detail)}}
    return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    correlation = request_id(request)
    logger.exception(
        "unhandled error on %s %s", request.method, request.url.path, extra={"cid": correlation}
    )
    response = error_response(
        RtmError(ErrorCode.INTERNAL, f"internal error; correlation id {correlation}")
    )
    response.headers[REQUEST_ID_HEADER] = correlation
    return response


def bearer_scheme(description: str) -> HTTPBearer:
    """The OpenAPI `http`/`bearer` (JWT) scheme of a service's protected routes.

    One definition for auth, producer and consumer, so that each document names the same
    scheme and Swagger UI's "Authorize" / "Try it out" sends the token on every protected
    route. `auto_error=False`: a missing or malformed header is the service's own 401
    `unauthorized`, not FastAPI's 403.
    """
    return HTTPBearer(bearerFormat="JWT", auto_error=False, description=description)


def create_http_app(
    *,
    title: str,
    version: str,
    description: str,
    settings: CommonSettings,
    readiness: Readiness,
    lifespan: Lifespan = None,
) -> FastAPI:
    """A FastAPI app with the operational routes, docs, CORS and error handling in place."""
    app = FastAPIOffline(
        title=title,
        version=version,
        description=description,
        docs_url="/v1/swagger",
        redoc_url=None,
        openapi_url="/v1/openapi.json",
        # Swagger UI keeps the token given to "Authorize" across page reloads.
        swagger_ui_parameters={"persistAuthorization": True},
        lifespan=lifespan,
    )
    origins = settings.allowed_origins
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_credentials="*" not in origins,
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=[REQUEST_ID_HEADER],
    )
    app.add_middleware(RequestIdMiddleware)  # added last: outermost, so CORS answers carry it
    app.add_exception_handler(RtmError, _on_rtm_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)
    app.state.readiness = readiness

    @app.get("/health", tags=["health"], operation_id="health")
    async def health() -> dict[str, str]:
        """Liveness in its simplest form: the process answers."""
        return {"status": "ok"}

    @app.get("/health/live", tags=["health"], operation_id="health_live")
    async def health_live() -> dict[str, str]:
        """The process serves requests (restart it if this fails)."""
        return {"status": "ok"}

    @app.get(
        "/health/ready",
        tags=["health"],
        operation_id="health_ready",
        responses={503: {"description": "not ready: each failing dependency with its reason"}},
    )
    async def health_ready() -> Response:
        """Ready to take traffic: every dependency answers. 503 names what fails."""
        failing = await readiness.failures()
        if failing:
            return Response(
                orjson.dumps({"status": "unavailable", "failing": failing}),
                status_code=503,
                media_type="application/json",
            )
        return Response(orjson.dumps({"status": "ok"}), media_type="application/json")

    @app.get("/metrics", tags=["health"], operation_id="metrics", response_class=Response)
    async def metrics() -> Response:
        """Prometheus text exposition of this process's metrics."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


async def no_lifespan(_: FastAPI) -> AsyncIterator[None]:
    """Placeholder lifespan for apps built in tests without background resources."""
    yield
