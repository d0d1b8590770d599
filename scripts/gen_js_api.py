"""Write the API documents the TypeScript SDK (clients/js) generates its types from.

The services build their OpenAPI (auth, producer, consumer) and AsyncAPI (producer, consumer)
documents from the same models that validate what they read and write. The SDK is built with
node alone, from a lockfile, so it cannot ask Python for them: they are committed under
`clients/js/api/`, and a unit test (tests/unit/test_js_sdk_api_docs.py) fails when a committed
copy differs from what the code builds now (`--check`). Run:
`.venv/bin/python scripts/gen_js_api.py`, then rebuild the SDK (`cd clients/js && npm run build`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
API_DIR = ROOT / "clients" / "js" / "api"


def documents() -> dict[str, dict[str, Any]]:
    """Every document by file name, built with default settings (nothing connects)."""
    from rtm.auth.bootstrap import build as build_auth
    from rtm.auth.settings import AuthSettings
    from rtm.consumer.bootstrap import create_app as consumer_app
    from rtm.consumer.entrypoints import asyncapi as consumer_asyncapi
    from rtm.consumer.settings import ConsumerSettings
    from rtm.producer.bootstrap import create_app as producer_app
    from rtm.producer.entrypoints import asyncapi as producer_asyncapi
    from rtm.producer.settings import ProducerSettings

    producer = ProducerSettings(_env_file=None, migrate_on_start=False)
    consumer = ConsumerSettings(_env_file=None, migrate_on_start=False)
    auth = build_auth(AuthSettings(_env_file=None, migrate_on_start=False))
    try:
        auth_openapi = auth.http_app.openapi()
    finally:
        auth.hasher.close()
    return {
        "auth.openapi.json": auth_openapi,
        "producer.openapi.json": producer_app(producer).openapi(),
        "consumer.openapi.json": consumer_app(consumer).openapi(),
        "producer.asyncapi.json": producer_asyncapi.document(
            producer, version="1.0.0", host="127.0.0.1:8081"
        ),
        "consumer.asyncapi.json": consumer_asyncapi.document(
            consumer, version="1.0.0", host="127.0.0.1:8082"
        ),
    }


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> int:
    if "--check" in sys.argv:
        stale = [
            name
            for name, document in documents().items()
            if not (API_DIR / name).is_file()
            or (API_DIR / name).read_text(encoding="utf-8") != render(document)
        ]
        for name in stale:
            print(f"clients/js/api/{name} is stale: run .venv/bin/python scripts/gen_js_api.py")
        return 1 if stale else 0
    API_DIR.mkdir(parents=True, exist_ok=True)
    for name, document in documents().items():
        (API_DIR / name).write_text(render(document), encoding="utf-8")
        print(f"wrote {(API_DIR / name).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
