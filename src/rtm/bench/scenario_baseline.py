"""The baseline scenario, the orchestrator's side: the machine's raw limits in the same run.

A bare nats-py loop on the system's own nats-server (when its URL is known: the run started the
system, or `--nats-url` was given), then the bare picows broadcast server driven with the traffic
shapes selected (all of them when none is), so that each rtm row has a bare twin to be compared
with. The processes themselves are in `rtm.bench.baselines`.
"""

from __future__ import annotations

from rtm.bench.options import TRAFFIC
from rtm.bench.pool import ProcessGroup
from rtm.bench.procstat import Watched
from rtm.bench.report import Row
from rtm.bench.scenario_traffic import run_traffic
from rtm.bench.session import Session
from rtm.bench.shapes import shape_for


async def run_baseline(session: Session) -> None:
    if session.target.nats_url is not None:
        await _nats_baseline(session, session.target.nats_url)
    selected = [name for name in TRAFFIC if name in session.options.scenarios] or list(TRAFFIC)
    from rtm.bench.baselines import ws_server_main

    server = ProcessGroup(session.display)
    try:
        server.spawn(ws_server_main, name="ws-server")
        port = await server.receive(0, int, 60.0)
        watched = [Watched("ws-server", server.pids[0])]
        for name in selected:
            await run_traffic(
                session,
                shape_for(name, session.options),
                flavor="bare",
                bare_url=f"ws://127.0.0.1:{port}",
                extra=watched,
            )
    finally:
        await server.stop("stop")


async def _nats_baseline(session: Session, url: str) -> None:
    from rtm.bench.baselines import NatsResult, nats_main

    seconds = session.options.nats_seconds or session.options.step_seconds
    group = ProcessGroup(session.display)
    session.display.status("bare nats-py loop", force=True)
    try:
        group.spawn(nats_main, url, seconds, 400, name="nats-loop")
        window = session.sampler.open(session.watch([Watched("nats-loop", group.pids[0])]))
        result = await group.receive(0, NatsResult, 4 * seconds + 60)
        usage = session.sampler.close(window)
    finally:
        await group.stop()
    usage = {k: v for k, v in usage.items() if k in ("nats", "nats-loop")}
    core = Row(
        scenario="baseline",
        name="bare nats core",
        shape="1 publisher → 1 subscriber, 400 B",
        ingest=result.core_rate,
        deliveries=result.core_rate,
        delivery=result.core_latency,
        window_s=window.elapsed,
        usage=usage,
    )
    core.notes.append("closed loop, at most 1000 messages in flight; CPU: the whole window")
    session.add(core)
    for run in result.jetstream:
        session.add(
            Row(
                scenario="baseline",
                name="bare JetStream publish",
                shape=f"{run.window} in flight, PubAck, Nats-Msg-Id, "
                f"sync {session.target.sync_interval}",
                ingest=run.rate,
                ack=run.ack,
                window_s=window.elapsed,
                usage=usage,
            )
        )
