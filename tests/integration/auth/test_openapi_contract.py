"""Auth's OpenAPI document tells the truth: schemathesis (every check) on every operation.

The real auth runtime serves HTTP on a free port (real uvicorn, real PostgreSQL, real NATS), on
the harness's thread (tests/support/openapi_contract.py: bounded, derandomized, every check).
Every case that carries a bearer token gets a fresh user's token, so the checks reach past 401
and no case (a logout, `DELETE /v1/auth/me`) spoils the next one's credentials.

Strings are ASCII (`codec`): for ASCII the schemas state the service's rules exactly;
non-ASCII rules (NFKC usernames, byte-counted passwords) are covered by tests/unit/auth and
test_hostile_input.py.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import psycopg
import pytest
from schemathesis import Case

from rtm.auth.adapters.common_passwords import common_passwords
from rtm.auth.bootstrap import build
from tests.integration.auth.conftest import make_settings
from tests.support.openapi_contract import (
    CONTRACT_SETTINGS,
    call_and_check,
    contract_schema,
    served_from_thread,
)
from tests.support.servers import running_nats

PASSWORD_MIN, PASSWORD_MAX = 8, 1024
PASSWORD = "contract-test-password"
_names = itertools.count()


@asynccontextmanager
async def running_auth(database_url: str, nats_url: str) -> AsyncIterator[str]:
    """An auth runtime serving HTTP on 127.0.0.1:<free port>; yields `host:port`."""
    runtime = build(make_settings(database_url, nats_url, host="127.0.0.1"))
    await runtime.start()
    try:
        yield f"127.0.0.1:{runtime.http_port}"
    finally:
        await runtime.stop()


def fresh_token(base_url: str) -> str:
    """An access token of a new user (whatever earlier cases did to theirs)."""
    name = f"contract{next(_names)}"
    with httpx.Client(base_url=base_url) as client:
        body = {"username": name, "password": PASSWORD}
        client.post("/v1/auth/register", json=body).raise_for_status()
        login = client.post("/v1/auth/login", json=body)
        login.raise_for_status()
    token: str = login.json()["access_token"]
    return token


@pytest.fixture(scope="module")
def auth_url(auth_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with psycopg.connect(auth_db_url, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE auth.users, auth.sessions, auth.refresh_tokens, auth.signing_keys,"
            " auth.login_throttle CASCADE"
        )
    with (
        running_nats(tmp_path_factory.mktemp("nats")) as nats,
        served_from_thread(running_auth(auth_db_url, nats.url)) as base_url,
    ):
        yield base_url


def _document() -> dict[str, Any]:
    """The OpenAPI document of an auth app as `create_app` builds it (nothing connects)."""
    runtime = build(make_settings("postgresql://127.0.0.1:9/unused"))
    try:
        return runtime.http_app.openapi()
    finally:
        runtime.hasher.close()


schema = contract_schema(_document(), codec="ascii")


def _keep_clear_of_the_password_list(case: Case[Any]) -> None:
    """No JSON Schema can list ~200,000 refused passwords: a generated registration whose
    password is on the list (or is the username) gets another, equally schema-valid, password.
    test_hostile_input.py and the unit tests cover those 422s."""
    body = case.body
    if "register" not in case.operation.path or not isinstance(body, dict):
        return
    password, username = body.get("password"), body.get("username")
    if not isinstance(password, str) or not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        return
    same = isinstance(username, str) and password.casefold() == username.casefold()
    if same or password.lower() in common_passwords():
        body["password"] = PASSWORD


@schema.parametrize()
@CONTRACT_SETTINGS
def test_every_operation_answers_as_documented(case: Case[Any], auth_url: str) -> None:
    _keep_clear_of_the_password_list(case)
    call_and_check(case, auth_url, lambda: fresh_token(auth_url))
