"""The AsyncAPI documents of the producer and consumer WebSockets, and the page that renders them.

Each document must be valid against the official AsyncAPI 3.0.0 JSON schema (vendored from the
`@asyncapi/specs` npm package by `scripts/vendor_asyncapi.sh`), list every frame the service
accepts and emits, and carry the very schemas pydantic derives from the frame models.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from jsonschema import Draft7Validator  # type: ignore[import-untyped]
from pydantic import BaseModel

from rtm.consumer import bootstrap as consumer_bootstrap
from rtm.consumer.entrypoints import asyncapi as consumer_asyncapi
from rtm.consumer.entrypoints import ws_session as consumer_ws
from rtm.consumer.settings import ConsumerSettings
from rtm.producer import bootstrap as producer_bootstrap
from rtm.producer.entrypoints import asyncapi as producer_asyncapi
from rtm.producer.entrypoints import ws_connection as producer_ws
from rtm.producer.settings import ProducerSettings
from rtm.shared.asyncapi import (
    CLOSE_CODES,
    ERROR_CODES,
    SCHEMA_REF,
    FrameDoc,
    asyncapi_document,
    frame_type,
    model_examples,
)
from rtm.shared.asyncapi_http import STATIC_DIR
from rtm.shared.errors import ErrorCode
from rtm.shared.frames import PingFrame, PongFrame
from rtm.shared.settings import REPO_ROOT
from rtm.shared.ws import CloseCode

SPEC = REPO_ROOT / "tests" / "support" / "asyncapi-3.0.0.json"

PRODUCER_EMITS = {"ack", "error", "read_ok", "auth_ok", "pong"}
CONSUMER_EMITS = {
    "ready",
    "message",
    "resumed",
    "typing",
    "read",
    "presence",
    "conversation",
    "error",
    "pong",
    "auth_ok",
}


@cache
def _validator() -> Draft7Validator:
    schema = json.loads(SPEC.read_text())
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


def _errors(document: dict[str, Any]) -> list[str]:
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message[:200]}"
        for error in _validator().iter_errors(document)
    ]


def producer_document() -> dict[str, Any]:
    settings = ProducerSettings(_env_file=None)
    return producer_asyncapi.document(settings, version="1.0.0", host="127.0.0.1:8081")


def consumer_document() -> dict[str, Any]:
    settings = ConsumerSettings(_env_file=None)
    return consumer_asyncapi.document(settings, version="1.0.0", host="127.0.0.1:8082")


DOCUMENTS: dict[str, Callable[[], dict[str, Any]]] = {
    "producer": producer_document,
    "consumer": consumer_document,
}
CATALOGUES = {
    "producer": (producer_asyncapi.RECEIVES, producer_asyncapi.SENDS),
    "consumer": (consumer_asyncapi.RECEIVES, consumer_asyncapi.SENDS),
}


def _messages(document: dict[str, Any], action: str) -> set[str]:
    names: set[str] = set()
    for operation in document["operations"].values():
        if operation["action"] == action:
            names.update(ref["$ref"].rsplit("/", 1)[1] for ref in operation["messages"])
    return names


def _refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _resolve(document: dict[str, Any], ref: str) -> object:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


# -- the documents ------------------------------------------------------------------------------


@pytest.mark.parametrize("service", DOCUMENTS)
def test_document_is_valid_asyncapi_3(service: str) -> None:
    """The official AsyncAPI 3.0.0 JSON schema accepts the service's document."""
    document = DOCUMENTS[service]()
    assert document["asyncapi"] == "3.0.0"
    assert _errors(document) == []


BREAKAGES: dict[str, Callable[[dict[str, Any]], None]] = {
    "unknown action": lambda d: d["operations"]["receive_ping"].update(action="publish"),
    "server without host": lambda d: d["servers"]["rtm"].pop("host"),
    "payload not a schema": lambda d: d["components"]["messages"]["pong"].update(payload=[1]),
    "bad WebSocket method": lambda d: d["channels"]["ws"]["bindings"]["ws"].update(method="PUT"),
    "AsyncAPI 2": lambda d: d.update(asyncapi="2.6.0"),
    "no info": lambda d: d.pop("info"),
}


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_a_broken_document_fails_validation(breakage: str) -> None:
    """The validation has teeth: each deliberate breakage of a valid document is caught."""
    document = copy.deepcopy(producer_document())
    BREAKAGES[breakage](document)
    assert _errors(document) != []


