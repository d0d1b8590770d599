"""HTTP JSON front of auth (docs/protocol.md, "3. Authentication") for browsers, on
`rtm.shared.http`'s base app.

The routes call the same services (`AuthContext`) as the gRPC servicer and count the same
outcomes; the `RtmError`s they raise become the protocol's error envelope in the shared app's
one handler (401, 404, 409, 422, 429 with `Retry-After`, 503). Route docstrings are the API
documentation at `/v1/swagger`, and each route lists every status it can answer (schemathesis
holds the document to it: tests/integration/auth/test_openapi_contract.py).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable

from fastapi import APIRouter, FastAPI, Query, Response, status
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from rtm.auth.domain.model import RevokeReason
from rtm.auth.entrypoints.deps import AuthContext, BearerHeader, Caller, Client, Context
from rtm.auth.entrypoints.metrics import (
    count_deletion,
    count_revocation,
    observe_login,
    observe_refresh,
    observe_registration,
)
from rtm.auth.entrypoints.schemas import (
    GrantOut,
    JwksOut,
    LoginBody,
    LogoutBody,
    RefreshBody,
    RegisterBody,
    SessionOut,
    SessionsOut,
    UserOut,
    UsersOut,
)
from rtm.auth.entrypoints.web_page import add_web_page
from rtm.auth.settings import AuthSettings
from rtm.shared.health import Readiness
from rtm.shared.http import Lifespan, create_http_app, error_responses

auth_router = APIRouter(prefix="/v1/auth", tags=["auth"])
jwks_router = APIRouter(tags=["keys"])

# Statuses beyond 2xx, per kind of route: 400 = a body that is not JSON (`invalid_json`) or not an
# object (`invalid_message`); 503 = PostgreSQL (or the signing key) not there now.
_BODY = (400, 422, 503)
_AUTHED = (401, 503)


@auth_router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    operation_id="register",
    responses=error_responses(*_BODY, 409, 429),
)
async def register(body: RegisterBody, context: Context, client: Client) -> UserOut:
    """Create an account. The username is stored normalised (NFKC + casefold)."""
    with observe_registration():
        user = await context.accounts.register(
            body.username, body.password, body.display_name, client
        )
    return UserOut.of(user)


@auth_router.post("/login", operation_id="login", responses=error_responses(*_BODY, 401, 429))
async def login(body: LoginBody, context: Context, client: Client) -> GrantOut:
    """Start a session. Unknown user and wrong password get the same 401. Repeated failures from
    one address (for one account, or for any) get 429 with `retry_after_ms`; an account failing
    from many addresses is only slowed down (by at most a few seconds), never locked."""
    with observe_login():
        grant = await context.logins.login(body.username, body.password, client)
    return GrantOut.of(grant)


@auth_router.post("/refresh", operation_id="refresh", responses=error_responses(*_BODY, 401))
async def refresh(body: RefreshBody, context: Context, client: Client) -> GrantOut:
    """Trade a refresh token for new tokens. The old refresh token is spent: presenting it again
    ends the whole session."""
    with observe_refresh():
        grant = await context.sessions.refresh(body.refresh_token, client)
    return GrantOut.of(grant)


@auth_router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="logout",
    responses=error_responses(*_BODY, 401),
)
async def logout(
    context: Context, credentials: BearerHeader, body: LogoutBody | None = None
) -> Response:
    """End the session of `refresh_token`, or else of the bearer token."""
    ended = await context.sessions.logout(
        refresh_token=body.refresh_token if body else None,
        access_token=credentials.credentials if credentials else None,
    )
    count_revocation(RevokeReason.LOGOUT, ended)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@auth_router.get("/me", operation_id="me", responses=error_responses(*_AUTHED))
async def me(context: Context, caller: Caller) -> UserOut:
    """The caller's account."""
    return UserOut.of(await context.accounts.get_user(caller, None))


