"""Auth's OpenAPI document tells the truth: schemathesis (every check) on every operation.

The real auth runtime serves HTTP on a free port (real uvicorn, real PostgreSQL) from its own event
loop in a thread, since schemathesis calls it synchronously. Every case of an operation that
takes a bearer token gets a fresh user's token, so the checks reach past 401 and no case (a
logout, `DELETE /v1/auth/me`) spoils the next one's credentials.

Bounded and repeatable: a fixed number of examples per operation, derandomized, no example
database. Strings are ASCII (`codec`): for ASCII the schemas state the service's rules exactly;
non-ASCII rules (NFKC usernames, byte-counted passwords) are covered by tests/unit/auth and
test_hostile_input.py.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
import schemathesis
from schemathesis import Case

from rtm.auth.bootstrap import AuthRuntime
from rtm.auth.common_passwords import common_passwords
from tests.integration.auth.conftest import make_settings
from tests.support.servers import running_nats

EXAMPLES = 25
PASSWORD_MIN, PASSWORD_MAX = 8, 1024
PASSWORD = "contract-test-password"
_names = itertools.count()


class ServedAuth:
    """An auth runtime on its own event loop in a daemon thread, serving HTTP on 127.0.0.1."""

    def __init__(self, database_url: str, nats_url: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.runtime: AuthRuntime = self._run(self._start(database_url, nats_url))
        self.url = f"http://127.0.0.1:{self.runtime.http_port}"

    def _run(self, work: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(60)

    @staticmethod
    async def _start(database_url: str, nats_url: str) -> AuthRuntime:
        runtime = AuthRuntime(make_settings(database_url, nats_url, host="127.0.0.1"))
        await runtime.start()
        await runtime.wait_ready()
        while await runtime.readiness.failures():  # noqa: ASYNC110 - NATS too: /health/ready 200
            await asyncio.sleep(0.05)
        return runtime

    def fresh_token(self) -> str:
        """An access token of a new user (whatever earlier cases did to theirs)."""
        name = f"contract{next(_names)}"
        with httpx.Client(base_url=self.url) as client:
            body = {"username": name, "password": PASSWORD}
            client.post("/v1/auth/register", json=body).raise_for_status()
            login = client.post("/v1/auth/login", json=body)
            login.raise_for_status()
        token: str = login.json()["access_token"]
        return token

    def close(self) -> None:
        self._run(self.runtime.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture(scope="module")
def served(auth_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedAuth]:
    with psycopg.connect(auth_db_url, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE auth.users, auth.sessions, auth.refresh_tokens, auth.signing_keys,"
            " auth.login_throttle CASCADE"
        )
    with running_nats(tmp_path_factory.mktemp("nats")) as nats:
        server = ServedAuth(auth_db_url, nats.url)
        yield server
        server.close()


def _document() -> dict[str, Any]:
    """The OpenAPI document of an auth app as `create_app` builds it (nothing connects)."""
    runtime = AuthRuntime(make_settings("postgresql://127.0.0.1:9/unused"))
    try:
        return runtime.http_app.openapi()
    finally:
        runtime.hasher.close()


CONFIG = schemathesis.Config.from_dict(
    {"generation": {"max-examples": EXAMPLES, "deterministic": True, "database": "none",
                    "codec": "ascii"}}
)  # fmt: skip
schema = schemathesis.openapi.from_dict(_document(), config=CONFIG)


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
def test_every_operation_answers_as_documented(case: Case[Any], served: ServedAuth) -> None:
    _keep_clear_of_the_password_list(case)
    headers = {}
    if case.operation.definition.raw.get("security"):
        headers["Authorization"] = f"Bearer {served.fresh_token()}"
    case.call_and_validate(base_url=served.url, headers=headers)