def test_producer_document_lists_every_frame_the_producer_accepts_and_emits() -> None:
    """Received: exactly the frame types `ws.py` parses; sent: ack, error, read_ok, auth_ok,
    pong."""
    document = producer_document()
    assert _messages(document, "receive") == set(producer_ws.FRAME_TYPES)
    assert _messages(document, "send") == PRODUCER_EMITS


def test_consumer_document_lists_every_frame_the_consumer_accepts_and_emits() -> None:
    """Received: exactly the frame types `ws.py` parses; sent: every frame of
    docs/protocol.md, "6. Consumer"."""
    document = consumer_document()
    assert _messages(document, "receive") == set(consumer_ws.FRAME_TYPES)
    assert _messages(document, "send") == CONSUMER_EMITS


@pytest.mark.parametrize("service", DOCUMENTS)
def test_every_internal_reference_resolves(service: str) -> None:
    """Operations, replies, channel messages and payloads point at things that exist."""
    document = DOCUMENTS[service]()
    refs = set(_refs(document))
    assert refs
    for ref in refs:
        assert _resolve(document, ref) is not None, ref


@pytest.mark.parametrize("service", DOCUMENTS)
def test_payloads_are_the_schemas_pydantic_derives_from_the_frame_models(service: str) -> None:
    """Each message's payload is its model's JSON schema: the document cannot drift from them."""
    document = DOCUMENTS[service]()
    receives, sends = CATALOGUES[service]
    for frame in (*receives, *sends):
        message = document["components"]["messages"][frame.name]
        payload = _resolve(document, message["payload"]["$ref"])
        expected = frame.model.model_json_schema(ref_template=SCHEMA_REF)
        expected.pop("$defs", None)
        assert payload == expected, frame.name
        assert message["examples"], f"{frame.name} has no example"


@pytest.mark.parametrize("service", DOCUMENTS)
def test_examples_are_valid_frames(service: str) -> None:
    """Every example in the document passes its own frame model, strictly, as JSON."""
    receives, sends = CATALOGUES[service]
    for frame in (*receives, *sends):
        for example in model_examples(frame.model):
            frame.model.model_validate_json(json.dumps(example), strict=True)


@pytest.mark.parametrize("service", DOCUMENTS)
def test_close_and_error_codes_are_documented(service: str) -> None:
    """Every close code (§8) and error code (§7) is tabled in the description and listed."""
    document = DOCUMENTS[service]()
    description = document["info"]["description"]
    channel = document["channels"]["ws"]
    assert {entry["code"] for entry in channel["x-close-codes"]} == {int(c) for c in CloseCode}
    assert {entry["code"] for entry in channel["x-error-codes"]} == {c.value for c in ErrorCode}
    for code in CloseCode:
        assert f"| {int(code)} |" in description
    for error in ErrorCode:
        assert f"`{error.value}`" in description
    assert set(CLOSE_CODES) == set(CloseCode)
    assert set(ERROR_CODES) == set(ErrorCode)


def test_the_description_carries_the_deployments_limits() -> None:
    """Limits come from the settings the service runs with, not from constants."""
    settings = ProducerSettings(_env_file=None, max_body_chars=123, max_in_flight=7)
    document = producer_asyncapi.document(settings, version="9.9.9", host="h:1", protocol="wss")
    assert "1 to 123 characters" in document["info"]["description"]
    assert "at most 7 unacked sends" in document["info"]["description"]
    assert document["info"]["version"] == "9.9.9"
    assert document["servers"]["rtm"] | {"security": None} == {
        "host": "h:1",
        "protocol": "wss",
        "description": "this service, as you reached it",
        "security": None,
    }


class _Untyped(BaseModel):
    type: str


def test_a_frame_model_needs_a_literal_type() -> None:
    """`type: str` cannot name a frame; `Literal["ping"]` does."""
    assert frame_type(PingFrame) == "ping"
    with pytest.raises(TypeError):
        frame_type(_Untyped)


