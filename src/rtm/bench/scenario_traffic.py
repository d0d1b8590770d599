"""The traffic scenarios: rooms, direct and fanout, against rtm or a baseline server (the bare
picows broadcast, the bare pipeline, Socket.IO), driven the same way so that they can be compared.

A traffic scenario runs a ramp (rates up a ladder until the p99 delivery latency passes the
threshold, or messages are lost, or the rate is not kept up; then one step half-way back) unless a
fixed `--rate` is given. Every step is one row; the highest passing step of a ramp is the
system's best for that shape, which the ratio columns compare (`Session.best`).
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from rtm.bench import engineio, metrics
from rtm.bench.errors import BenchError
from rtm.bench.model import Flavor, SocketSpec, WorkerPlan
from rtm.bench.options import Options
from rtm.bench.pool import StepOutcome, WorkerPool
from rtm.bench.population import BenchUser
from rtm.bench.procstat import Usage, Watched
from rtm.bench.report import Row
from rtm.bench.session import Session, chunks, loadgen
from rtm.bench.shapes import ROOMS_TARGET_RATE, Shape
from rtm.bench.stats import summarize
from rtm.bench.target import ws


@dataclass(frozen=True, slots=True)
class Driven:
    """What a traffic scenario drives. `system`: "rtm", or a baseline ("bare", "pipeline",
    "socket.io py", "socket.io node"), which serves `url` (`/r/<room>` and `/s/<room>`, or
    Socket.IO's endpoint); `servers`: its server processes, whose CPU the rows divide by the
    deliveries (for rtm the system's own processes, known from the run's target)."""

    system: str
    flavor: Flavor
    scenario: str  # the rows' scenario: the shape's for rtm, else the baseline's
    url: str | None = None
    servers: tuple[Watched, ...] = ()
    prefix: str = ""  # row names: "bare ws rooms", "pipeline rooms", ...

    def name(self, shape: Shape) -> str:
        return f"{self.prefix}{shape.name}"


def rtm_system(session: Session, shape: Shape) -> Driven:
    """rtm itself: its rows are the shape's scenario, its servers every process of the target
    (auth, producers, consumers, nats-server, PostgreSQL; none when targeted by URL)."""
    return Driven("rtm", "rtm", shape.name, servers=tuple(session.target.watched()))


async def run_traffic(session: Session, shape: Shape, driven: Driven) -> None:
    """One traffic scenario: open the sockets, make the conversations (rtm only), warm up, then
    ramp or measure one step."""
    options = session.options
    name = driven.name(shape)
    rtm = driven.system == "rtm"
    users: list[BenchUser] = []
    if rtm:
        users = await session.population.ensure(shape.receivers)
    pool = WorkerPool(_plans(session, shape, driven, users), session.display)
    try:
        connected = await pool.start(timeout=300)
        seconds = max(c.seconds for c in connected)
        sockets = sum(c.receivers + c.senders for c in connected)
        session.display.log(f"{name}: {sockets} sockets open in {seconds:.1f}s")
        if rtm:
            await _make_conversations(session, shape, users, pool)
            frames, waited = await pool.settle()
            if frames:
                session.setup_notes.append(
                    f"{name}: after the sockets opened and the conversations were made, "
                    f"receivers got {frames} other frames (presence…) in {waited:.0f} s "
                    "before the first step (it waits up to 30 s for them to stop)"
                )
                session.display.log(session.setup_notes[-1])
        extra = [w for w in driven.servers if w not in session.target.watched()]
        watched = session.watch([*extra, *loadgen(pool)])
        await _warm_up(session, pool, shape)
        if options.ramping():
            await _ramp(session, pool, shape, driven, watched)
        else:
            assert options.rate is not None
            await _measure(session, pool, shape, driven, options.rate, watched)
    finally:
        await pool.stop()
        if rtm:
            await session.quiesce()


def _plans(
    session: Session, shape: Shape, driven: Driven, users: Sequence[BenchUser]
) -> list[WorkerPlan]:
    receivers: list[SocketSpec] = []
    senders: list[SocketSpec] = []
    consumers = [ws(base) for base in session.target.consumers]
    producers = [ws(base) for base in session.target.producers]
    for group in range(shape.groups):
        for member in range(shape.size):
            position = group * shape.size + member
            room = f"g{group}"
            if driven.flavor == "rtm":
                user = users[position]
                receiver = SocketSpec(
                    user.index,
                    consumers[user.index % len(consumers)],
                    user.access_token,
                    "",
                )
                sender = SocketSpec(
                    user.index,
                    producers[user.index % len(producers)],
                    user.access_token,
                    "",
                )
            elif driven.flavor == "socketio":
                assert driven.url is not None
                receiver = SocketSpec(position, engineio.url(driven.url), None, room)
                sender = SocketSpec(position, engineio.url(driven.url), None, room)
            else:
                receiver = SocketSpec(position, f"{driven.url}/r/{room}", None, room)
                sender = SocketSpec(position, f"{driven.url}/s/{room}", None, room)
            receivers.append(receiver)
            if member < shape.senders:
                senders.append(sender)
    parts = max(1, session.options.workers)
    return [
        WorkerPlan(
            worker=i,
            flavor=driven.flavor,
            receivers=tuple(r),
            senders=tuple(s),
            body_chars=session.options.body_chars,
        )
        for i, (r, s) in enumerate(
            zip(chunks(receivers, parts), chunks(senders, parts), strict=True)
        )
    ]


async def _make_conversations(
    session: Session, shape: Shape, users: Sequence[BenchUser], pool: WorkerPool
) -> None:
    groups = [list(users[g * shape.size : (g + 1) * shape.size]) for g in range(shape.groups)]
    session.display.status(f"creating {len(groups)} conversations", force=True)
    ids = await session.population.conversations(groups, shape.kind)
    mapping = {user.index: ids[g] for g, group in enumerate(groups) for user in group}
    await pool.bind(mapping, mapping)


async def _warm_up(session: Session, pool: WorkerPool, shape: Shape) -> None:
    """A short step at a low rate, not reported: first sends fill caches and pools."""
    rate = min(shape.ladder[0], 50.0, shape.senders * shape.groups * 2.0)
    outcome = await pool.step(session.next_step(), rate, 1.0, drain_max=30.0)
    acked = sum(r.acked for r in outcome.results)
    received = sum(len(r.receivers) and sum(t.received for t in r.receivers)
                   for r in outcome.results)  # fmt: skip
    if acked == 0 or received == 0:
        errors: Counter[str] = Counter()
        for result in outcome.results:
            errors.update(result.errors)
            errors.update({f"closed {k}": v for k, v in result.closed.items()})
        raise BenchError(
            f"warm-up: {acked} acked, {received} received; errors {dict(errors) or 'none'}"
        )


def _cap(options: Options, shape: Shape) -> float:
    """The highest rate the senders may send without hitting the per-connection limit."""
    return shape.senders * shape.groups * options.per_connection_rate * 0.9


async def _ramp(
    session: Session, pool: WorkerPool, shape: Shape, driven: Driven, watched: list[Watched]
) -> None:
    """Up the ladder until a step fails, then one step half-way back; when the very first
    step fails, down by halves (at most 3 times) to find a rate that passes at all."""
    options = session.options
    name = driven.name(shape)
    start = options.rate or shape.ladder[0]
    ladder = [start, *(r for r in shape.ladder if r > start)]
    best: Row | None = None
    failed: float | None = None
    measured: set[float] = set()
    for rate in ladder[: options.max_steps]:
        if rate > _cap(options, shape):
            session.display.log(
                f"{name}: stopping at {_cap(options, shape):.0f} msgs/s, the senders' "
                f"per-connection limit ({options.per_connection_rate:.0f}/s each)"
            )
            break
        row = await _measure(session, pool, shape, driven, rate, watched)
        measured.add(rate)
        if not row.passed:
            failed = rate
            await asyncio.sleep(3.0)  # let a backlog drain before the next step
            break
        best = row
    if failed is not None and best is not None and best.offered is not None:
        middle = float(round((best.offered + failed) / 2, -1 if failed < 1000 else -2))
        if best.offered < middle < failed:
            row = await _measure(session, pool, shape, driven, middle, watched)
            measured.add(middle)
            if row.passed:
                best = row
    lower = start
    for _ in range(3 if best is None else 0):
        lower = lower / 2 if lower < 10 else float(round(lower / 2))
        if lower < 0.5:
            break
        row = await _measure(session, pool, shape, driven, lower, watched)
        measured.add(lower)
        if row.passed:
            best = row
            break
        await asyncio.sleep(3.0)
    if best is not None:
        best.best = True
        session.best[(driven.system, shape.name)] = best
    rtm_rooms = driven.system == "rtm" and shape.name == "rooms"
    if rtm_rooms and options.rate is None and ROOMS_TARGET_RATE not in measured:
        # issue 6 sets a latency target at this rate: measure it even off the ramp
        await _measure(session, pool, shape, driven, ROOMS_TARGET_RATE, watched)


async def _measure(
    session: Session,
    pool: WorkerPool,
    shape: Shape,
    driven: Driven,
    rate: float,
    watched: list[Watched],
) -> Row:
    step = session.next_step()
    target = session.target
    services = [*target.producers, *target.consumers] if driven.system == "rtm" else []
    before = await metrics.scrape(services) if services else {}
    window = session.sampler.open(watched)
    duration = session.options.step_seconds
    outcome = await pool.step(step, rate, duration)
    usage = session.sampler.close(window)
    row = step_row(
        shape, driven.name(shape), rate, duration, outcome, usage, window.elapsed, session.options
    )
    row.scenario = driven.scenario
    row.system = driven.system
    row.server_cpu_s = server_cpu(usage, [w.name for w in driven.servers])
    if services:
        figures, inside = metrics.explain(before, await metrics.scrape(services))
        row.figures.update(figures)
        if inside:
            row.notes.append(f"inside: {inside}")
    return session.add(row)


def server_cpu(usage: dict[str, Usage], servers: Sequence[str]) -> float | None:
    """CPU seconds of a system's server processes over a window; None when none was sampled."""
    found = [usage[n].cpu_s for n in servers if n in usage and not math.isnan(usage[n].cpu_s)]
    return sum(found) if found else None


def step_row(
    shape: Shape,
    name: str,
    rate: float,
    duration: float,
    outcome: StepOutcome,
    usage: dict[str, Usage],
    window_s: float,
    options: Options,
) -> Row:
    """One step's row: rates, latencies, and what went wrong (lost, duplicated, out of order,
    late, errors, closes); it passes when p99 is within the shape's threshold
    (`Options.p99_threshold`: the same for rtm and its baselines), nothing is lost or
    duplicated, the rate was kept up and no socket was closed."""
    results = outcome.results
    acked_by_conv: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    closed: Counter[str] = Counter()
    lost = extra = duplicated = disorder = received = late = unacked = 0
    for result in results:
        acked_by_conv.update(result.acked_by_conversation)
        errors.update(result.errors)
        closed.update(result.closed)
        late += result.late
        unacked += result.unacked
    for result in results:
        for tally in result.receivers:
            expected = acked_by_conv.get(tally.conversation, 0)
            lost += max(0, expected - tally.received)
            extra += max(0, tally.received - expected)
            duplicated += tally.duplicates
            disorder += tally.disorder
            received += tally.received
    acked = sum(acked_by_conv.values())
    start = min(r.start_ns for r in results)
    ack_span = max(duration, (max(r.last_ack_ns for r in results) - start) / 1e9)
    receive_span = max(duration, (max(r.last_receive_ns for r in results) - start) / 1e9)
    row = Row(
        scenario=shape.name if not name.startswith("bare") else "baseline",
        name=name,
        shape=shape.describe(),
        offered=rate,
        ingest=acked / ack_span,
        deliveries=received / receive_span,
        ack=summarize(outcome.ack_ms),
        delivery=summarize(outcome.delivery_ms),
        lost=lost,
        duplicated=duplicated,
        delivered=received,
        window_s=window_s,
        usage=usage,
        traffic=shape.name,
    )
    behind = max(r.behind_ms for r in results)
    other: Counter[str] = Counter()
    for result in results:
        other.update(result.other_frames)
    if other:
        per_s = {kind: round(count / receive_span) for kind, count in other.most_common()}
        row.notes.append(f"other frames received per second, by type: {per_s}")
        row.figures.update({f"other_{kind}_per_s": v for kind, v in per_s.items()})
    if errors:
        row.notes.append(f"error frames: {dict(errors)}")
    if closed:
        row.notes.append(f"sockets closed by the server: {dict(closed)}")
    if unacked:
        row.notes.append(f"{unacked} sends unanswered after the drain")
    if extra:
        row.notes.append(f"{extra} deliveries of sends not acked (errors or unanswered)")
    if disorder:
        row.notes.append(f"{disorder} messages out of seq order")
        row.duplicated = duplicated + disorder
    if late:
        row.notes.append(f"{late} deliveries of an earlier step arrived during this one")
    if behind > 50:
        row.notes.append(f"load generator fell behind its schedule by up to {behind:.0f} ms")
    p99 = row.delivery.p99 if row.delivery else math.inf
    sent = sum(r.sent for r in results)
    kept_up = acked >= 0.99 * sent and acked / ack_span >= 0.95 * sent / duration
    row.passed = (
        p99 <= options.p99_threshold(shape.name)
        and lost == 0
        and duplicated == 0
        and kept_up
        and not closed
    )
    return row
