"""The scenarios of issue 6, run one after another against one system.

    idle      N authenticated idle connections on one consumer: RSS per connection, keepalive CPU
    resume    a client recovers 1,000 missed messages: resume frame → `resumed`
    rooms     receivers in groups of K (every member sends), open-loop rates
    direct    the same with direct conversations (pairs)
    fanout    one group of N members, a few of them sending
    baseline  the machine's raw limits: bare nats-py loop, bare picows broadcast server driven
              with the same shapes as rooms/direct/fanout
    pipeline  rooms through a bare pipeline with rtm's guarantees (picows → JetStream →
              PostgreSQL → picows), the ceiling of this machine with them
    socketio  rooms on Socket.IO: python-socketio, and Node's socket.io when node is there

`Bench` runs the selected ones in this order, then judges the run: each traffic scenario's best
step against its bare twin, the pipeline and Socket.IO (`report.compare`), and issue 6's
targets. Each family has a module of its own, sharing one `Session`: `scenario_idle`,
`scenario_resume`, `scenario_traffic` (rooms, direct and fanout: a ramp, or one step at a fixed
`--rate`) and `scenario_baseline` (baseline, pipeline, socketio). The idle scenario runs first,
on a consumer that has not yet held other connections; fan-out runs after rooms and direct,
because a group of N makes every later connection's presence cost N frames.
"""

from __future__ import annotations

import asyncio
import math
import time

from rtm.bench.comparison_targets import comparison_targets
from rtm.bench.options import ordered
from rtm.bench.report import Row, compare
from rtm.bench.scenario_baseline import run_baseline, run_pipeline, run_socketio
from rtm.bench.scenario_idle import run_idle
from rtm.bench.scenario_resume import run_resume
from rtm.bench.scenario_traffic import rtm_system, run_traffic
from rtm.bench.session import Session
from rtm.bench.shapes import shape_for
from rtm.bench.stats import fmt_bytes


class Bench(Session):
    """Runs the selected scenarios in order, then compares them with the baseline and with issue
    6's targets."""

    async def run(self) -> list[Row]:
        sampling = asyncio.create_task(self.sampler.run())
        try:
            for name in ordered(self.options.scenarios):
                began = time.monotonic()
                self.display.log(f"scenario {name}")
                if name == "idle":
                    await run_idle(self)
                elif name == "resume":
                    await run_resume(self)
                elif name == "baseline":
                    await run_baseline(self)
                elif name == "pipeline":
                    await run_pipeline(self)
                elif name == "socketio":
                    await run_socketio(self)
                else:
                    shape = shape_for(name, self.options)
                    await run_traffic(self, shape, rtm_system(self, shape))
                self.display.log(f"scenario {name} done in {time.monotonic() - began:.0f}s")
        finally:
            sampling.cancel()
        compare(self.best)
        return self.rows

    def targets(self) -> list[tuple[str, str, str]]:
        """Issue 6's and issue 13's targets, each with what this run measured and whether it
        is met."""
        found: list[tuple[str, str, str]] = comparison_targets(self.best, self.rows)

        def yes(ok: bool) -> str:
            return "yes" if ok else "no"

        rooms = [
            r
            for r in self.rows
            if r.system == "rtm" and r.name == "rooms" and r.delivery is not None
        ]
        if rooms:
            good = [
                r for r in rooms if r.delivery and r.delivery.p99 <= 100 and not r.lost and r.ingest
            ]
            top = max((r.ingest or 0.0 for r in good), default=0.0)
            found.append(
                (
                    "rooms: ≥ 5,000 msgs/s in (50k deliveries/s) at p99 ≤ 100 ms",
                    f"{top:.0f} msgs/s at p99 ≤ 100 ms",
                    yes(top >= 5000 * 0.98),
                )
            )
            at_1000 = [r for r in rooms if r.offered == 1000]
            if at_1000:
                r = at_1000[0]
                assert r.delivery is not None
                ack50 = r.ack.p50 if r.ack else math.nan
                found.append(
                    (
                        "rooms at 1,000 msgs/s: p99 ≤ 10 ms, ack p50 ≤ 2 ms",
                        f"p99 {r.delivery.p99:.1f} ms, ack p50 {ack50:.1f} ms",
                        yes(r.delivery.p99 <= 10 and ack50 <= 2),
                    )
                )
        fanout, bare = self.best.get(("rtm", "fanout")), self.best.get(("bare", "fanout"))
        ran = any(r.system == "rtm" and r.name == "fanout" for r in self.rows)
        limit = f"p99 ≤ {self.options.p99_threshold('fanout'):g} ms"
        if ran and bare is not None and bare.deliveries:
            if fanout is not None and fanout.deliveries:
                share = fanout.deliveries / bare.deliveries
                measured = (
                    f"{fanout.deliveries:.0f} vs {bare.deliveries:.0f} deliveries/s: {share:.0%}"
                )
            else:
                share = 0.0
                measured = f"no step kept {limit}; bare: {bare.deliveries:.0f} deliveries/s"
            found.append(
                (
                    f"fanout: ≥ 60% of the bare WebSocket broadcast rate, both at {limit}",
                    measured,
                    yes(share >= 0.6),
                )
            )
        for row in self.rows:
            if row.name == "idle" and "rss_per_connection_bytes" in row.figures:
                per = row.figures["rss_per_connection_bytes"]
                found.append(
                    ("idle: ≤ 20 KB RSS per idle connection", fmt_bytes(per), yes(per <= 20_000))
                )
                found.append(("idle: ≤ 12 KB (issue 13)", fmt_bytes(per), yes(per <= 12_000)))
            if row.name == "resume" and row.delivery is not None:
                found.append(
                    (
                        "resume: ≤ 100 ms for 1,000 messages",
                        f"p50 {row.delivery.p50:.0f} ms, max {row.delivery.max:.0f} ms "
                        f"({row.shape})",
                        yes(row.delivery.p50 <= 100),
                    )
                )
        return found