def test_frame_names_must_be_unique_and_replies_must_exist() -> None:
    """The generator refuses a catalogue that would make an ambiguous or dangling document."""
    ping = FrameDoc(PingFrame, "ping", replies=("pong",))
    pong = FrameDoc(PongFrame, "pong")

    def build(receives: tuple[FrameDoc, ...], sends: tuple[FrameDoc, ...]) -> dict[str, Any]:
        return asyncapi_document(
            title="t", version="1", description="d", host="h", receives=receives, sends=sends
        )

    assert _errors(build((ping,), (pong,))) == []
    with pytest.raises(ValueError, match="unique"):
        build((ping,), (pong, pong))
    with pytest.raises(ValueError, match="replies"):
        build((ping,), ())


# -- served over HTTP ------------------------------------------------------------------------


def _producer_app() -> FastAPI:
    return producer_bootstrap.create_app(ProducerSettings(_env_file=None))


def _consumer_app() -> FastAPI:
    return consumer_bootstrap.create_app(ConsumerSettings(_env_file=None))


APPS: dict[str, Callable[[], FastAPI]] = {"producer": _producer_app, "consumer": _consumer_app}


def _client(app: FastAPI, base_url: str = "http://rtm.test:8000") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


@pytest.mark.parametrize("service", APPS)
async def test_document_is_served_with_the_host_the_client_used(service: str) -> None:
    """`GET /v1/asyncapi.json` answers the valid document, its server where the client came in."""
    async with _client(APPS[service]()) as client:
        response = await client.get("/v1/asyncapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document = response.json()
    assert document["servers"]["rtm"]["host"] == "rtm.test:8000"
    assert document["servers"]["rtm"]["protocol"] == "ws"
    assert document["info"]["version"] == "1.0.0"
    assert _errors(document) == []


async def test_document_says_wss_behind_https() -> None:
    """A document fetched over https names a `wss` server."""
    async with _client(_producer_app(), "https://rtm.example") as client:
        document = (await client.get("/v1/asyncapi.json")).json()
    assert document["servers"]["rtm"] | {"security": None} == {
        "host": "rtm.example",
        "protocol": "wss",
        "description": "this service, as you reached it",
        "security": None,
    }


@pytest.mark.parametrize("service", APPS)
async def test_page_renders_the_document_with_the_local_bundle(service: str) -> None:
    """`GET /v1/asyncapi` is HTML loading the vendored bundle and stylesheet, nothing remote."""
    async with _client(APPS[service]()) as client:
        page = await client.get("/v1/asyncapi")
        bundle = await client.get("/v1/asyncapi/static/index.js")
        stylesheet = await client.get("/v1/asyncapi/static/default.min.css")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script src="asyncapi/static/index.js">' in page.text
    assert '<link rel="stylesheet" href="asyncapi/static/default.min.css">' in page.text
    assert 'url: "asyncapi.json"' in page.text
    assert re.findall(r'(?:src|href)="(?:https?:)?//', page.text) == []
    assert bundle.status_code == 200
    assert "javascript" in bundle.headers["content-type"]
    assert len(bundle.content) == (STATIC_DIR / "index.js").stat().st_size
    assert "AsyncApiStandalone" in bundle.text[:2000]
    assert stylesheet.status_code == 200
    assert stylesheet.headers["content-type"].startswith("text/css")


@pytest.mark.parametrize("service", APPS)
def test_docs_routes_are_in_the_openapi_document(service: str) -> None:
    """Both routes carry explicit operation ids and the `docs` tag; static files stay out."""
    paths = APPS[service]().openapi()["paths"]
    assert paths["/v1/asyncapi.json"]["get"]["operationId"] == "asyncapi"
    assert paths["/v1/asyncapi"]["get"]["operationId"] == "asyncapi_page"
    assert paths["/v1/asyncapi"]["get"]["tags"] == ["docs"]
    assert not [path for path in paths if path.startswith("/v1/asyncapi/static")]


def test_vendored_files_match_their_readme() -> None:
    """The vendored assets are those `scripts/vendor_asyncapi.sh` recorded (no hand edits)."""
    readme = (STATIC_DIR / "README.md").read_text()
    rows = re.findall(r"^\| (\S+) \| (\d+) \| ([0-9a-f]{64}) \|$", readme, re.MULTILINE)
    assert {Path(path).name for path, _, _ in rows} >= {"index.js", "default.min.css", SPEC.name}
    for path, size, digest in rows:
        data = (REPO_ROOT / path).read_bytes()
        assert len(data) == int(size), path
        assert hashlib.sha256(data).hexdigest() == digest, path
