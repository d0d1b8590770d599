"""How every rtm HTTP port is served: uvicorn, with the edge limits of protocol.md ("Edges").

uvicorn bounds the idle time *between* requests (`timeout_keep_alive`), but nothing bounds a
connection that never completes a request's headers: an idle TCP connection, or headers sent a
byte a second, was held for as long as the client liked (issue #11: 1,500 such connections were
held). `edge_http_protocol` returns uvicorn's httptools protocol with two additions, one class
used by auth's HTTP front, the producer and the consumer:

- a header deadline: armed when the connection starts waiting for a request (when it is made,
  and when a response completes), disarmed when the request's headers are complete or the
  connection is upgraded to a WebSocket. Unlike uvicorn's keep-alive timer, data does not
  re-arm it, so trickling bytes does not help. On expiry the connection is closed without an
  answer (as nginx's `client_header_timeout` does).
- a cap on open connections per client IP address (`max_connections_per_address`, networks in
  `connection_cap_exempt` excepted). A connection over it is answered, once its request's
  headers are in, `429 rate_limited` with `Retry-After: 1` and `Connection: close` (an HTTP
  answer for WebSocket upgrades too, so a client sees why). Upgraded WebSockets keep counting
  until they close.

Both are counted in `rtm_edge_connections_closed_total{reason}`. WebSockets are bounded once
upgraded by pings (`ws_ping_interval_s`, `ws_ping_timeout_s`): a peer that stops answering is
closed, a quiet one that answers is kept.
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

import orjson
from prometheus_client import Counter
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from rtm.shared.errors import ErrorCode
from rtm.shared.settings import CommonSettings

EDGE_CLOSED = Counter(
    "rtm_edge_connections_closed_total",
    "Connections an HTTP/WebSocket port closed at its edge: header_timeout (request headers not "
    "complete in time) or per_address_cap (over max_connections_per_address, answered 429)",
    ["reason"],
)
for _reason in ("header_timeout", "per_address_cap"):
    EDGE_CLOSED.labels(_reason)

_OVER_CAP_BODY = orjson.dumps(
    {
        "error": {
            "code": ErrorCode.RATE_LIMITED.value,
            "message": "too many connections from your address",
            "retry_after_ms": 1000,
        }
    }
)
OVER_CAP_RESPONSE = (
    b"HTTP/1.1 429 Too Many Requests\r\n"
    b"content-type: application/json\r\n"
    b"retry-after: 1\r\n"
    b"connection: close\r\n"
    b"content-length: " + str(len(_OVER_CAP_BODY)).encode() + b"\r\n\r\n" + _OVER_CAP_BODY
)
# Sweep every address's entries for closed connections after this many admissions, so that
# addresses that never come back do not accumulate.
_SWEEP_EVERY = 4096


class AddressCap:
    """Open connections per client address, for one server.

    A connection is an asyncio transport; it counts while `not transport.is_closing()`. Plain
    HTTP connections are released when lost; upgraded ones belong to a WebSocket protocol by
    then, so closed entries are also pruned when an address reaches the cap, and everywhere
    every `_SWEEP_EVERY` admissions (cheap: the work is proportional to what is swept)."""

    def __init__(self, limit: int, exempt: list[str]) -> None:
        self.limit = limit
        self._exempt = [ipaddress.ip_network(network, strict=False) for network in exempt]
        self._open: dict[str, set[Any]] = {}
        self._admitted = 0

    def exempt(self, address: str) -> bool:
        if self.limit == 0:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:  # a Unix socket's path, say: not a client address
            return True
        return any(ip in network for network in self._exempt)

    def admit(self, address: str, transport: Any) -> bool:
        """Count `transport` for `address` if the address is under the cap; False if not."""
        held = self._open.setdefault(address, set())
        if len(held) >= self.limit:
            held.difference_update([t for t in held if t.is_closing()])
            if len(held) >= self.limit:
                return False
        held.add(transport)
        self._admitted += 1
        if self._admitted % _SWEEP_EVERY == 0:
            self._sweep()
        return True

    def release(self, address: str, transport: Any) -> None:
        held = self._open.get(address)
        if held is not None:
            held.discard(transport)
            if not held:
                del self._open[address]

    def count(self, address: str) -> int:
        return sum(1 for t in self._open.get(address, ()) if not t.is_closing())

    def _sweep(self) -> None:
        for address, held in list(self._open.items()):
            held.difference_update([t for t in held if t.is_closing()])
            if not held:
                del self._open[address]


class _EdgeProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header deadline and the per-address cap (see the
    module docstring). `_header_timeout_s`, `_keep_alive_s` and `_cap` are set per server by
    `edge_http_protocol`."""

    _header_timeout_s: float
    _keep_alive_s: float
    _cap: AddressCap

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timeout_keep_alive = self._keep_alive_s  # type: ignore[assignment]  # a float works
        self._header_timer: asyncio.TimerHandle | None = None
        self._counted: str | None = None  # the address this connection counts for
        self._over_cap = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        address = self.client[0] if self.client else ""
        if not self._cap.exempt(address):
            if self._cap.admit(address, transport):
                self._counted = address
            else:
                self._over_cap = True
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        if self._counted is not None:
            self._cap.release(self._counted, self.transport)
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        self._disarm_header_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.cycle.response_complete:
            self._arm_header_timer()  # nothing pipelined: now waiting for the next request

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        if self._over_cap:
            self._refuse()
            return
        super()._start_asgi_task(cycle, app)

    def handle_websocket_upgrade(self) -> None:
        self._disarm_header_timer()
        if self._over_cap:
            self._refuse()
            return
        super().handle_websocket_upgrade()
        # This protocol is done: the WebSocket's own has the transport now. uvicorn breaks the
        # parser's reference cycle (parser -> bound methods -> protocol) in `connection_lost`,
        # which an upgraded connection never calls here: without this, the protocol, its parser
        # and the request's scope (~4 KB) stay until a full collection, which the raised
        # thresholds (`rtm.shared.gc_tuning`) make rare (issue 13).
        self.parser = None  # type: ignore[assignment]

    def _refuse(self) -> None:
        EDGE_CLOSED.labels("per_address_cap").inc()
        if not self.transport.is_closing():
            self.transport.write(OVER_CAP_RESPONSE)
            self.transport.close()

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self._header_timer = self.loop.call_later(self._header_timeout_s, self._header_timeout)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            EDGE_CLOSED.labels("header_timeout").inc()
            self.transport.close()


def edge_http_protocol(settings: CommonSettings) -> type[HttpToolsProtocol]:
    """uvicorn's `http=` for one server: its own connection count, the limits of `settings`."""
    return type(
        "EdgeHttpProtocol",
        (_EdgeProtocol,),
        {
            "_header_timeout_s": settings.http_header_timeout_s,
            "_keep_alive_s": settings.http_keep_alive_s,
            "_cap": AddressCap(
                settings.max_connections_per_address, settings.connection_cap_exempt
            ),
        },
    )


def uvicorn_edge_options(settings: CommonSettings) -> dict[str, Any]:
    """The `uvicorn.Config` arguments every service passes: the edge protocol and WebSocket
    pings (for uvicorn's own WebSocket protocols; picows gets the same settings itself)."""
    return {
        "http": edge_http_protocol(settings),
        "ws_ping_interval": settings.ws_ping_interval_s,
        "ws_ping_timeout": settings.ws_ping_timeout_s,
    }
