"""`ClientBase`: the state every part of `Client` shares, and the helpers they all use.

`Client` is one object to the application but four concerns inside, each a mixin over this
base in a module of its own: signing in (`rtm.client.signin`), the HTTP calls
(`rtm.client.rest`), the producer socket (`rtm.client.sending`) and the consumer socket
(`rtm.client.receiving`); `rtm.client.client` ties them together (`connect`, `close`). They
share one session, two sockets, one outbox and one receiver, so that state is set up here, in
one place, with what more than one part needs: the session check, the event queue, background
tasks and the authenticated HTTP request (refresh on 401, next instance on a network error).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Literal

import httpx

from rtm.client.backoff import Backoff
from rtm.client.connection import Connection, Timing
from rtm.client.errors import RtmError
from rtm.client.events import Event
from rtm.client.http import request_json
from rtm.client.outbox import Outbox, OutboxOptions
from rtm.client.reads import ReadMarkers
from rtm.client.receiver import Receiver
from rtm.client.resumes import Resumes
from rtm.client.session import Session
from rtm.client.store import MemoryStore, Store

Service = Literal["auth", "producer", "consumer"]


def _urls(urls: str | Sequence[str]) -> list[str]:
    listed = [urls] if isinstance(urls, str) else list(urls)
    return [u.rstrip("/") for u in listed]


def frame_error(frame: dict[str, Any]) -> RtmError:
    """The `RtmError` of an `error` frame (either socket's)."""
    return RtmError(
        str(frame.get("code", "")),
        str(frame.get("message", "")),
        field=frame.get("field"),
        retry_after_ms=frame.get("retry_after_ms"),
    )


class ClientBase:
    """The shared state of `Client` (whose docstring describes the arguments)."""

    def __init__(
        self,
        auth_url: str,
        producer_url: str | Sequence[str],
        consumer_url: str | Sequence[str],
        *,
        store: Store | None = None,
        http: httpx.AsyncClient | None = None,
        backoff: Backoff | None = None,
        timing: Timing | None = None,
        outbox: OutboxOptions | None = None,
    ) -> None:
        self._auth_url = auth_url.rstrip("/")
        self._producer_urls = _urls(producer_url)
        self._consumer_urls = _urls(consumer_url)
        self._store: Store = store if store is not None else MemoryStore()
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(timeout=httpx.Timeout(10.0))
        self._backoff, self._timing, self._outbox_options = backoff, timing, outbox
        self._session: Session | None = None
        self._state_user: str | None = None
        self._producer: Connection | None = None
        self._consumer: Connection | None = None
        self._outbox: Outbox | None = None
        self._receiver: Receiver | None = None
        self._reads = ReadMarkers()
        self._resumes = Resumes()
        self._resume_retry: asyncio.Task[None] | None = None
        self._listing: asyncio.Task[None] | None = None
        self._http_index: dict[Service, int] = {"auth": 0, "producer": 0, "consumer": 0}
        self._events: asyncio.Queue[Event | None] = asyncio.Queue()
        self._background: set[asyncio.Task[Any]] = set()
        self._closed = False

    def _require_session(self) -> Session:
        if self._session is None:
            raise RtmError("unauthorized", "sign in first (login, resume_session or use_tokens)")
        return self._session

    def _emit(self, event: Event) -> None:
        self._events.put_nowait(event)

    def _spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _call(
        self,
        service: Service,
        method: str,
        path: str,
        body: object = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        """An authenticated request, refreshing the token once on 401 and trying the next
        instance on a network error."""
        urls = {
            "auth": [self._auth_url],
            "producer": self._producer_urls,
            "consumer": self._consumer_urls,
        }[service]
        refreshed = False
        tries = 0
        while True:
            base = urls[self._http_index[service] % len(urls)]
            try:
                return await request_json(
                    self._http,
                    method,
                    base + path,
                    body=body,
                    token=self._require_session().access_token,
                    params=params,
                )
            except RtmError as exc:
                if exc.status == 401 and not refreshed:
                    refreshed = True
                    await self._require_session().refresh()
                elif exc.code == "network" and tries + 1 < len(urls):
                    tries += 1
                    self._http_index[service] += 1
                else:
                    raise
