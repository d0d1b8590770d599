"""Readiness probes the supervisor polls: each returns `None` when ready, else a short reason.

The service contract: every HTTP service answers `GET /health/ready` with 200 when ready (503 and
a JSON body naming the failing dependencies otherwise), and auth also answers the standard gRPC
health protocol. The embedded servers' own checks (nats `/healthz`, a PostgreSQL connection) are
blocking and run in a thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from rtm.local.spec import Probe


def http_ready(client: httpx.AsyncClient, base_url: str) -> Probe:
    """GET `<base_url>/health/ready`; the body of a non-200 answer is the reason."""
    url = f"{base_url}/health/ready"

    async def probe() -> str | None:
        try:
            response = await client.get(url)
        except httpx.TransportError:
            return "not answering HTTP yet"
        if response.status_code == 200:
            return None
        return f"HTTP {response.status_code} {response.text.strip()[:300]}"

    return probe


def _grpc_serving(target: str) -> str | None:
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            answer = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else None
            if code in (None, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                return "not answering gRPC yet"
            return f"gRPC health: {code.name}"
    if answer.status == health_pb2.HealthCheckResponse.SERVING:
        return None
    return f"gRPC health: {health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)}"


def grpc_serving(target: str) -> Probe:
    """The gRPC health protocol's overall status (`service=""`) at `host:port`.

    Uses the blocking client in a thread: grpc.aio binds itself to one event loop, and tests
    run several.
    """

    async def probe() -> str | None:
        return await asyncio.to_thread(_grpc_serving, target)

    return probe


def all_of(*probes: Probe) -> Probe:
    """Ready when every probe is; reports the first reason otherwise."""

    async def probe() -> str | None:
        for each in probes:
            reason = await each()
            if reason is not None:
                return reason
        return None

    return probe


def blocking(check: Callable[[], bool], reason: str) -> Probe:
    """Wrap a blocking yes/no check (nats `/healthz`, a PostgreSQL connect) as a probe."""

    async def probe() -> str | None:
        return None if await asyncio.to_thread(check) else reason

    return probe
