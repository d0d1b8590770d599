"""gRPC health follows readiness, but one slow probe is not an outage."""

from __future__ import annotations

import pytest
from grpc_health.v1 import health_pb2
from grpc_health.v1._async import HealthServicer

from rtm.auth.entrypoints.grpc_server import SERVICE_NAME, HealthReporter

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Probe:
    def __init__(self, answers: list[bool]) -> None:
        self.answers = answers

    async def __call__(self) -> bool:
        return self.answers.pop(0)


async def statuses(health: HealthServicer) -> set[int]:
    replies = [
        await health.Check(health_pb2.HealthCheckRequest(service=name), None)
        for name in ("", SERVICE_NAME)
    ]
    return {reply.status for reply in replies}


@pytest.mark.parametrize(
    ("probes", "reported"),
    [
        ([False], [False]),  # never serving until a probe succeeds
        ([True, False, True], [True, True, True]),  # one failure in between is tolerated
        ([True, False, False], [True, True, False]),  # two in a row are an outage
        ([True, False, False, True], [True, True, False, True]),  # back at the first good one
        ([True, False, True, False, True], [True] * 5),  # failures must be consecutive
    ],
)
async def test_health_turns_not_serving_after_two_failed_probes_in_a_row(
    probes: list[bool], reported: list[bool]
) -> None:
    health = HealthServicer()
    reporter = HealthReporter(health, Probe(list(probes)))
    seen = []
    for _ in probes:
        serving = await reporter.check_once()
        assert await statuses(health) == {SERVING if serving else NOT_SERVING}
        seen.append(serving)
    assert seen == reported
