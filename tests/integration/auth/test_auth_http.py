"""Every route of the auth HTTP front, with the protocol's error envelope on each failure."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from rtm.auth.bootstrap import Auth
from tests.integration.auth.conftest import CLIENT_ADDRESS

PASSWORD = "password-1"


async def login(http: httpx.AsyncClient, name: str = "alice") -> dict[str, Any]:
    await http.post("/v1/auth/register", json={"username": name, "password": PASSWORD})
    response = await http.post("/v1/auth/login", json={"username": name, "password": PASSWORD})
    assert response.status_code == 200, response.text
    grant: dict[str, Any] = response.json()
    return grant


def bearer(grant: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {grant['access_token']}"}


def error(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    return body


async def test_register_answers_201_with_the_user(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/v1/auth/register", json={"username": "Alice", "password": PASSWORD, "display_name": "Al"}
    )
    assert response.status_code == 201
    user = response.json()
    assert set(user) == {"id", "username", "display_name", "created_at"}
    assert (user["username"], user["display_name"]) == ("alice", "Al")
    assert user["created_at"].endswith("Z")
    assert len(user["created_at"]) == len("2026-11-24T01:34:49.123Z")


async def test_register_errors(http: httpx.AsyncClient) -> None:
    await http.post("/v1/auth/register", json={"username": "alice", "password": PASSWORD})
    taken = await http.post("/v1/auth/register", json={"username": "ALICE", "password": PASSWORD})
    assert (taken.status_code, error(taken)["code"]) == (409, "already_exists")
    short = await http.post("/v1/auth/register", json={"username": "bob", "password": "1234567"})
    assert (short.status_code, error(short)["code"], error(short)["field"]) == (
        422,
        "validation_failed",
        "password",
    )
    missing = await http.post("/v1/auth/register", json={"username": "bob"})
    assert (missing.status_code, error(missing)["field"]) == (422, "password")
    wrong_type = await http.post("/v1/auth/register", json={"username": 5, "password": PASSWORD})
    assert (wrong_type.status_code, error(wrong_type)["field"]) == (422, "username")
    garbage = await http.post(
        "/v1/auth/register", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert (garbage.status_code, error(garbage)["code"]) == (400, "invalid_json")
    not_object = await http.post("/v1/auth/register", json=[1, 2])
    assert (not_object.status_code, error(not_object)["code"]) == (400, "invalid_message")


async def test_login_answers_the_grant_and_one_401_for_both_failures(
    http: httpx.AsyncClient,
) -> None:
    grant = await login(http)
    assert set(grant) == {
        "access_token", "refresh_token", "token_type", "expires_in", "session_id", "user",
    }  # fmt: skip
    assert (grant["token_type"], grant["expires_in"]) == ("Bearer", 900)
    wrong = await http.post("/v1/auth/login", json={"username": "alice", "password": "nope-nope"})
    unknown = await http.post("/v1/auth/login", json={"username": "zed", "password": "nope-nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert error(wrong)["code"] == "unauthorized"


async def test_refresh_answers_a_new_grant(http: httpx.AsyncClient) -> None:
    grant = await login(http)
    response = await http.post("/v1/auth/refresh", json={"refresh_token": grant["refresh_token"]})
    assert response.status_code == 200
    assert response.json()["session_id"] == grant["session_id"]
    again = await http.post("/v1/auth/refresh", json={"refresh_token": grant["refresh_token"]})
    assert (again.status_code, error(again)["code"]) == (401, "unauthorized")
    missing = await http.post("/v1/auth/refresh", json={})
    assert (missing.status_code, error(missing)["field"]) == (422, "refresh_token")


async def test_logout_by_body_or_bearer_answers_204(http: httpx.AsyncClient) -> None:
    one, two = await login(http), await login(http)
    by_body = await http.post("/v1/auth/logout", json={"refresh_token": one["refresh_token"]})
    by_bearer = await http.post("/v1/auth/logout", headers=bearer(two))
    assert by_body.status_code == by_bearer.status_code == 204
    assert (await http.get("/v1/auth/me", headers=bearer(one))).status_code == 401
    assert (await http.get("/v1/auth/me", headers=bearer(two))).status_code == 401
    neither = await http.post("/v1/auth/logout")
    assert (neither.status_code, error(neither)["code"]) == (401, "unauthorized")
    unknown = await http.post("/v1/auth/logout", json={"refresh_token": "rtmr_nope"})
    assert unknown.status_code == 401


async def test_me_returns_the_caller(http: httpx.AsyncClient) -> None:
    grant = await login(http)
    response = await http.get("/v1/auth/me", headers=bearer(grant))
    assert response.status_code == 200
    assert response.json() == grant["user"]
    assert (await http.get("/v1/auth/me")).status_code == 401


async def test_sessions_list_and_delete(http: httpx.AsyncClient) -> None:
    first, second, bob = await login(http), await login(http), await login(http, "bob")
    listed = (await http.get("/v1/auth/sessions", headers=bearer(second))).json()["sessions"]
    assert {(s["id"], s["current"]) for s in listed} == {
        (first["session_id"], False),
        (second["session_id"], True),
    }
    assert {s["ip"] for s in listed} == {CLIENT_ADDRESS}
    gone = await http.delete(f"/v1/auth/sessions/{first['session_id']}", headers=bearer(second))
    assert gone.status_code == 204
    listed = (await http.get("/v1/auth/sessions", headers=bearer(second))).json()["sessions"]
    assert [s["id"] for s in listed] == [second["session_id"]]
    others = await http.delete(f"/v1/auth/sessions/{bob['session_id']}", headers=bearer(second))
    assert (others.status_code, error(others)["code"]) == (404, "not_found")
    garbled = await http.delete("/v1/auth/sessions/not-a-uuid", headers=bearer(second))
    assert (garbled.status_code, error(garbled)["field"]) == (422, "session_id")


async def test_users_search_and_get(http: httpx.AsyncClient) -> None:
    grant = await login(http)
    bob = (await login(http, "bob"))["user"]
    found = await http.get("/v1/users", params={"q": "B"}, headers=bearer(grant))
    assert found.status_code == 200
    assert found.json() == {"users": [bob]}
    one = await http.get(f"/v1/users/{bob['id']}", headers=bearer(grant))
    assert one.json() == bob
    missing = await http.get(f"/v1/users/{uuid.uuid4()}", headers=bearer(grant))
    assert (missing.status_code, error(missing)["code"]) == (404, "not_found")
    no_query = await http.get("/v1/users", headers=bearer(grant))
    assert (no_query.status_code, error(no_query)["field"]) == (422, "q")
    bad_limit = await http.get("/v1/users", params={"q": "b", "limit": 0}, headers=bearer(grant))
    assert (bad_limit.status_code, error(bad_limit)["field"]) == (422, "limit")


async def test_jwks_is_public_and_cacheable(http: httpx.AsyncClient, runtime: Auth) -> None:
    response = await http.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert "max-age" in response.headers["cache-control"]
    keys = response.json()["keys"]
    assert [k["kid"] for k in keys] == [runtime.keys.signing_key().kid]
    assert set(keys[0]) == {"kty", "crv", "x", "kid", "alg", "use"}


async def test_docs_health_and_operation_ids(http: httpx.AsyncClient) -> None:
    spec = (await http.get("/v1/openapi.json")).json()
    operations = {op["operationId"] for path in spec["paths"].values() for op in path.values()}
    assert {"register", "login", "refresh", "logout", "me", "delete_me", "list_sessions",
            "revoke_session", "search_users", "get_user", "jwks"} <= operations  # fmt: skip
    assert (await http.get("/v1/swagger")).status_code == 200
    assert (await http.get("/health")).json() == {"status": "ok"}
    ready = await http.get("/health/ready")
    assert ready.status_code == 503  # no NATS in this test
    assert set(ready.json()["failing"]) == {"nats"}
    assert (await http.get("/metrics")).status_code == 200
