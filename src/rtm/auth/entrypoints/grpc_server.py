"""The gRPC server: AuthService, `grpc.health.v1.Health` and server reflection on one port.

Each call gets a correlation id, logged as `cid` on every line logged while it is served: the
client's `x-request-id` metadata when it is a sane token, else a fresh one (`RequestIdInterceptor`).
Health reports NOT_SERVING (for "" and for `rtm.auth.v1.AuthService`) whenever the readiness
probe fails (PostgreSQL unreachable, no signing key yet); `HealthReporter` re-checks it every few
seconds. Requests larger than `max_message_bytes` are refused by gRPC itself with
RESOURCE_EXHAUSTED before any of our code runs; requests whose bytes are not the method's message
get INVALID_ARGUMENT (`MalformedRequestInterceptor`).
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import descriptor_pool
from google.protobuf.message import DecodeError
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from rtm.auth.entrypoints.servicer import AuthServicer
from rtm.auth.proto import auth_pb2, auth_pb2_grpc
from rtm.shared.logging import bind_log_context, correlation_id

logger = logging.getLogger(__name__)

SERVICE_NAME: str = auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name
Probe = Callable[[], Awaitable[bool]]


class HealthReporter:
    """Keeps the gRPC health status in line with a readiness probe (the composition root calls
    `check_once` every few seconds).

    One failed probe is not an outage: under load a PostgreSQL round trip can miss the check's
    deadline once, and flipping to NOT_SERVING for it sends callers away for a whole interval
    (a test saw exactly that on a busy machine). SERVING turns NOT_SERVING after `tolerate`
    failed probes in a row; NOT_SERVING turns SERVING at the first good one.
    """

    def __init__(self, health: HealthServicer, probe: Probe, tolerate: int = 2) -> None:
        self._health = health
        self._probe = probe
        self._tolerate = tolerate
        self._failures = 0
        self.serving = False

    async def check_once(self) -> bool:
        try:
            ok = await self._probe()
        except Exception:  # last line of defence: a broken probe is a failure, with a traceback
            logger.exception("health probe failed")
            ok = False
        self._failures = 0 if ok else self._failures + 1
        serving = ok or (self.serving and self._failures < self._tolerate)
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


class _Malformed:
    """What the lenient deserializer hands on instead of raising: gRPC aio answers an exception
    raised while deserializing with UNKNOWN and logs it as an ERROR with a traceback."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _message_name(method: str) -> str:
    """`/pkg.Service/Method` -> the full name of its request message (the path if unknown)."""
    service, _, name = method.lstrip("/").partition("/")
    try:
        found = descriptor_pool.Default().FindServiceByName(service).methods_by_name[name]
    except KeyError:
        return method
    return str(found.input_type.full_name)


@functools.cache
def _refusing_malformed(
    handler: grpc.RpcMethodHandler[Any, Any], method: str
) -> grpc.RpcMethodHandler[Any, Any]:
    """`handler` answering undecodable bytes with INVALID_ARGUMENT (cached: built once a method).

    Only async unary-request methods (all of AuthService, Health.Check): a streaming request is
    deserialized inside the handler, where this cannot reach."""
    behaviour: Any = handler.unary_unary  # typed sync in the stubs; only async ones are wrapped
    decode = handler.request_deserializer
    if behaviour is None or decode is None or not inspect.iscoroutinefunction(behaviour):
        return handler
    what = _message_name(method)

    def lenient(raw: bytes) -> Any:
        try:
            return decode(raw)
        except DecodeError as exc:
            return _Malformed(f"request is not a valid {what} message: {exc}")

    async def refusing(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        if isinstance(request, _Malformed):
            logger.info("refused %s: %s", method, request.reason)  # the client's fault
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.reason)
        return await behaviour(request, context)

    return grpc.unary_unary_rpc_method_handler(
        refusing, request_deserializer=lenient, response_serializer=handler.response_serializer
    )


class MalformedRequestInterceptor(_ServerInterceptor):
    """Bytes that are not the method's request message (not protobuf, invalid UTF-8 in a
    `string` field) get INVALID_ARGUMENT naming the message, logged at INFO, instead of gRPC's
    UNKNOWN "Unexpected DecodeError" with an ERROR traceback."""

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None:  # unknown method: gRPC answers UNIMPLEMENTED
            return handler
        return _refusing_malformed(handler, handler_call_details.method)


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
        interceptors=[RequestIdInterceptor(), MalformedRequestInterceptor()],
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
