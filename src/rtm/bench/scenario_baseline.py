"""The baseline scenarios, the orchestrator's side: the machine's raw limits and the systems rtm
is compared with, measured in the same run with the same load generator and the same ramp.

* `baseline`: a bare nats-py loop on the system's own nats-server (when its URL is known: the run
  started the system, or `--nats-url` was given), then the bare picows broadcast server driven
  with the traffic shapes selected (all of them when none is), so that each rtm row has a bare
  twin to be compared with.
* `pipeline`: the rooms shape through a bare pipeline with rtm's guarantees on the run's own
  nats-server and PostgreSQL (`rtm.bench.baseline_pipeline`).
* `socketio`: the rooms shape on python-socketio, then on Node's socket.io when node and npm are
  there (`rtm.bench.baseline_socketio`).

The server processes themselves are in `rtm.bench.baselines`, `baseline_pipeline` and
`baseline_socketio`.
"""

from __future__ import annotations

from rtm.bench.options import TRAFFIC
from rtm.bench.pool import ProcessGroup
from rtm.bench.procstat import Watched
from rtm.bench.report import Row
from rtm.bench.scenario_traffic import Driven, run_traffic
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
        driven = Driven(
            "bare",
            "bare",
            "baseline",
            url=f"ws://127.0.0.1:{port}",
            servers=(Watched("ws-server", server.pids[0]),),
            prefix="bare ws ",
        )
        for name in selected:
            await run_traffic(session, shape_for(name, session.options), driven)
    finally:
        await server.stop("stop")


def _infrastructure(session: Session) -> tuple[Watched, ...]:
    """The run's nats-server and PostgreSQL processes (known when the run started them)."""
    return tuple(w for w in session.target.watched() if w.name in ("nats", "postgres"))


async def run_pipeline(session: Session) -> None:
    """The rooms shape through the bare pipeline, on the run's nats-server and PostgreSQL."""
    target = session.target
    if target.nats_url is None or target.database_url is None:
        session.setup_notes.append(
            "pipeline: skipped, it needs the run's NATS and PostgreSQL (start the system, or "
            "give --nats-url and --database-url)"
        )
        session.display.log(session.setup_notes[-1])
        return
    from rtm.bench.baseline_pipeline import pipeline_main

    server = ProcessGroup(session.display)
    try:
        server.spawn(pipeline_main, target.nats_url, target.database_url, name="pipeline-server")
        port = await server.receive(0, int, 60.0)
        infrastructure = _infrastructure(session)
        driven = Driven(
            "pipeline",
            "bare",
            "pipeline",
            url=f"ws://127.0.0.1:{port}",
            servers=(Watched("pipeline-server", server.pids[0]), *infrastructure),
            prefix="pipeline ",
        )
        if not infrastructure:
            session.setup_notes.append(
                "pipeline: nats-server and PostgreSQL are not this run's processes, so its "
                "server CPU counts the pipeline process only"
            )
        await run_traffic(session, shape_for("rooms", session.options), driven)
        server.send(0, "stop")
        await server.receive(0, str, 60.0)  # "stopped", or the pipeline's failure raised
    finally:
        await server.stop("stop")


async def run_socketio(session: Session) -> None:
    """The rooms shape on python-socketio, then on Node's socket.io (when it can be had)."""
    from rtm.bench.baseline_socketio import NodeServer, node_cache, prepare_node, python_main

    shape = shape_for("rooms", session.options)
    server = ProcessGroup(session.display)
    try:
        server.spawn(python_main, name="socketio-py")
        port = await server.receive(0, int, 60.0)
        driven = Driven(
            "socket.io py",
            "socketio",
            "socketio",
            url=f"ws://127.0.0.1:{port}",
            servers=(Watched("socketio-py", server.pids[0]),),
            prefix="socket.io py ",
        )
        await run_traffic(session, shape, driven)
    finally:
        await server.stop("stop")

    if not session.options.node:
        session.setup_notes.append("socket.io (Node): not run (--no-node)")
        return
    session.display.status("socket.io for Node: checking node and npm", force=True)
    script, detail = await prepare_node(node_cache())
    if script is None:
        session.setup_notes.append(f"socket.io (Node): skipped, {detail}")
        session.display.log(session.setup_notes[-1])
        return
    session.setup_notes.append(f"socket.io (Node): node {detail}, from {node_cache()}")
    node = NodeServer(script)
    try:
        port = await node.start()
        driven = Driven(
            "socket.io node",
            "socketio",
            "socketio",
            url=f"ws://127.0.0.1:{port}",
            servers=(Watched("socketio-node", node.pid),),
            prefix="socket.io node ",
        )
        await run_traffic(session, shape, driven)
    finally:
        await node.stop()


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
