"""The gRPC server: AuthService, `grpc.health.v1.Health` and server reflection on one port.

Each call gets a correlation id, logged as `cid` on every line logged while it is served: the
client's `x-request-id` metadata when it is a sane token, else a fresh one (`RequestIdInterceptor`).
Health reports NOT_SERVING (for "" and for `rtm.auth.v1.AuthService`) whenever the readiness
probe fails (PostgreSQL unreachable, no signing key yet); `HealthReporter` re-checks it every few
seconds. Requests larger than `max_message_bytes` are refused by gRPC itself with
RESOURCE_EXHAUSTED before any of our code runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from rtm.auth.proto import auth_pb2, auth_pb2_grpc
from rtm.auth.servicer import AuthServicer
from rtm.shared.logging import bind_log_context, correlation_id

logger = logging.getLogger(__name__)

SERVICE_NAME: str = auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name
Probe = Callable[[], Awaitable[bool]]


class HealthReporter:
    """Keeps the gRPC health status in line with a readiness probe."""

    def __init__(self, health: HealthServicer, probe: Probe, interval: float) -> None:
        self._health = health
        self._probe = probe
        self._interval = interval
        self.serving = False

    async def check_once(self) -> bool:
        try:
            serving = await self._probe()
        except Exception:  # a broken probe means not serving, and is worth a traceback
            logger.exception("health probe failed")
            serving = False
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        if serving != self.serving:
            logger.info("gRPC health: %s", "SERVING" if serving else "NOT_SERVING")
        self.serving = serving
        for name in ("", SERVICE_NAME):
            await self._health.set(name, status)
        return serving

    async def run(self) -> None:
        while True:
            await self.check_once()
            await asyncio.sleep(self._interval)


if TYPE_CHECKING:  # generic in the type stubs only
    _ServerInterceptor = grpc.aio.ServerInterceptor[Any, Any]
else:
    _ServerInterceptor = grpc.aio.ServerInterceptor


class RequestIdInterceptor(_ServerInterceptor):
    """Binds the call's correlation id (`cid`) to the logging context. gRPC runs each call's
    interceptors and handler in one fresh context, so the binding ends with the call."""

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        offered = None
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "x-request-id" and isinstance(value, str):
                offered = value
        bind_log_context(cid=correlation_id(offered))
        return await continuation(handler_call_details)


def create_grpc_server(
    servicer: AuthServicer,
    *,
    max_message_bytes: int,
    handshake_timeout_s: float = 5.0,
) -> tuple[grpc.aio.Server, HealthServicer]:
    """A server with our services registered (not bound, not started).

    Edge limits (protocol.md, "Edges"): a connection must complete its HTTP/2 handshake within
    `handshake_timeout_s` (gRPC's default is 120 s: an idle TCP connection was held that long);
    a connection with no call for 5 minutes is sent GOAWAY (clients reconnect transparently); a
    connection is pinged after 60 s of silence and closed when the ping is not answered within
    20 s; at most 100 concurrent calls per connection."""
    server = grpc.aio.server(
        interceptors=[RequestIdInterceptor()],
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", 4 * 1024 * 1024),
            ("grpc.so_reuseport", 0),
            ("grpc.server_handshake_timeout_ms", int(handshake_timeout_s * 1000)),
            ("grpc.max_connection_idle_ms", 5 * 60 * 1000),
            ("grpc.keepalive_time_ms", 60 * 1000),
            ("grpc.keepalive_timeout_ms", 20 * 1000),
            ("grpc.max_concurrent_streams", 100),
        ],
    )
    auth_pb2_grpc.add_AuthServiceServicer_to_server(servicer, server)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
         reflection.SERVICE_NAME),
        server,
    )  # fmt: skip
    return server, health


def bind(server: grpc.aio.Server, host: str, port: int) -> int:
    """Listen on host:port (0 = any free port); returns the port bound."""
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    bound = server.add_insecure_port(address)
    if bound == 0:
        raise OSError(f"cannot bind gRPC to {address}")
    return bound
