"""The idle scenario: N authenticated connections held open on one consumer, sending nothing.

Measured: the consumer's RSS per connection (before opening and after, once settled), its CPU
while they are held (the server's keepalive pings), and how fast they opened. It runs first, on a
consumer that has not yet held other connections, so the RSS difference is the connections'.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter

from rtm.bench.model import SocketSpec, WorkerPlan
from rtm.bench.pool import WorkerPool
from rtm.bench.procstat import rss_bytes
from rtm.bench.report import Row
from rtm.bench.session import Session, chunks, loadgen
from rtm.bench.stats import fmt_bytes
from rtm.bench.target import ws


async def run_idle(session: Session) -> None:
    options = session.options
    target = session.target
    count = options.idle_count
    per_user = max(1, options.idle_per_user)
    users = await session.population.ensure(math.ceil(count / per_user))
    url = ws(target.consumers[0])
    specs = [SocketSpec(i, url, users[i // per_user].access_token, "") for i in range(count)]
    parts = max(1, options.workers)
    plans = [
        WorkerPlan(worker=i, flavor="rtm", receivers=tuple(chunk), senders=())
        for i, chunk in enumerate(chunks(specs, parts))
    ]
    consumer = next((w for w in target.processes if w.name.startswith("consumer")), None)
    before = rss_bytes(consumer.pid) if consumer else 0
    pool = WorkerPool(plans, session.display)
    try:
        window = session.sampler.open(target.watched())
        connected = await pool.start(timeout=600)
        opening = session.sampler.close(window)
        connect_s = max(c.seconds for c in connected)
        await asyncio.sleep(2.0)
        after = rss_bytes(consumer.pid) if consumer else 0
        window = session.sampler.open(session.watch(loadgen(pool)))
        held = await pool.hold(options.idle_seconds)
        usage = session.sampler.close(window)
    finally:
        await pool.stop()
        await session.quiesce()
    still_open = sum(h.open_sockets for h in held)
    closed: Counter[str] = Counter()
    for h in held:
        closed.update(h.closed)
    row = Row(
        scenario="idle",
        name="idle",
        shape=f"{count} connections ({per_user} per user) on one consumer",
        window_s=window.elapsed,
        usage=usage,
    )
    unweighable = consumer is not None and why_unweighable(before, after, count, still_open)
    if unweighable:
        row.notes.append(f"RSS per connection not measured: {unweighable}")
    elif consumer is not None:
        per_connection = (after - before) / count
        cpu = usage[consumer.name].cpu_s
        row.figures.update(
            {
                "rss_per_connection_bytes": per_connection,
                "consumer_rss_before": before,
                "consumer_rss_after": after,
                "keepalive_cpu_s": cpu,
                "hold_s": window.elapsed,
                "connect_s": connect_s,
                "connect_cpu_s": opening[consumer.name].cpu_s,
            }
        )
        row.notes.append(
            f"consumer RSS {fmt_bytes(before)} → {fmt_bytes(after)}: "
            f"{fmt_bytes(per_connection)} per connection"
        )
        row.notes.append(
            f"consumer CPU while idle: {cpu:.2f} s over {window.elapsed:.0f} s "
            f"({100 * cpu / window.elapsed:.1f}% of a core; server pings every 20 s)"
        )
        row.notes.append(
            f"opening: {count / connect_s:.0f} connections/s, consumer CPU "
            f"{opening[consumer.name].cpu_s:.1f} s"
        )
    row.figures["still_open"] = still_open
    if closed:
        row.notes.append(f"closed during the hold: {dict(closed)}")
    if still_open < count:
        row.notes.append(f"{count - still_open} of {count} connections did not stay open")
    session.add(row)


def why_unweighable(before: int, after: int, count: int, still_open: int) -> str:
    """Why the RSS difference would not be the connections' (empty: it is). A consumer that died
    reads as 0 B, which would pass any target."""
    if before <= 0 or after <= 0:
        return "the consumer was gone when its RSS was read (did it crash? see its log)"
    if still_open < count:
        return f"only {still_open} of {count} connections stayed open"
    return ""
