"""Every HTTP route of auth, producer and consumer is documented (issue 5, API documentation).

Each app is built as its composition root builds it, without running its lifespan (nothing is
connected), and its OpenAPI document is read. Every operation must have an explicit operationId
(not FastAPI's generated `name_path_method`), a summary or description, at least one error
response documented with the `{"error": {...}}` envelope (health, metrics and docs routes
excepted), and a request body, if any, with an example.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.utils import generate_unique_id

from rtm.auth.bootstrap import create_app as create_auth_app
from rtm.auth.settings import AuthSettings
from rtm.consumer.bootstrap import create_app as create_consumer_app
from rtm.consumer.settings import ConsumerSettings
from rtm.producer.bootstrap import create_app as create_producer_app
from rtm.producer.settings import ProducerSettings

METHODS = ("get", "put", "post", "delete", "patch", "options", "head")
# Operational routes every service has; they answer plain JSON or text, not the error envelope.
OPERATIONAL = {"/health", "/health/live", "/health/ready", "/metrics"}
DOCS_PREFIX = "/v1/asyncapi"


def auth_app() -> FastAPI:
    return create_auth_app(AuthSettings(env="test", key_secret="docs-test-secret-0123456789abcdef"))


def producer_app() -> FastAPI:
    return create_producer_app(ProducerSettings(env="test"))


def consumer_app() -> FastAPI:
    return create_consumer_app(ConsumerSettings(env="test"))


APPS: dict[str, Callable[[], FastAPI]] = {
    "auth": auth_app,
    "producer": producer_app,
    "consumer": consumer_app,
}


@pytest.fixture(params=sorted(APPS))
def app(request: pytest.FixtureRequest) -> FastAPI:
    return APPS[request.param]()


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The schema itself, following a `$ref` into `components` (and a one-item `allOf`)."""
    while True:
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            schema = document["components"]["schemas"][name]
        elif len(schema.get("allOf", [])) == 1:
            schema = schema["allOf"][0]
        else:
            return schema


def is_error_envelope(document: dict[str, Any], response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema")
    if schema is None:
        return False
    schema = resolve(document, schema)
    error = resolve(document, schema.get("properties", {}).get("error", {}))
    return "error" in schema.get("required", []) and {"code", "message"} <= set(
        error.get("properties", {})
    )


def has_example(document: dict[str, Any], body: dict[str, Any]) -> bool:
    media = body.get("content", {}).get("application/json", {})
    if "example" in media or "examples" in media:
        return True
    schema = resolve(document, media.get("schema", {}))
    if "example" in schema or "examples" in schema:
        return True
    if "anyOf" in schema:  # an optional body: `Model | None`
        return any(
            has_example(document, {"content": {"application/json": {"schema": s}}})
            for s in schema["anyOf"]
            if s.get("type") != "null"
        )
    return False


def test_the_apps_have_routes_to_check(app: FastAPI) -> None:
    paths = app.openapi()["paths"]
    assert set(paths) >= OPERATIONAL
    assert len(paths) > len(OPERATIONAL) + 1


def documented_routes(app: FastAPI) -> list[APIRoute]:
    return [r for r in app.routes if isinstance(r, APIRoute) and r.include_in_schema]


def test_every_operation_has_an_explicit_operation_id(app: FastAPI) -> None:
    routes = documented_routes(app)
    assert [route.path for route in routes if not route.operation_id] == []
    generated = {generate_unique_id(route) for route in routes}
    ids = [op.get("operationId") for _, _, op in operations(app.openapi())]
    assert None not in ids
    assert not set(ids) & generated, "FastAPI's generated ids (name_path_method) are not ours"
    assert len(ids) == len(set(ids)), "operation ids must be unique"


def test_every_operation_is_described(app: FastAPI) -> None:
    # FastAPI makes up a summary from the function name; a docstring (the description) or an
    # explicit summary is what says something.
    routes = documented_routes(app)
    assert [r.path for r in routes if not (r.summary or (r.description or "").strip())] == []
    for _, _, op in operations(app.openapi()):
        assert op.get("description", "").strip() or op.get("summary", "").strip()


def test_every_api_operation_documents_the_error_envelope(app: FastAPI) -> None:
    document = app.openapi()
    undocumented = [
        f"{method.upper()} {path}"
        for path, method, op in operations(document)
        if path not in OPERATIONAL
        and not path.startswith(DOCS_PREFIX)
        and not any(
            status[0] in "45" and is_error_envelope(document, response)
            for status, response in op.get("responses", {}).items()
        )
    ]
    assert undocumented == []


def test_every_request_body_has_an_example(app: FastAPI) -> None:
    document = app.openapi()
    bodies = [
        (f"{method.upper()} {path}", op["requestBody"])
        for path, method, op in operations(document)
        if "requestBody" in op
    ]
    assert bodies or app.title == "rtm consumer"  # the consumer's HTTP API only reads
    assert [name for name, body in bodies if not has_example(document, body)] == []


def test_every_protected_operation_names_the_bearer_scheme(app: FastAPI) -> None:
    # Swagger UI's "Authorize" / "Try it out" sends `Authorization: Bearer <token>` only for
    # operations whose `security` names an http bearer scheme (issue 14).
    document = app.openapi()
    schemes = document.get("components", {}).get("securitySchemes", {})
    public = {
        "POST /v1/auth/register",
        "POST /v1/auth/login",  # its 401 is for wrong credentials
        "POST /v1/auth/refresh",
        "GET /.well-known/jwks.json",
    }
    protected = [
        (f"{method.upper()} {path}", op)
        for path, method, op in operations(document)
        if path not in OPERATIONAL
        and not path.startswith(DOCS_PREFIX)
        and f"{method.upper()} {path}" not in public
    ]
    assert protected
    for name, op in protected:
        requirements = op.get("security", [])
        assert requirements, f"{name} answers 401 but names no security scheme"
        for requirement in requirements:
            for scheme_name in requirement:
                scheme = schemes[scheme_name]
                assert (scheme["type"], scheme["scheme"]) == ("http", "bearer"), name
                assert scheme.get("bearerFormat") == "JWT", name


def test_swagger_ui_keeps_the_token_across_reloads(app: FastAPI) -> None:
    assert (app.swagger_ui_parameters or {}).get("persistAuthorization") is True