@auth_router.delete(
    "/me",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="delete_me",
    responses=error_responses(*_AUTHED),
)
async def delete_me(context: Context, caller: Caller) -> Response:
    """Delete the caller's account for good: every session ends (sockets close with 4503 within
    seconds), logging in is refused like an unknown user, and the username stays taken."""
    count_deletion(await context.accounts.delete_user(caller.user_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@auth_router.get("/sessions", operation_id="list_sessions", responses=error_responses(*_AUTHED))
async def list_sessions(context: Context, caller: Caller) -> SessionsOut:
    """The caller's live sessions, newest first."""
    views = await context.sessions.list_sessions(caller)
    return SessionsOut(sessions=[SessionOut.of(view) for view in views])


@auth_router.delete(
    "/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="revoke_session",
    responses=error_responses(*_AUTHED, 404, 422),
)
async def revoke_session(session_id: uuid.UUID, context: Context, caller: Caller) -> Response:
    """End one of the caller's sessions; its sockets close with 4503 within seconds."""
    count_revocation(
        RevokeReason.REVOKED, await context.sessions.revoke_session(caller, session_id)
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _users_router(default_limit: int, max_limit: int) -> APIRouter:
    """Built per app: the `limit` bounds the document states are the configured ones."""
    router = APIRouter(prefix="/v1/users", tags=["users"])

    @router.get("", operation_id="search_users", responses=error_responses(*_AUTHED, 422))
    # Defaults, not Annotated: the annotations are strings that cannot see `max_limit`.
    async def search_users(
        context: Context,
        caller: Caller,
        q: str = Query(
            max_length=256,
            pattern=r"\S",
            description="username prefix (normalised like usernames; not blank)",
        ),
        limit: int | None = Query(None, ge=1, le=max_limit, description=f"default {default_limit}"),
    ) -> UsersOut:
        """Users whose (normalised) username starts with `q`, by username."""
        users = await context.accounts.search_users(caller, q, limit)
        return UsersOut(users=[UserOut.of(user) for user in users])

    @router.get(
        "/{user_id}", operation_id="get_user", responses=error_responses(*_AUTHED, 404, 422)
    )
    async def get_user(user_id: uuid.UUID, context: Context, caller: Caller) -> UserOut:
        """One user by id."""
        return UserOut.of(await context.accounts.get_user(caller, user_id))

    return router


def _answer_405_with_every_method(app: FastAPI, routers: Iterable[APIRouter]) -> None:
    """Where several routes share a path (`/v1/auth/me`: GET and DELETE), Starlette's 405 names
    only the first route's methods in `Allow`; a hidden route for the other methods names all."""
    routes: dict[str, list[APIRoute]] = defaultdict(list)
    for router in routers:
        for route in router.routes:
            if isinstance(route, APIRoute):
                routes[route.path].append(route)
    for path, shared in routes.items():
        if len(shared) < 2:
            continue
        allowed = sorted({method for route in shared for method in route.methods or ()})
        others = sorted({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"}
                        - set(allowed))  # fmt: skip
        app.add_api_route(
            path, _refuser(", ".join(allowed)), methods=others, include_in_schema=False
        )


def _refuser(allow: str) -> Callable[[], Awaitable[Response]]:
    async def not_allowed() -> Response:
        raise StarletteHTTPException(405, "Method Not Allowed", headers={"Allow": allow})

    return not_allowed


@jwks_router.get("/.well-known/jwks.json", operation_id="jwks", responses=error_responses(503))
async def jwks(context: Context, response: Response) -> JwksOut:
    """The public keys that verify access tokens (cache briefly; refetch on an unknown `kid`)."""
    response.headers["Cache-Control"] = "public, max-age=60"
    return JwksOut.model_validate(context.authenticator.jwks())


def create_app(
    context: AuthContext,
    *,
    settings: AuthSettings,
    readiness: Readiness,
    lifespan: Lifespan = None,
) -> FastAPI:
    """The auth HTTP app around already built services (`rtm.auth.bootstrap` builds them)."""
    app = create_http_app(
        title="rtm auth",
        version="1.0.0",
        description="Accounts, sessions and tokens of rtm (docs/protocol.md, '3. Authentication').",
        settings=settings,
        readiness=readiness,
        lifespan=lifespan,
    )
    app.state.auth = context
    users_router = _users_router(settings.search_default_limit, settings.search_max_limit)
    routers = (auth_router, users_router, jwks_router)
    for router in routers:
        app.include_router(router)
    _answer_405_with_every_method(app, routers)
    add_web_page(app, settings)
    return app
