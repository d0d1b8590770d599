"""The one harness of the services' OpenAPI contract tests (issue 11): how a service is served to
schemathesis, how the cases are generated, and which checks judge the answers.

Each service's `tests/integration/<service>/test_openapi_contract.py` builds its document with
`contract_schema`, decorates its test with `@schema.parametrize()` and `@CONTRACT_SETTINGS`,
serves the real service with `served_from_thread` and sends every case through `call_and_check`.
What is special to a service (auth's fresh tokens, the consumer's seeded conversation, the
producer's raised throttles) stays in its own file.

Why a thread: schemathesis's pytest plugin sends each case as a blocking request from the test's
own thread, so the server cannot share that thread's event loop; it gets a loop of its own in a
daemon thread, and the test talks to it over a socket on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from typing import Any, TypeVar

import httpx
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.specs.openapi.schemas import OpenApiSchema

T = TypeVar("T")

MAX_EXAMPLES = 25
REQUEST_TIMEOUT_S = 10.0  # a hang fails its case, not the whole module at pytest's timeout
START_TIMEOUT_S = 60.0

# Bounded and repeatable, so that CI sees the same requests every time and a failure names the
# request to replay: a fixed number of examples per operation, derandomized, no example database
# (nothing from an earlier run steers this one). No deadline: a real server on a loaded machine
# is slow now and then, and that is no contract failure. The health checks judge strategies
# (too slow, too many filtered); schemathesis builds those from the document, not we.
CONTRACT_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def contract_schema(document: dict[str, Any], **generation: Any) -> OpenApiSchema:
    """schemathesis's view of a service's OpenAPI `document`, every check enabled.

    `generation` adds to schemathesis's generation config (auth: `codec="ascii"`)."""
    config = schemathesis.Config.from_dict(
        {"checks": {"enabled": True}, "generation": {"deterministic": True, **generation}}
    )
    return schemathesis.openapi.from_dict(document, config=config)


def call_and_check(case: Case[Any], base_url: str, token: Callable[[], str]) -> None:
    """Send `case` to the server at `base_url` and hold its answer to every check.

    A case that carries a bearer token (schemathesis makes one up for an operation that takes
    one) carries a real one instead, from `token`, so that the checks reach past 401. A case
    that schemathesis left without one on purpose (a negative case: "refused without
    credentials") stays without: adding one would make it valid, and its 200 a false failure."""
    headers = {}
    if case.headers and "Authorization" in case.headers:
        headers["Authorization"] = f"Bearer {token()}"
    case.call_and_validate(base_url=base_url, headers=headers, timeout=REQUEST_TIMEOUT_S)


class _LoopThread:
    """An event loop running in a daemon thread; `run` waits for a coroutine on it."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="contract-server", daemon=True
        )
        self._thread.start()

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(START_TIMEOUT_S)

    def close(self) -> None:
        self.run(self._loop.shutdown_asyncgens())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self._loop.close()


@contextmanager
def served_from_thread(server: AbstractAsyncContextManager[str]) -> Iterator[str]:
    """Enter `server` (an async context manager that serves HTTP and yields its `host:port`) on
    an event loop of its own in a thread; yields `http://host:port` once `/health/ready` says 200,
    and leaves `server` on that same loop afterwards.

    `server` must not be started yet: its lifespan (pools, NATS clients, workers) has to run on
    the thread's loop, the loop that serves its requests."""
    loop = _LoopThread()
    try:
        address = loop.run(server.__aenter__())
        try:
            base_url = f"http://{address}"
            wait_ready(base_url)
            yield base_url
        finally:
            loop.run(server.__aexit__(None, None, None))
    finally:
        loop.close()


def wait_ready(base_url: str, timeout: float = 20.0) -> None:
    """Until `/health/ready` answers 200: every dependency (PostgreSQL, NATS) connected."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=base_url) as client:
        while True:
            response = client.get("/health/ready")
            if response.status_code == 200:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{base_url} not ready: {response.text}")
            time.sleep(0.05)
